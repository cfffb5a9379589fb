"""Where each table and key of a TOML file stands: the line numbers a policy error names.

``tomllib`` gives values, not positions; this reads the text once more, after ``tomllib`` has
accepted it, and records the line of every table header (``[default]``, each ``[[rule]]``) and
of every key written in a table (its first segment: ``a.b = 1`` records ``a``). Strings (one-
and multi-line), comments and arrays or inline tables spanning lines are stepped over, so a
line inside them is never taken for a key or a header.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass
class Table:
    """One table as written: its header's dotted name ("" for the keys before any header),
    whether it is an array-of-tables entry (``[[rule]]``), its header's line, and the line of
    each key written in it."""

    name: str
    array: bool
    line: int
    keys: dict[str, int] = field(default_factory=dict)


def _unquote(segment: str) -> str:
    segment = segment.strip()
    if len(segment) >= 2 and segment[0] == segment[-1] and segment[0] in "\"'":
        return segment[1:-1]
    return segment


def _header_name(inside: str) -> str:
    """``default`` from ``default``, ``a.b`` from ``a . "b"`` (dots inside quotes kept)."""
    parts, current, quote = [], "", ""
    for char in inside:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current += char
        elif char == ".":
            parts.append(_unquote(current))
            current = ""
        else:
            current += char
    parts.append(_unquote(current))
    return ".".join(parts)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1

    def peek(self, count: int = 1) -> str:
        return self.text[self.i : self.i + count]

    def advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.i < len(self.text):
                if self.text[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_to_eol(self) -> None:
        while self.i < len(self.text) and self.text[self.i] != "\n":
            self.i += 1

    def skip_string(self) -> None:
        """Step over the string starting here (any of TOML's four kinds)."""
        for delimiter in ('"""', "'''"):
            if self.peek(3) == delimiter:
                self.advance(3)
                while self.i < len(self.text):
                    if delimiter == '"""' and self.peek() == "\\":
                        self.advance(2)
                    elif self.peek(3) == delimiter:
                        self.advance(3)
                        while self.peek() == delimiter[0]:  # up to two quotes just inside
                            self.advance()
                        return
                    else:
                        self.advance()
                return
        quote = self.peek()
        self.advance()
        while self.i < len(self.text) and self.peek() not in (quote, "\n"):
            self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
        self.advance()

    def skip_value(self) -> None:
        """Step over a value up to the end of its (last) line."""
        depth = 0
        while self.i < len(self.text):
            char = self.peek()
            if char in "\"'":
                self.skip_string()
            elif char == "#":
                self.skip_to_eol()
            elif char in "[{":
                depth += 1
                self.advance()
            elif char in "]}":
                depth -= 1
                self.advance()
            elif char == "\n":
                self.advance()
                if depth <= 0:
                    return
            else:
                self.advance()

    def key(self) -> str:
        """The first segment of the key starting here; leaves the scanner at the value."""
        if self.peek() in "\"'":
            start = self.i
            self.skip_string()
            first = _unquote(self.text[start : self.i])
        else:
            start = self.i
            while self.i < len(self.text) and self.text[self.i] in _BARE_KEY:
                self.i += 1
            first = self.text[start : self.i]
        # The rest of the key (dotted segments, which may be quoted) up to the "=".
        while self.i < len(self.text) and self.peek() not in "=\n":
            if self.peek() in "\"'":
                self.skip_string()
            else:
                self.advance()
        self.advance()  # the "="
        return first


def scan_tables(text: str) -> list[Table]:
    """Every table of ``text`` (valid TOML) in file order, the root ("") first."""
    tables = [Table("", False, 1)]
    scanner = _Scanner(text)
    while scanner.i < len(text):
        char = scanner.peek()
        if char in " \t\r\n":
            scanner.advance()
        elif char == "#":
            scanner.skip_to_eol()
        elif char == "[":
            array = scanner.peek(2) == "[["
            start = scanner.i + (2 if array else 1)
            line = scanner.line
            scanner.skip_to_eol()
            header = text[start : scanner.i].split("#", 1)[0].strip().rstrip("]")
            tables.append(Table(_header_name(header), array, line))
        else:
            line = scanner.line
            name = scanner.key()
            tables[-1].keys.setdefault(name, line)
            scanner.skip_value()
    return tables
