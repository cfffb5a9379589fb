"""The approval policy: rules per domain, operation and requester, read from POLICY_FILE.

A policy is a ``[default]`` and ``[[rule]]`` tables in file order. A rule's *match keys*
(``domains``, ``operations``, ``requesters``) say which requests it decides; its *terms*
(``approvers``, ``approvals_required``, ``reason_pattern``, ``remind_every``, ``escalate_after``
with ``escalate_to``) say how; a term a rule leaves out is the ``[default]``'s, and a term the
``[default]`` leaves out is the settings' (APPROVERS, APPROVALS_REQUIRED, REMIND_EVERY).

Rules are tried in order; the first whose keys all match decides, ``[default]`` decides the
rest. ``operations`` in a rule narrows what it matches (left out: the ``[default]``'s); in
``[default]`` it lists what may be asked when no rule matches. So an operation is allowed for
a domain and requester exactly when the rule that decides it lists it.

``domains`` are globs (``fnmatchcase``) on the normalised, lower-case domain, in its Unicode
or its ASCII (``xn--``) form: ``*.bank.example`` matches ``a.bank.example`` and
``a.b.bank.example`` (``*`` crosses dots), not ``bank.example`` itself. ``reason_pattern`` is a
regular expression searched for (``re.search``) in the reason: anchor it (``^…``) to mean "starts
with". Unknown keys and tables are errors: a typo must never silently weaken a rule.

Without POLICY_FILE the service has no policy: its requests carry no rule and the settings
decide them, live, as before rules. (:meth:`Policy.from_settings` builds the one ``[default]``
those settings amount to, for ``policy explain``.)
Reading and checking a file is bot/domain/policy_file.py's (its lines: policy_lines.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from bot.domain.inputs import domain_variants
from bot.domain.model import Operation, RuleTerms

DEFAULT = "default"
DEFAULT_BULK_APPROVALS = 2
ALL_OPERATIONS: tuple[Operation, ...] = tuple(Operation)

# is_among(user, ids): whether ``user`` is one of ``ids`` (user IDs, user-group IDs, ``*``).
IsAmong = Callable[[str, Sequence[str]], bool]


class PolicyError(ValueError):
    """A policy file that cannot be used: ``str()`` is ``PATH line N: reason`` (``PATH: reason``
    when no line applies, as for a file that cannot be read)."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = source if line is None else f"{source} line {line}"
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Rule:
    """One rule (or the ``[default]``, named ``default``), with the terms it inherited filled
    in. ``line``: where its table starts in the file (0: built from the settings). ``own``: the
    keys its table set itself (the rest were inherited)."""

    name: str
    line: int
    # Match keys. None: any. ``operations`` is effective: the rule's own, else the [default]'s.
    domains: tuple[str, ...] | None
    operations: tuple[Operation, ...]
    requesters: tuple[str, ...] | None
    # Terms.
    approvers: tuple[str, ...]
    approvals_required: int
    reason_pattern: str | None = None
    remind_every: int = 0
    escalate_after: int | None = None
    escalate_to: tuple[str, ...] = ()
    own: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT

    @property
    def matches_everything(self) -> bool:
        """A rule with no match key of its own: it takes every request of its operations."""
        return self.domains is None and self.requesters is None and "operations" not in self.own

    def matches_domain(self, domain: str) -> bool:
        if self.domains is None:
            return True
        return any(_matches_glob(domain, glob) for glob in self.domains)

    def terms(self, policy_hash: str) -> RuleTerms:
        return RuleTerms(
            name=self.name,
            policy_hash=policy_hash,
            approvers=self.approvers,
            approvals_required=self.approvals_required,
            remind_every=float(self.remind_every),
            escalate_after=None if self.escalate_after is None else float(self.escalate_after),
            escalate_to=self.escalate_to,
            reason_pattern=self.reason_pattern,
        )

    @property
    def label(self) -> str:
        return "[default]" if self.is_default else f"rule {self.name}"


@dataclass(frozen=True)
class Decision:
    """Which rule decides a request, whether its operation may be asked, on what terms, and
    why: one line per rule tried (the last says what decided)."""

    rule: Rule
    allowed: bool
    terms: RuleTerms
    why: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    default: Rule
    rules: tuple[Rule, ...] = ()
    policy_hash: str = ""
    source: str | None = None
    bulk_approvals_required: int = DEFAULT_BULK_APPROVALS

    @classmethod
    def from_settings(
        cls, *, approvers: Sequence[str], approvals_required: int, remind_every: int
    ) -> Policy:
        """Today's behaviour without POLICY_FILE: one [default] of the settings, both
        operations allowed."""
        return cls(
            default=Rule(
                name=DEFAULT,
                line=0,
                domains=None,
                operations=ALL_OPERATIONS,
                requesters=None,
                approvers=tuple(approvers),
                approvals_required=approvals_required,
                remind_every=remind_every,
            )
        )

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """The rules in the order they are tried, the [default] last."""
        return (*self.rules, self.default)

    def approver_ids(self) -> tuple[str, ...]:
        """Every ID a rule (or the [default]) names as approvers or escalate_to, in file
        order, each once: who may decide some request (the Home tab's queue, status)."""
        return tuple(
            dict.fromkeys(
                i for rule in self.all_rules for i in (*rule.approvers, *rule.escalate_to)
            )
        )

    def rule_named(self, name: str) -> Rule | None:
        return next((rule for rule in self.all_rules if rule.name == name), None)

    def decide(
        self,
        *,
        domain: str,
        operation: Operation,
        requester: str | None,
        is_among: IsAmong,
    ) -> Decision:
        """The first rule whose keys all match decides, [default] the rest. ``is_among`` is
        asked only for a rule whose other keys matched. ``requester`` None: not known (a rule
        with ``requesters`` then does not match)."""
        why: list[str] = []
        for rule in self.rules:
            miss = _miss(rule, domain.lower(), operation, requester, is_among)
            if miss is None:
                why.append(f"{rule.label}: {_hit(rule, domain.lower(), operation)}: decides")
                return Decision(rule, True, rule.terms(self.policy_hash), tuple(why))
            why.append(f"{rule.label}: {miss}")
        allowed = operation in self.default.operations
        listed = ", ".join(self.default.operations) or "none"
        tail = (
            f"{'no rule matched' if self.rules else 'no rules'}: [default] decides; "
            f"{operation} is {'' if allowed else 'not '}among its operations ({listed})"
        )
        why.append(tail)
        return Decision(self.default, allowed, self.default.terms(self.policy_hash), tuple(why))

    def allowed_operations(
        self, *, domain: str, requester: str | None, is_among: IsAmong
    ) -> tuple[Operation, ...]:
        return tuple(
            op
            for op in ALL_OPERATIONS
            if self.decide(
                domain=domain, operation=op, requester=requester, is_among=is_among
            ).allowed
        )

    def describe(self) -> tuple[str, ...]:
        """One line per rule, the [default] last, as ``check`` lists them."""
        return tuple(_describe(rule) for rule in self.all_rules)

    def warnings(self) -> tuple[str, ...]:
        """What is allowed but likely a mistake: rules no request can reach, escalation that
        cannot happen."""
        found: list[str] = []
        taken: set[Operation] = set()  # operations a match-everything rule takes before here
        catch_all: list[str] = []
        for rule in self.rules:
            if taken and set(rule.operations) <= taken:
                verb = "matches" if len(catch_all) == 1 else "match"
                found.append(
                    f"rule {rule.name} (line {rule.line}) is never used: "
                    f"{' and '.join(catch_all)} before it {verb} every request of its "
                    f"operations ({', '.join(rule.operations)})"
                )
            if rule.matches_everything:
                taken |= set(rule.operations)
                catch_all.append(f"rule {rule.name}")
        for rule in self.all_rules:
            if rule.approvals_required == 0 and "escalate_after" in rule.own:
                found.append(
                    f"{rule.label} (line {rule.line}) sets escalate_after but needs no "
                    "approvals: it never escalates"
                )
        return tuple(found)


def reason_matches(terms_or_pattern: RuleTerms | str | None, reason: str) -> bool:
    """Whether ``reason`` satisfies the rule's ``reason_pattern`` (``re.search``: anywhere in
    the reason unless the pattern anchors itself); True when there is none."""
    pattern = (
        terms_or_pattern.reason_pattern
        if isinstance(terms_or_pattern, RuleTerms)
        else terms_or_pattern
    )
    return not pattern or re.search(pattern, reason) is not None


def load_policy(
    path: str, *, approvers: Sequence[str], approvals_required: int, remind_every: int
) -> Policy:
    """Read and parse the file at ``path``; raises PolicyError."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise PolicyError(path, None, f"cannot read the file ({exc.strerror or exc})") from None
    return parse_policy(
        data,
        path,
        approvers=approvers,
        approvals_required=approvals_required,
        remind_every=remind_every,
    )


def parse_policy(
    text: bytes | str,
    source: str | None,
    *,
    approvers: Sequence[str],
    approvals_required: int,
    remind_every: int,
) -> Policy:
    """Parse a policy file's contents; raises PolicyError naming ``source`` and the line."""
    from bot.domain.policy_file import read_policy  # the parser needs Rule, defined here

    label = source or "policy"
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    settings = {
        "approvers": tuple(approvers),
        "approvals_required": approvals_required,
        "remind_every": remind_every,
    }
    policy = read_policy(label, data, settings)
    digest = hashlib.sha256(data).hexdigest()[:12]
    return Policy(
        default=policy.default,
        rules=policy.rules,
        policy_hash=digest,
        source=source,
        bulk_approvals_required=policy.bulk_approvals_required,
    )


# ---------------------------------------------------------------------------------------------
# Matching and describing


def _miss(
    rule: Rule, domain: str, operation: Operation, requester: str | None, is_among: IsAmong
) -> str | None:
    """Why ``rule`` does not match, or None when it does."""
    if not rule.matches_domain(domain):
        return f"domain {domain} matches none of {', '.join(rule.domains or ())}"
    if operation not in rule.operations:
        return f"operation {operation} is not among {', '.join(rule.operations)}"
    if rule.requesters is not None:
        if requester is None:
            return f"no requester given (it matches only {', '.join(rule.requesters)})"
        if not is_among(requester, rule.requesters):
            return f"requester {requester} is not among {', '.join(rule.requesters)}"
    return None


def _hit(rule: Rule, domain: str, operation: Operation) -> str:
    parts = []
    if rule.domains is None:
        parts.append("any domain")
    else:
        globs = [g for g in rule.domains if _matches_glob(domain, g)]
        parts.append(f"domain {domain} matches {', '.join(globs)}")
    parts.append(f"operation {operation}")
    parts.append(
        "any requester"
        if rule.requesters is None
        else f"requester among {', '.join(rule.requesters)}"
    )
    return "matches (" + "; ".join(parts) + ")"


def _matches_glob(domain: str, glob: str) -> bool:
    return any(fnmatchcase(form.lower(), glob) for form in domain_variants(domain.lower()))


def _describe(rule: Rule) -> str:
    where = "settings" if rule.line == 0 else f"line {rule.line}"
    match: list[str] = []
    if rule.domains is not None:
        match.append(f"domains {', '.join(rule.domains)}")
    if rule.is_default or "operations" in rule.own:
        match.append(f"operations {', '.join(rule.operations)}")
    if rule.requesters is not None:
        match.append(f"requesters {', '.join(rule.requesters)}")
    if rule.is_default:
        match.insert(0, "every other request")
    elif not match:
        match.append("every request")
    return f"{rule.name} ({where}): {'; '.join(match)} -> {describe_terms(rule)}"


def describe_terms(rule: Rule | RuleTerms) -> str:
    """``2 approvals from S0SENIOR; reason must match …; reminders every 1800 s; …``."""
    count = rule.approvals_required
    if count == 0:
        parts = ["approved by the rule itself (0 approvals)"]
    else:
        who = ", ".join(rule.approvers) or "nobody (no approvers)"
        parts = [f"{count} approval{'' if count == 1 else 's'} from {who}"]
    if rule.reason_pattern:
        parts.append(f"reason must match {rule.reason_pattern}")
    if count:
        every = rule.remind_every
        parts.append(f"reminders every {every:g} s" if every else "no reminders")
        if rule.escalate_after is not None:
            parts.append(
                f"escalates after {rule.escalate_after:g} s to {', '.join(rule.escalate_to)}"
            )
    return "; ".join(parts)
