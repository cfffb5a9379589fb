"""Reading a policy file (bot/domain/policy.py says what it means): TOML syntax, then each
table and key checked, every error a PolicyError naming the line of the key at fault (found by
bot/domain/policy_lines.py) or of its table's header."""

from __future__ import annotations

import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.domain.inputs import EVERYONE, GROUP_ID_RE, USER_ID_RE
from bot.domain.model import Operation
from bot.domain.policy import (
    ALL_OPERATIONS,
    DEFAULT,
    DEFAULT_BULK_APPROVALS,
    PolicyError,
    Rule,
)
from bot.domain.policy_lines import Table, scan_tables

MAX_APPROVALS = 10
RULE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

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


def read_policy(label: str, data: bytes, settings: Mapping[str, Any]) -> _Parsed:
    """The [default], the rules and [bulk] of a file's bytes; raises PolicyError."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError(label, line, "is not UTF-8 text") from None
    try:
        document = tomllib.loads(decoded)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(label, decoded, exc) from None
    return _Parser(label, scan_tables(decoded)).policy(document, settings)


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
