"""The list a bulk request is made of, read from what a person pasted or attached.

``read_email_list`` turns text (a pasted list, or a ``.txt``/``.csv`` file's text from
``decode_list_file``) into an ``EmailList``: the addresses, each normalised and validated as a
single one is (``inputs.validate_email``), in first-seen order with duplicates collapsed; what
was refused, by line, with the reason; and how far the list is over the limit.

How the text is read:

* Entries are separated by line breaks, commas, semicolons, spaces or tabs; blank entries are
  ignored. Any other space (a no-break space, U+2028) is not a separator: inside an entry it is
  refused as ``validate_email`` refuses it, so nothing invisible splits or joins addresses.
* Slack's markup (``<mailto:a@b.c|a@b.c>``; ``&amp;``, ``&lt;``, ``&gt;``) is undone first,
  as for a single address (``slack_markup=False`` for a file's text, which Slack leaves as is).
* CSV: a cell in double quotes (``"a@b.c"``, ``"Smith, Ann"``) is one cell, its ``""`` one
  quote. The first non-blank line is a header (``email,name``), skipped and not refused, when
  none of its cells has an ``@`` and a later line has one. In a line that has a cell with an
  ``@``, the cells without one (names, ids) are ignored and counted (``ignored``); a line with
  no ``@`` at all is refused, once. A UTF-8 BOM at the start is dropped.
* Duplicates are compared as the store compares emails (bot/store/rows.py's ``email_keys``:
  lower-cased, an address and its other IDNA form (``inputs.other_forms``) being one); the
  first spelling is kept.

The work is bounded whatever the text: at most ``MAX_LIST_CHARS`` characters are read (Slack's
10 MB file limit), and reading stops, saying at which line, once ``READ_FACTOR × limit``
entries or non-blank lines, or ``CELLS_PER_ENTRY`` times that many cells, have been read: by
then the list is far over the limit, and the person is asked to split it. Every step is
linear in what is read (no regular expression here can backtrack more than a bounded span).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bot.domain.inputs import (
    InvalidInput,
    hidden_kind,
    other_forms,
    slack_unescape,
    unwrap_slack,
    validate_email,
)

# Slack's file limit (file_input): 10 MB. A character is at least one byte of UTF-8, so the
# text of any file Slack accepts fits; anything longer is read only this far.
MAX_LIST_BYTES = 10 * 1024 * 1024
MAX_LIST_CHARS = MAX_LIST_BYTES
# Reading stops after this many times the limit of entries (or of non-blank lines): a list
# with four times too many entries is refused whatever the rest holds.
READ_FACTOR = 4
# And after this many cells per entry it may read (names, ids and blank cells beside the
# addresses): a CSV of BULK_MAX rows of up to 64 columns is read whole.
CELLS_PER_ENTRY = 16
# How much of a refused entry (or a header, a file name) is shown back.
MAX_SHOWN_CHARS = 60
LIST_SUFFIXES = (".txt", ".csv")

# The separators between entries (line breaks aside): ASCII spaces and tabs, commas, semicolons.
_SEPARATORS = ",; \t\f\v"
# A non-blank line from its first character that is not a separator: blank lines and lines of
# separators only are skipped by the regex engine.
_LINE_RE = re.compile(rf"[^\n{_SEPARATORS}][^\n]*")
# A cell: a run of quoted segments ("…", with "" for a quote; an unterminated one runs to the
# end of the line) and characters that are neither separators nor quotes. Possessive: no
# backtracking.
_CELL_RE = re.compile(rf'(?:"(?:[^"]++|"")*+(?:"|$)|[^{_SEPARATORS}"]++)++')
# Slack's markup around an address or a link, as unwrap_slack takes it; bounded so that a
# stray "<" costs at most this span (a mailto's target and label: two addresses and more).
_MARKUP_RE = re.compile(r"<[^<>\n]{1,600}>")
# What marks a cell as meant to be an address: the @, and the look-alikes that validate_email
# refuses (a fullwidth or small @ is refused, not ignored as a name would be).
_AT_SIGNS = ("@", "\uff20", "\ufe6b")


@dataclass(frozen=True)
class RefusedEntry:
    """An entry that is not a valid address: its line (from 1), the text as typed (clipped, its
    hidden characters shown as U+FFFD, safe to show) and why (``validate_email``'s words)."""

    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class EmailList:
    """A list read by ``read_email_list``.

    ``emails``: valid and distinct, normalised, in first-seen order, at most ``limit``.
    ``refused``: the invalid entries, by line. ``duplicates``: entries left out as the same
    address as an earlier one. ``over_limit``: distinct valid addresses beyond ``limit`` (not in
    ``emails``). ``entries``: the entries read (valid, refused and duplicate ones; what
    "N of M" counts), on ``lines`` non-blank lines. ``header``: the first line when it was read
    as a CSV header (shown form), else None. ``ignored``: cells without an ``@`` beside an
    address (names, ids). ``stopped_at_line``: where reading stopped when the text was too long
    to read whole, else None (then ``over_limit`` counts only what was read).
    """

    emails: tuple[str, ...]
    refused: tuple[RefusedEntry, ...]
    duplicates: int
    over_limit: int
    limit: int
    entries: int
    lines: int
    header: str | None = None
    ignored: int = 0
    stopped_at_line: int | None = None

    @property
    def usable(self) -> bool:
        """Whether a request can be made of the list as it is: at least one address, none
        refused, none over the limit, and the whole text read."""
        return (
            bool(self.emails)
            and not self.refused
            and not self.over_limit
            and self.stopped_at_line is None
        )

    def summary(self, first: int = 3) -> str:
        """In words, for the form: when the list is not usable, why (what a field error says:
        the refused entries counted, the first ``first`` shown with their line and reason; the
        count over the limit; where reading stopped; or that no address was found); when it
        is, what was read ("250 emails; 3 duplicates left out; …"). Plain text: the Slack
        layer escapes it for wherever it shows it."""
        if self.usable:
            return self._what_was_read()
        problems = []
        if self.stopped_at_line is not None:
            problems.append(
                f"The list is too long to read whole (reading stopped at line "
                f"{self.stopped_at_line:,}), far over the limit of {self.limit:,} emails in one "
                "request. Split it into smaller lists."
            )
        elif self.over_limit:
            total = len(self.emails) + self.over_limit
            problems.append(
                f"{total:,} emails, {self.over_limit:,} over the limit of {self.limit:,} in one "
                "request. Split the list."
            )
        if self.refused:
            problems.append(self._refused_words(first))
        if not problems:
            problems.append("No email address found: paste one a line, or attach a file.")
        return " ".join(problems)

    def _refused_words(self, first: int) -> str:
        one_per_line = self.entries == self.lines
        unit = "line" if one_per_line else "entry"
        units = "lines" if one_per_line else "entries"
        shown = [
            f"line {entry.line:,} `{entry.text}` ({entry.reason})"
            for entry in self.refused[: max(first, 0)]
        ]
        more = len(self.refused) - len(shown)
        if more:
            shown.append(f"and {more:,} more")
        return (
            f"{len(self.refused):,} of {self.entries:,} {unit if self.entries == 1 else units} "
            f"refused: {'; '.join(shown)}."
        )

    def _what_was_read(self) -> str:
        count = len(self.emails)
        words = [f"{count:,} email{'' if count == 1 else 's'}"]
        if self.duplicates:
            words.append(
                f"{self.duplicates:,} duplicate{'' if self.duplicates == 1 else 's'} left out"
            )
        if self.header is not None:
            words.append(f"first line `{self.header}` read as a header")
        if self.ignored:
            words.append(
                f"{self.ignored:,} cell{'' if self.ignored == 1 else 's'} without an @ "
                "(names, ids) ignored"
            )
        return "; ".join(words) + "."


def shown(text: str) -> str:
    """``text`` safe to show back: at most MAX_SHOWN_CHARS characters (then "…"), characters
    that cannot be seen (``hidden_kind``) as U+FFFD (a tab as a space), and a backtick as
    ``ˋ`` so the text cannot close the code span it is shown in."""
    clipped = re.sub(r"[\t\f\v]", " ", text[: MAX_SHOWN_CHARS + 1])
    safe = "".join("\ufffd" if hidden_kind(c) else ("\u02cb" if c == "`" else c) for c in clipped)
    if len(safe) > MAX_SHOWN_CHARS:
        safe = safe[: MAX_SHOWN_CHARS - 1] + "…"
    return safe


def decode_list_file(data: bytes, filename: str) -> str:
    """The text of an attached list, or InvalidInput saying why it cannot be read: a name that
    does not end in .txt or .csv (any case), more than Slack's 10 MB, or bytes that are not
    UTF-8 (a UTF-8 BOM is dropped; a UTF-16 one is named)."""
    name = shown(filename.strip()) or "(no name)"
    if not filename.strip().lower().endswith(LIST_SUFFIXES):
        raise InvalidInput(
            f"`{name}` is not a .txt or .csv file: attach the list as text, one email a line, "
            "or as a CSV with a column of emails."
        )
    if len(data) > MAX_LIST_BYTES:
        raise InvalidInput(f"`{name}` is larger than 10 MB, Slack's limit: split the list.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput(
            f"`{name}` is UTF-16 text, not UTF-8: save it as UTF-8 (in Excel, CSV UTF-8) and "
            "attach it again."
        )
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"`{name}` is not UTF-8 text (line {line:,} has a byte that is not): save it as "
            "UTF-8 (in Excel, CSV UTF-8) and attach it again."
        ) from None


def read_email_list(text: str, *, limit: int, slack_markup: bool = True) -> EmailList:
    """Read ``text`` into the list a bulk request is made of (see the module's words).

    ``limit`` (at least 1) is how many addresses one request may hold (BULK_MAX); the valid
    ones beyond it are counted in ``over_limit``. ``slack_markup``: undo Slack's markup and
    escapes (True for what came through Slack's message text; False for a file's text).
    Never raises on any text.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    reader = _Reader(limit)
    reader.read(text, slack_markup=slack_markup)
    return reader.result()


class _Stop(Exception):
    """Reading stops at the current line: the list is far over the limit."""


class _Reader:
    """One reading: the counts as they grow, and what is left of the bounds."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cap = READ_FACTOR * limit
        self.lines_left = self.cap + 1  # a header besides
        self.cells_left = self.cap * CELLS_PER_ENTRY
        self.emails: list[str] = []
        self.seen: set[str] = set()
        self.refused: list[RefusedEntry] = []
        self.duplicates = 0
        self.over_limit = 0
        self.entries = 0
        self.lines = 0
        self.ignored = 0
        self.header: str | None = None
        self.stopped_at_line: int | None = None

    def read(self, text: str, *, slack_markup: bool) -> None:
        too_long = len(text) > MAX_LIST_CHARS
        text = text[:MAX_LIST_CHARS].removeprefix("\ufeff")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        cut_at_line = None
        if too_long:
            # Only whole lines: the line the cut falls in is not read.
            text = text[: text.rfind("\n") + 1]
            cut_at_line = text.count("\n") + 1
        # The first line with something on it and no @: a header if a line with an @ follows.
        pending: tuple[int, str, str] | None = None
        first, number = True, 0
        try:
            for number, line in _lines(text):
                self.lines_left -= 1
                if self.lines_left < 0:
                    raise _Stop
                plain = _plain(line, slack_markup=slack_markup)
                if _has_at(plain):
                    if pending is not None:
                        self.header = shown(pending[1].strip())
                        pending = None
                    first = False
                    self.lines += 1
                    self._read_cells(number, plain)
                    continue
                cell = self._first_cell(plain)
                if cell is None:
                    continue  # quotes and spaces only: a blank line
                if first:
                    first = False
                    pending = (number, plain, cell)
                    continue
                self._count_entry()
                self.lines += 1
                self._refuse_line(number, plain, cell)
        except _Stop:
            self.stopped_at_line = number
        else:
            self.stopped_at_line = cut_at_line
        if pending is not None:
            # No line with an address followed: the first line was not a header after all.
            refused_after, self.refused = self.refused, []
            self.entries += 1
            self.lines += 1
            self._refuse_line(*pending)
            self.refused.extend(refused_after)

    def _count_entry(self) -> None:
        if self.entries >= self.cap:
            raise _Stop
        self.entries += 1

    def _spend_cell(self) -> None:
        self.cells_left -= 1
        if self.cells_left < 0:
            raise _Stop

    def _first_cell(self, plain: str) -> str | None:
        for cell in _cells(plain):
            self._spend_cell()
            if cell.strip():
                return cell
        return None

    def _read_cells(self, number: int, plain: str) -> None:
        """Read a line that has an @: each cell with one is an entry, the others are ignored."""
        for cell in _cells(plain):
            self._spend_cell()
            if not cell.strip():
                continue
            if not _has_at(cell):
                self.ignored += 1
                continue
            self._count_entry()
            try:
                email = validate_email(cell)
            except InvalidInput as exc:
                self.refused.append(RefusedEntry(number, shown(cell.strip()), str(exc)))
                continue
            keys = _keys(email)
            if not keys.isdisjoint(self.seen):
                self.duplicates += 1
                continue
            self.seen.update(keys)
            if len(self.emails) < self.limit:
                self.emails.append(email)
            else:
                self.over_limit += 1

    def _refuse_line(self, number: int, plain: str, first_cell: str) -> None:
        """A line with no address: refused once, as a whole, for the reason its first cell is
        refused (every cell would be: none has an @)."""
        try:
            validate_email(first_cell)
            reason = "That does not look like an email address (name@domain)."
        except InvalidInput as exc:
            reason = str(exc)
        self.refused.append(RefusedEntry(number, shown(plain.strip()), reason))

    def result(self) -> EmailList:
        return EmailList(
            emails=tuple(self.emails),
            refused=tuple(self.refused),
            duplicates=self.duplicates,
            over_limit=self.over_limit,
            limit=self.limit,
            entries=self.entries,
            lines=self.lines,
            header=self.header,
            ignored=self.ignored,
            stopped_at_line=self.stopped_at_line,
        )


def _keys(email: str) -> set[str]:
    """What an address is compared by: as the store compares emails (bot/store/rows.py's
    ``email_keys``: lower-cased, in each of its IDNA forms; the store's replacement of NUL and
    surrogates cannot matter here, as ``validate_email`` refuses both)."""
    return {form.lower() for form in (email, *other_forms(email))}


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of ``text`` (line breaks already ``\\n``), with their numbers from 1,
    each from its first character that is not a separator."""
    number, counted_to = 1, 0
    for match in _LINE_RE.finditer(text):
        number += text.count("\n", counted_to, match.start())
        counted_to = match.start()
        yield number, match.group()


def _plain(line: str, *, slack_markup: bool) -> str:
    """The line as typed: Slack's markup unwrapped (literal < and > are only Slack's), then its
    escapes undone."""
    if not slack_markup:
        return line
    return slack_unescape(_MARKUP_RE.sub(lambda m: unwrap_slack(m.group()), line))


def _cells(plain: str) -> Iterator[str]:
    """The cells of a line (blank ones too), a quoted cell (``"a@b.c"``) without its quotes."""
    for match in _CELL_RE.finditer(plain):
        cell = match.group()
        if len(cell) >= 2 and cell[0] == cell[-1] == '"' and _one_quoted(cell):
            cell = cell[1:-1].replace('""', '"')
        yield cell


def _one_quoted(cell: str) -> bool:
    """Whether the cell is one quoted segment (``"a@b.c"``, ``"a""b"``), not several
    (``"a"@"b"``, which validate_email refuses as it is)."""
    inner = cell[1:-1]
    return '"' not in inner.replace('""', "")


def _has_at(cell: str) -> bool:
    return any(sign in cell for sign in _AT_SIGNS)
