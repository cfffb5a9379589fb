"""``python -m bot policy explain EMAIL``: which rule of the policy decides a request, and why.

Reads the policy file (``--file``, else POLICY_FILE; neither: the settings decide) and the
settings its ``[default]`` inherits (APPROVERS, APPROVALS_REQUIRED, REMIND_EVERY), and asks
neither Slack nor the provider. A requester matches a rule's ``requesters`` when it is listed by
ID or the rule lists ``*``; a user group's members cannot be read without Slack, so explain
treats the requester as outside it and says which rule would decide if it were not.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

from bot.domain.inputs import (
    EVERYONE,
    GROUP_ID_RE,
    USER_ID_RE,
    InvalidInput,
    domain_of,
    validate_email,
)
from bot.domain.model import Operation
from bot.domain.policy import Decision, Policy, PolicyError, Rule, load_policy
from bot.settings import SettingsError, load_policy_settings

DESCRIPTION = (
    "Explain how the approval policy decides a request, without Slack or the provider: which "
    "rule decides and why (each rule tried, in order), whether the operation may be asked, and "
    "its terms (approvers, approvals required, reason pattern, reminders, escalation). The "
    "policy is --file, else POLICY_FILE; the settings it inherits are APPROVERS, "
    "APPROVALS_REQUIRED and REMIND_EVERY (environment or .env). Exits 2 when the file or an "
    "argument cannot be used."
)
EXPLAIN_DESCRIPTION = (
    "Print which rule decides a request for EMAIL and why. A user group in a rule's requesters "
    "cannot be read without Slack: the requester is treated as outside it, and the output says "
    "which rule decides if it is in it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``policy`` subcommand and its ``explain``."""
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    explain = actions.add_parser(
        "explain", help="which rule decides a request, and why", description=EXPLAIN_DESCRIPTION
    )
    explain.add_argument("email", metavar="EMAIL", help="the address a request would be for")
    explain.add_argument(
        "--operation",
        choices=[op.value for op in Operation],
        default=Operation.CONFIRM.value,
        help="what the request asks (default: confirm)",
    )
    explain.add_argument(
        "--requester",
        type=_user_id,
        metavar="USER_ID",
        help="the Slack user ID (U…/W…) of who asks (default: none, so a rule with requesters "
        "does not match)",
    )
    explain.add_argument(
        "--file", metavar="PATH", help="the policy file (default: POLICY_FILE; unset: settings)"
    )


def _user_id(text: str) -> str:
    text = text.strip()
    if not USER_ID_RE.match(text):
        raise argparse.ArgumentTypeError(f"not a Slack user ID (U…/W…): {text[:40]!r}")
    return text


def run_policy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``policy ACTION`` (only ``explain`` so far); the exit code."""
    try:
        settings = load_policy_settings()
    except SettingsError as exc:
        print(f"policy explain: {'; '.join(exc.problems)}", file=err)
        return 2
    try:
        email = validate_email(args.email)
    except InvalidInput as exc:
        print(f"policy explain: EMAIL: {exc}", file=err)
        return 2
    path = args.file or settings.POLICY_FILE
    try:
        policy = (
            load_policy(
                path,
                approvers=settings.APPROVERS,
                approvals_required=settings.APPROVALS_REQUIRED,
                remind_every=settings.REMIND_EVERY,
            )
            if path
            else Policy.from_settings(
                approvers=settings.APPROVERS,
                approvals_required=settings.APPROVALS_REQUIRED,
                remind_every=settings.REMIND_EVERY,
            )
        )
    except PolicyError as exc:
        print(str(exc), file=err)
        return 2
    out.write(
        "\n".join(explain(policy, email, Operation(args.operation), args.requester, path)) + "\n"
    )
    return 0


def listed(user: str, ids: Sequence[str]) -> bool:
    """Membership as explain can tell it without Slack: listed by ID, or ``*``."""
    return user in ids or EVERYONE in ids


def explain(
    policy: Policy, email: str, operation: Operation, requester: str | None, path: str | None
) -> list[str]:
    """The lines ``policy explain`` prints."""
    domain = domain_of(email)
    decision = policy.decide(
        domain=domain, operation=operation, requester=requester, is_among=listed
    )
    if path:
        count = len(policy.rules)
        source = (
            f"Policy: {path} (hash {policy.policy_hash}): "
            f"{count} rule{'' if count == 1 else 's'} and [default]"
        )
    else:
        source = (
            "Policy: POLICY_FILE is not set: the settings decide every request (APPROVERS, "
            "APPROVALS_REQUIRED, REMIND_EVERY; both operations)"
        )
    who = (
        f"by {requester}" if requester else "(no --requester: a rule with requesters cannot match)"
    )
    lines = [
        source,
        f"Request: {operation} {email} (domain {domain}) {who}",
        "Rules tried, in order:",
        *(f"  {line}" for line in decision.why),
        f"Decides: {_rule_label(decision.rule)}",
        _allowed(decision, operation),
        *_terms(decision),
    ]
    lines.extend(_group_notes(policy, decision, domain, operation, requester))
    return lines


def _rule_label(rule: Rule) -> str:
    if rule.line == 0:
        return f"{rule.label} (from the settings)"
    return f"{rule.label} (line {rule.line})"


def _allowed(decision: Decision, operation: Operation) -> str:
    if decision.allowed:
        return f"Allowed: yes, {operation} may be asked under {decision.rule.label}"
    listed_ops = ", ".join(decision.rule.operations)
    return (
        f"Allowed: no, {operation} is not among the operations of {decision.rule.label} "
        f"({listed_ops}): the request form does not offer it"
    )


def _terms(decision: Decision) -> list[str]:
    terms = decision.terms
    approvers = ", ".join(terms.approvers) or "none (APPROVERS is not set)"
    if terms.approvals_required == 0:
        count = "0: approved by the rule itself (runs at once, audited)"
    else:
        count = str(terms.approvals_required)
    reason = (
        f"must match {terms.reason_pattern} (searched anywhere in the reason, as re.search "
        "does: anchor it with ^ for 'starts with')"
        if terms.reason_pattern
        else "any (no reason_pattern)"
    )
    reminders = f"every {terms.remind_every:g} s" if terms.remind_every else "none"
    escalation = (
        f"after {terms.escalate_after:g} s, also {', '.join(terms.escalate_to)} may approve"
        if terms.escalate_after is not None
        else "none"
    )
    if terms.approvals_required == 0:
        reminders = escalation = "none (nobody is asked)"
    return [
        f"Approvers: {approvers}",
        f"Approvals required: {count}",
        f"Reason: {reason}",
        f"Reminders: {reminders}",
        f"Escalation: {escalation}",
    ]


def _group_notes(
    policy: Policy, decision: Decision, domain: str, operation: Operation, requester: str | None
) -> list[str]:
    """What explain could not tell: the first earlier rule that would decide, were the
    requester in one of its user groups (or, with no requester, were one given)."""
    for rule in policy.rules:
        if rule is decision.rule:
            break
        if not (rule.matches_domain(domain) and operation in rule.operations):
            continue
        if rule.requesters is None:
            continue
        if requester is None:
            return [
                f"Note: {rule.label} matches only requesters {', '.join(rule.requesters)}: "
                "give --requester U… to see whether it decides instead"
            ]
        groups = [g for g in rule.requesters if GROUP_ID_RE.match(g)]
        if groups:
            return [
                f"Note: {', '.join(groups)} "
                f"{'is a user group' if len(groups) == 1 else 'are user groups'}, which explain "
                f"cannot read without Slack: if {requester} is in "
                f"{'it' if len(groups) == 1 else 'one of them'}, {rule.label} decides instead"
            ]
    return []
