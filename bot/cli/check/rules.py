"""The policy check: POLICY_FILE parses (else the error's line as a FAIL), its rules in the
order they are tried, what :meth:`Policy.warnings` finds, every user group it names resolves
(``usergroups.users.list``), and no rule lets ``confirm`` run unapproved or needs more approvals
than its approvers (with ``escalate_to``) have people."""

from __future__ import annotations

from bot.cli.check.groups import report_group_failure
from bot.cli.check.output import Report
from bot.cli.check.slack import Bot, Slack, SlackCallFailure
from bot.domain.inputs import EVERYONE, GROUP_ID_RE, USER_ID_RE
from bot.domain.model import Operation
from bot.domain.policy import Policy, PolicyError, Rule, load_policy
from bot.settings import Settings


def policy_ids(settings: Settings) -> tuple[str, ...]:
    """Every ID POLICY_FILE names (approvers, escalate_to, requesters); () without a file or
    with one that cannot be used (``check_policy`` says why)."""
    if not settings.POLICY_FILE:
        return ()
    try:
        policy = load_policy(
            settings.POLICY_FILE,
            approvers=settings.APPROVERS,
            approvals_required=settings.APPROVALS_REQUIRED,
            remind_every=settings.REMIND_EVERY,
        )
    except PolicyError:
        return ()
    requesters = (i for rule in policy.all_rules for i in rule.requesters or ())
    return (*policy.approver_ids(), *requesters)


def check_policy(report: Report, settings: Settings, slack: Slack | None, bot: Bot | None) -> None:
    """``slack`` and ``bot`` None: Slack could not be asked, so groups are not counted."""
    path = settings.POLICY_FILE
    if not path:
        report.ok(
            "POLICY_FILE is not set: the settings decide every request (APPROVERS, "
            "APPROVALS_REQUIRED, REMIND_EVERY; confirm and resend both allowed)"
        )
        return
    try:
        policy = load_policy(
            path,
            approvers=settings.APPROVERS,
            approvals_required=settings.APPROVALS_REQUIRED,
            remind_every=settings.REMIND_EVERY,
        )
    except PolicyError as exc:
        report.fail(
            "POLICY_FILE",
            str(exc),
            "correct the file (the README's Rules section lists every key); `python -m bot "
            f"policy explain EMAIL --file {path}` shows how a request would be decided",
        )
        return
    count = len(policy.rules)
    report.ok(
        f"POLICY_FILE {path} is valid (hash {policy.policy_hash}): {count} "
        f"rule{'' if count == 1 else 's'} and [default], tried in this order:"
    )
    for line in policy.describe():
        report.ok(f"Rule {line}")
    for warning in policy.warnings():
        report.warn(f"POLICY_FILE: {warning}")
    for rule in policy.all_rules:
        if Operation.CONFIRM in rule.operations and rule.approvals_required == 0:
            report.warn(
                f"POLICY_FILE: {rule.label} ({_where(rule)}) lets confirm run with "
                "approvals_required 0: a confirm it decides is approved by no one (it bypasses "
                "the customer's own click)"
            )
    members = _resolve_groups(report, settings, policy, slack, bot)
    for rule in policy.all_rules:
        # Without Slack the groups were skipped (said once): no quorum counted from guesses.
        _check_quorum(report, rule, members, read=slack is not None and bot is not None)


def _where(rule: Rule) -> str:
    return "from the settings" if rule.line == 0 else f"line {rule.line}"


def _resolve_groups(
    report: Report, settings: Settings, policy: Policy, slack: Slack | None, bot: Bot | None
) -> dict[str, set[str] | None]:
    """Each user group the policy names: its members (None: not read). Groups also in
    APPROVERS or REQUESTERS were reported by the groups check, so only counted here."""
    named: dict[str, list[str]] = {}
    for rule in policy.all_rules:
        for entry in (*rule.approvers, *rule.escalate_to, *(rule.requesters or ())):
            if GROUP_ID_RE.match(entry) and rule.label not in named.setdefault(entry, []):
                named[entry].append(rule.label)
    members: dict[str, set[str] | None] = {}
    if not named:
        return members
    if slack is None or bot is None:
        report.skip(
            f"The user groups in POLICY_FILE ({', '.join(named)}) not read: they need Slack "
            "to accept SLACK_BOT_TOKEN."
        )
        return dict.fromkeys(named)
    reported = {*settings.APPROVERS, *(settings.REQUESTERS or ())}
    for group_id, labels in named.items():
        subject = f"User group {group_id} in POLICY_FILE ({', '.join(labels)})"
        try:
            response = slack.call(slack.client.usergroups_users_list, usergroup=group_id)
        except SlackCallFailure as failure:
            members[group_id] = None
            report_group_failure(report, slack, bot, subject, failure)
            continue
        users = response.get("users")
        found = {u for u in users if isinstance(u, str)} if isinstance(users, list) else set()
        members[group_id] = found
        if group_id in reported:
            continue
        if found:
            report.ok(f"{subject} resolves: {len(found)} member{'' if len(found) == 1 else 's'}")
        else:
            report.warn(f"{subject} has no members: nobody gets a role through it")
    return members


def _check_quorum(
    report: Report, rule: Rule, members: dict[str, set[str] | None], *, read: bool
) -> None:
    """Warn when the rule needs more distinct approvals than its approvers (and escalate_to)
    have people. A user ID is one person, a group its members, ``*`` enough."""
    required = rule.approvals_required
    entries = (*rule.approvers, *rule.escalate_to)
    if required == 0 or EVERYONE in entries:
        return
    people = {e for e in entries if USER_ID_RE.match(e)}
    unread = []
    for entry in entries:
        if GROUP_ID_RE.match(entry):
            found = members.get(entry)
            if found is None:
                unread.append(entry)
            else:
                people |= found
    if len(people) >= required or (unread and not read):
        return
    counted = f"{len(people)} distinct {'person' if len(people) == 1 else 'people'}"
    whom = "its approvers" + (" and escalate_to" if rule.escalate_to else "")
    needs = f"needs {required} approval{'' if required == 1 else 's'}"
    if unread:
        report.warn(
            f"POLICY_FILE: {rule.label} ({_where(rule)}) {needs}, but "
            f"{whom} name {counted} so far ({', '.join(unread)} not read): its requests may "
            "never be approved"
        )
    else:
        report.warn(
            f"POLICY_FILE: {rule.label} ({_where(rule)}) {needs}, but {whom} "
            f"are {counted}: its requests can never be approved"
        )
