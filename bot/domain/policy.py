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

Without POLICY_FILE, :meth:`Policy.from_settings` builds the one ``[default]`` of the settings.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from bot.domain.inputs import EVERYONE, GROUP_ID_RE, USER_ID_RE, domain_variants
from bot.domain.model import Operation, RuleTerms
from bot.domain.policy_lines import Table, scan_tables

DEFAULT = "default"
MAX_APPROVALS = 10
DEFAULT_BULK_APPROVALS = 2
RULE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ALL_OPERATIONS: tuple[Operation, ...] = tuple(Operation)

MATCH_KEYS = ("domains", "operations", "requesters")
TERM_KEYS = (
    "approvers",
    "approvals_required",
    "reason_pattern",
    "remind_every",
    "escalate_after",
    "escalate_to",
)
DEFAULT_KEYS = frozenset({*TERM_KEYS, "operations"})
RULE_KEYS = frozenset({"name", *MATCH_KEYS, *TERM_KEYS})
BULK_KEYS = frozenset({"approvals_required"})
TABLES = {"default": "a table [default]", "rule": "tables [[rule]]", "bulk": "a table [bulk]"}

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
    label = source or "policy"
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError(label, line, "is not UTF-8 text") from None
    try:
        document = tomllib.loads(decoded)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(label, decoded, exc) from None
    parser = _Parser(label, scan_tables(decoded))
    settings = {
        "approvers": tuple(approvers),
        "approvals_required": approvals_required,
        "remind_every": remind_every,
    }
    policy = parser.policy(document, settings)
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


# ---------------------------------------------------------------------------------------------
# Parsing


_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = re.compile(r"\s*\(at end of document\)$")


def _syntax_error(label: str, text: str, exc: tomllib.TOMLDecodeError) -> PolicyError:
    message = str(exc)
    if found := _AT.search(message):
        reason = f"not valid TOML: {message[: found.start()]} (column {found.group(2)})"
        return PolicyError(label, int(found.group(1)), reason)
    line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return PolicyError(label, line, f"not valid TOML: {_AT_END.sub('', message)} (at the end)")


def _shown(value: object) -> str:
    """A value as TOML writes it (``true``, ``"x"``), cut to 60 characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, list):
        text = "[" + ", ".join(_shown(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class _Parsed:
    default: Rule
    rules: tuple[Rule, ...]
    bulk_approvals_required: int


class _Parser:
    """Validates the document table by table; each error names the line of the key at fault
    (or of its table's header)."""

    def __init__(self, label: str, tables: list[Table]) -> None:
        self.label = label
        self.tables = tables

    # Lines -----------------------------------------------------------------------------------

    def _table(self, name: str, index: int = 0) -> Table | None:
        found = [t for t in self.tables if t.name == name]
        return found[index] if index < len(found) else None

    def _line(self, table: str, key: str | None = None, index: int = 0) -> int:
        written = self._table(table, index)
        if written is not None:
            if key is None:
                return written.line
            if key in written.keys:
                return written.keys[key]
            nested = self._table(f"{table}.{key}", 0)
            return nested.line if nested is not None else written.line
        root = self.tables[0]
        return root.keys.get(table, 1)

    def error(self, table: str, key: str | None, reason: str, index: int = 0) -> PolicyError:
        return PolicyError(self.label, self._line(table, key, index), reason)

    # The document ----------------------------------------------------------------------------

    def policy(self, document: Mapping[str, Any], settings: Mapping[str, Any]) -> _Parsed:
        for name, value in document.items():
            if name not in TABLES:
                raise self.error(
                    name,
                    None,
                    f"unknown table or key {name!r}: a policy file has only [default], "
                    "[[rule]] and [bulk]",
                )
            array = name == "rule"
            if array != isinstance(value, list) or (not array and not isinstance(value, dict)):
                raise self.error(name, None, f"{name} must be {TABLES[name]}")
        default = self._default(document.get("default", {}), settings)
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for index, table in enumerate(document.get("rule", [])):
            if not isinstance(table, dict):
                raise self.error("rule", None, "rule must be tables [[rule]]", index)
            rule = self._rule(table, index, default)
            if rule.name in names:
                raise self.error(
                    "rule",
                    "name",
                    f"rule name {rule.name!r} is used twice (first on line {names[rule.name]})",
                    index,
                )
            names[rule.name] = rule.line
            rules.append(rule)
        bulk = self._bulk(document.get("bulk", {}))
        return _Parsed(default, tuple(rules), bulk)

    def _unknown(
        self, table: Mapping[str, Any], allowed: frozenset[str], where: str, name: str, index: int
    ) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(
                    name,
                    key,
                    f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                    index,
                )

    def _default(self, table: Mapping[str, Any], settings: Mapping[str, Any]) -> Rule:
        self._unknown(table, DEFAULT_KEYS, "[default]", "default", 0)
        read = _Reader(self, "default", 0, "[default]", table)
        approvers = read.ids("approvers")
        count = read.count("approvals_required", settings["approvals_required"])
        if approvers is None:
            approvers = settings["approvers"]
            if count > 0 and not approvers:
                raise read.fail(
                    None,
                    "sets no approvers and APPROVERS is not set: add approvers = [...] to "
                    "[default], or set APPROVERS",
                )
        operations = read.operations() or ALL_OPERATIONS
        escalate_after, escalate_to = read.escalation()
        return Rule(
            name=DEFAULT,
            line=self._line("default") if self._table("default") is not None else 0,
            domains=None,
            operations=operations,
            requesters=None,
            approvers=approvers,
            approvals_required=count,
            reason_pattern=read.pattern(None),
            remind_every=read.seconds("remind_every", settings["remind_every"]),
            escalate_after=escalate_after,
            escalate_to=escalate_to or (),
            own=frozenset(table),
        )

    def _rule(self, table: Mapping[str, Any], index: int, default: Rule) -> Rule:
        name = table.get("name")
        where = f"rule #{index + 1}"
        if name is None:
            raise self.error("rule", None, f'{where} has no name: add name = "..."', index)
        if not isinstance(name, str) or not RULE_NAME_RE.match(name) or name == DEFAULT:
            raise self.error(
                "rule",
                "name",
                f"{where}: name {_shown(name)} must be a short slug (lower-case letters, digits, "
                "- and _, at most 40, not 'default')",
                index,
            )
        where = f"rule {name}"
        self._unknown(table, RULE_KEYS, where, "rule", index)
        read = _Reader(self, "rule", index, where, table)
        approvers = read.ids("approvers")
        count = read.count("approvals_required", default.approvals_required)
        if approvers is None:
            approvers = default.approvers
        if count > 0 and not approvers:
            raise read.fail("approvers", "needs approvers: add approvers = [...]")
        escalate_after, escalate_to = read.escalation()
        if escalate_to is None:
            escalate_after, escalate_to = default.escalate_after, default.escalate_to
        return Rule(
            name=name,
            line=self._line("rule", None, index),
            domains=read.domains(),
            operations=read.operations() or default.operations,
            requesters=read.ids("requesters"),
            approvers=approvers,
            approvals_required=count,
            reason_pattern=read.pattern(default.reason_pattern),
            remind_every=read.seconds("remind_every", default.remind_every),
            escalate_after=escalate_after,
            escalate_to=escalate_to,
            own=frozenset(table),
        )

    def _bulk(self, table: Mapping[str, Any]) -> int:
        self._unknown(table, BULK_KEYS, "[bulk]", "bulk", 0)
        return _Reader(self, "bulk", 0, "[bulk]", table).count(
            "approvals_required", DEFAULT_BULK_APPROVALS
        )


@dataclass
class _Reader:
    """Reads and checks the values of one table."""

    parser: _Parser
    table_name: str
    index: int
    where: str
    table: Mapping[str, Any]

    def fail(self, key: str | None, reason: str) -> PolicyError:
        what = self.where if key is None else f"{self.where} {key}"
        return self.parser.error(self.table_name, key, f"{what}: {reason}", self.index)

    def count(self, key: str, inherited: int) -> int:
        value = self.table.get(key, inherited)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            raise self.fail(
                key, f"must be a whole number from 0 to {MAX_APPROVALS}, not {_shown(value)}"
            )
        return value

    def seconds(self, key: str, inherited: int) -> int:
        value = self.table.get(key, inherited)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(
                key, f"must be a whole number of seconds, 0 or more, not {_shown(value)}"
            )
        return value

    def _list(self, key: str, what: str) -> list[Any] | None:
        if key not in self.table:
            return None
        value = self.table[key]
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of {what}, not {_shown(value)}")
        if not value:
            raise self.fail(key, f"must list at least one of {what} (leave it out to mean any)")
        return value

    def ids(self, key: str) -> tuple[str, ...] | None:
        value = self._list(key, "Slack IDs")
        if value is None:
            return None
        for item in value:
            if not isinstance(item, str) or not (
                item == EVERYONE or USER_ID_RE.match(item) or GROUP_ID_RE.match(item)
            ):
                raise self.fail(
                    key,
                    f"{_shown(item)} is not a Slack user ID (U…/W…), user-group ID (S…) or "
                    '"*"; roles are matched by ID, never by name',
                )
        return tuple(dict.fromkeys(value))

    def operations(self) -> tuple[Operation, ...] | None:
        value = self._list("operations", "operations (confirm, resend)")
        if value is None:
            return None
        known = {op.value: op for op in Operation}
        for item in value:
            if item not in known:
                raise self.fail(
                    "operations",
                    f"{_shown(item)} is not an operation (confirm or resend)",
                )
        chosen = set(value)
        return tuple(op for op in ALL_OPERATIONS if op.value in chosen)

    def domains(self) -> tuple[str, ...] | None:
        value = self._list("domains", "domain globs")
        if value is None:
            return None
        globs = []
        for item in value:
            if (
                not isinstance(item, str)
                or not item.strip()
                or item != item.strip()
                or any(c.isspace() or c == "@" for c in item)
            ):
                raise self.fail(
                    "domains",
                    f'{_shown(item)} is not a domain glob (such as "*.bank.example" or '
                    '"vip.example")',
                )
            globs.append(item.lower())
        return tuple(dict.fromkeys(globs))

    def pattern(self, inherited: str | None) -> str | None:
        value = self.table.get("reason_pattern", inherited)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail("reason_pattern", f"must be a string, not {_shown(value)}")
        try:
            with warnings.catch_warnings():
                # "Possible nested set" and the like: ambiguous, so refused, not guessed at.
                warnings.simplefilter("error")
                re.compile(value)
        except (re.error, Warning) as exc:
            raise self.fail(
                "reason_pattern", f"is not a valid regular expression ({exc})"
            ) from None
        return value or None  # "": no pattern (a rule's way to drop the [default]'s)

    def escalation(self) -> tuple[int | None, tuple[str, ...] | None]:
        """(escalate_after, escalate_to), both given or neither: (None, None) when neither."""
        after_given = "escalate_after" in self.table
        to = self.ids("escalate_to")
        if not after_given and to is None:
            return None, None
        if not after_given:
            raise self.fail("escalate_to", "needs escalate_after (seconds) beside it")
        after = self.table["escalate_after"]
        if isinstance(after, bool) or not isinstance(after, int) or after <= 0:
            raise self.fail(
                "escalate_after", f"must be a whole number of seconds above 0, not {_shown(after)}"
            )
        if to is None:
            raise self.fail(
                "escalate_after", "needs escalate_to (the IDs to escalate to) beside it"
            )
        return after, to
