"""Pure logic: reading the list a bulk request is made of (bot/domain/bulk_input.py), from what
a person pasted or the text of an attached .txt/.csv file."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import bulk_input
from bot.domain.bulk_input import (
    MAX_SHOWN_CHARS,
    READ_FACTOR,
    RefusedEntry,
    decode_list_file,
    read_email_list,
)
from bot.domain.inputs import InvalidInput, hidden_kind, validate_email

NOT_AN_ADDRESS = "That does not look like an email address (name@domain)."


def reason(entry: str) -> str:
    """What validate_email says of ``entry``."""
    with pytest.raises(InvalidInput) as caught:
        validate_email(entry)
    return str(caught.value)


# ------------------------------------------------------------------------------ separators


@pytest.mark.parametrize(
    "text",
    [
        "a@example.com\nb@example.com\nc@example.com",
        "a@example.com\r\nb@example.com\r\nc@example.com\r\n",
        "a@example.com\rb@example.com\rc@example.com",
        "a@example.com,b@example.com,c@example.com",
        "a@example.com;b@example.com;c@example.com",
        "a@example.com b@example.com c@example.com",
        "a@example.com\tb@example.com\tc@example.com",
        "a@example.com, b@example.com;\tc@example.com",
        "\n\n  a@example.com ,, ;;\n\n\tb@example.com\n ,\nc@example.com,\n\n",
    ],
)
def test_each_separator_reads_the_same_list(text):
    """One a line (any line break), or separated by commas, semicolons, spaces or tabs, in
    any mix; blank entries and blank lines are ignored, not refused."""
    read = read_email_list(text, limit=10)
    assert read.emails == ("a@example.com", "b@example.com", "c@example.com")
    assert (read.refused, read.duplicates, read.over_limit) == ((), 0, 0)
    assert read.usable


def test_a_space_that_is_not_ascii_is_not_a_separator_but_refused_inside_an_address():
    """A no-break space between two addresses does not split them: the entry is refused as
    validate_email refuses a space inside an address, and shown with a visible mark."""
    read = read_email_list("a@example.com\u00a0b@example.com", limit=10)
    assert read.emails == ()
    (refused,) = read.refused
    assert refused.reason == reason("a@example.com\u00a0b@example.com")
    assert refused.text == "a@example.com\ufffdb@example.com"


def test_a_trailing_no_break_space_is_trimmed_as_for_a_single_address():
    """What validate_email trims around one address (a no-break space copied from a web page)
    is trimmed in a list too."""
    assert read_email_list("a@example.com\u00a0\nb@example.com", limit=5).emails == (
        "a@example.com",
        "b@example.com",
    )


# ------------------------------------------------------------------------ Slack's markup


def test_slack_mailto_markup_and_escapes_are_undone():
    """Addresses Slack wrapped as links (with or without a label, several on a line) and the
    &amp; it escaped read as what the person typed."""
    text = (
        "<mailto:a@example.com|a@example.com>, <mailto:b@example.com|Bob Smith>\n"
        "<c@example.com>\n"
        "<mailto:a&amp;b@example.com|a&amp;b@example.com>\n"
        "d&amp;e@example.com"
    )
    read = read_email_list(text, limit=10)
    assert read.emails == (
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "a&b@example.com",
        "d&e@example.com",
    )
    assert read.refused == ()


def test_escaped_angle_brackets_are_what_was_typed_and_refused_as_such():
    """`&lt;` is a < the person typed, not Slack's markup: it is part of the entry, refused
    and shown as typed."""
    read = read_email_list("&lt;a@example.com&gt;", limit=5)
    (refused,) = read.refused
    assert refused.text == "<a@example.com>"
    assert refused.reason == reason("<a@example.com>")


def test_a_files_text_is_taken_as_it_is():
    """With slack_markup=False (a file's text, which Slack does not touch) nothing is
    unwrapped or unescaped."""
    read = read_email_list("<mailto:a@example.com|a@example.com>", limit=5, slack_markup=False)
    assert read.emails == ()
    assert read.refused[0].text == "<mailto:a@example.com|a@example.com>"


# ---------------------------------------------------------------------------- duplicates


def test_duplicates_collapse_case_insensitively_keeping_the_first_form():
    """Emails compare as the store compares them (lower-cased): the first spelling is kept,
    the later ones counted as duplicates."""
    read = read_email_list(
        "Alice@Example.com\nbob@example.com\nalice@example.COM\nALICE@EXAMPLE.COM", limit=10
    )
    assert read.emails == ("Alice@example.com", "bob@example.com")
    assert read.duplicates == 2


def test_an_address_and_its_other_idna_form_are_one():
    """The ASCII (xn--) form of a domain, its Unicode form and a fullwidth spelling are the
    same address: one entry in the list, the Unicode form kept."""
    read = read_email_list(
        "x@xn--bcher-kva.de\nX@BÜCHER.DE\nx@ｂüｃｈｅｒ．ｄｅ\ny@example.com\ny@ｅｘａｍｐｌｅ.com",
        limit=10,
    )
    assert read.emails == ("x@bücher.de", "y@example.com")
    assert read.duplicates == 3


# ------------------------------------------------------------------------------- refused


def test_refused_entries_have_their_line_their_text_and_validate_emails_reason():
    """Each bad entry is listed with the line it was on, the text as typed and the reason
    validate_email gives; the valid ones around it are read."""
    text = "a@example.com\n\nbob@\nc@example.com, d@@example.com\nevil@example\u202e.com"
    read = read_email_list(text, limit=10)
    assert read.emails == ("a@example.com", "c@example.com")
    assert read.refused == (
        RefusedEntry(3, "bob@", reason("bob@")),
        RefusedEntry(4, "d@@example.com", reason("d@@example.com")),
        RefusedEntry(5, "evil@example\ufffd.com", reason("evil@example\u202e.com")),
    )
    assert not read.usable


@pytest.mark.parametrize(
    "hidden", ["\u200b", "\u202e", "\x00", "\x1b", "\u00ad", "\u2066", "\ufeff", "\U000e0041"]
)
def test_hidden_characters_are_refused_as_validate_email_refuses_them(hidden):
    """An address with a character that cannot be seen (zero-width, bidi, control, soft
    hyphen, tag) is refused with validate_email's reason naming it; what is shown back has no
    hidden character."""
    entry = f"ali{hidden}ce@example.com"
    read = read_email_list(f"ok@example.com\n{entry}", limit=5)
    (refused,) = read.refused
    assert refused.line == 2
    assert refused.reason == reason(entry)
    assert "U+" in refused.reason
    assert not any(hidden_kind(c) for c in refused.text)


def test_a_line_with_no_address_is_refused_once_whole():
    """A line without any @ (a name, a typo) is refused once, shown whole, for the reason its
    first cell is; a fullwidth @ counts as an attempt at an address and is refused too."""
    read = read_email_list("a@example.com\nCarol Jones\nbob＠example.com", limit=5)
    assert read.refused == (
        RefusedEntry(2, "Carol Jones", NOT_AN_ADDRESS),
        RefusedEntry(3, "bob＠example.com", reason("bob＠example.com")),
    )


def test_a_quoted_local_part_is_refused_not_unquoted():
    """CSV quotes are taken off a whole quoted cell only: ``"a@evil.test"@example.com`` stays
    as typed and is refused for its quoted part."""
    entry = '"a@evil.test"@example.com'
    read = read_email_list(entry, limit=5)
    assert read.emails == ()
    assert read.refused == (RefusedEntry(1, entry, reason(entry)),)


# ------------------------------------------------------------------------------------ CSV


def test_a_csv_with_a_header_and_a_name_column():
    """A customer export: the header is skipped (not refused), the name and id cells beside
    each address are ignored (counted), quoted cells lose their quotes, a row without any
    address is refused."""
    text = (
        "email,name,id\r\n"
        'alice@example.com,"Alice Smith",1\r\n'
        '"bob@example.com","Smith, Bob",2\r\n'
        "\r\n"
        "Carol,3\r\n"
        "dave@example.com,,4\r\n"
    )
    read = read_email_list(text, limit=10, slack_markup=False)
    assert read.emails == ("alice@example.com", "bob@example.com", "dave@example.com")
    assert read.header == "email,name,id"
    assert read.refused == (RefusedEntry(5, "Carol,3", NOT_AN_ADDRESS),)
    assert read.ignored == 5
    assert read.entries == read.lines == 4


def test_the_header_is_only_a_header_when_an_address_follows():
    """A single line without an @ is a refused entry, not a header (else a lone typo would
    vanish): the first line is a header only when a line with an address follows."""
    read = read_email_list("bob", limit=5)
    assert read.header is None
    assert read.refused == (RefusedEntry(1, "bob", NOT_AN_ADDRESS),)
    read = read_email_list("email\nbob\ncarol", limit=5)
    assert [r.line for r in read.refused] == [1, 2, 3]


def test_quoted_cells():
    """A quoted cell is one cell: separators inside it do not split it, ``""`` is a quote,
    spaces around the address inside are trimmed; an unterminated quote runs to the line's
    end, and that cell is refused as typed."""
    read = read_email_list(
        '"a@example.com";"b@example.com" " c@example.com "\n"x ""y"" z",d@example.com\n'
        '"e@example.com, f@example.com',
        limit=10,
    )
    assert read.emails == ("a@example.com", "b@example.com", "c@example.com", "d@example.com")
    assert read.ignored == 1
    entry = '"e@example.com, f@example.com'
    assert read.refused == (RefusedEntry(3, entry, reason(entry)),)


def test_a_bom_at_the_start_is_dropped_and_elsewhere_refused():
    """A UTF-8 BOM opening the text (as Excel writes it) is not part of the first address;
    one inside an address is an invisible character like any other."""
    read = read_email_list("\ufeffemail\na@example.com\nb\ufeff@example.com", limit=5)
    assert read.header == "email"
    assert read.emails == ("a@example.com",)
    assert read.refused[0].reason == reason("b\ufeff@example.com")


# -------------------------------------------------------------------------------- limits


def test_over_the_limit_is_counted_not_listed():
    """Beyond ``limit`` distinct valid addresses, the rest are counted in over_limit (their
    duplicates still collapse), not listed; the list is not usable and says by how much."""
    text = "\n".join(["a@example.com", "b@example.com", "c@example.com", "d@example.com"] * 2)
    read = read_email_list(text + "\ne@example.com", limit=3)
    assert read.emails == ("a@example.com", "b@example.com", "c@example.com")
    assert (read.over_limit, read.duplicates) == (2, 4)
    assert not read.usable
    assert read.summary() == "5 emails, 2 over the limit of 3 in one request. Split the list."


def test_reading_stops_far_over_the_limit_and_says_where():
    """After READ_FACTOR × limit entries reading stops, at the line it would go on with: the
    rest is not read, and the list is refused whatever it holds."""
    text = "\n".join(f"u{i}@example.com" for i in range(100))
    read = read_email_list(text, limit=5)
    assert read.entries == READ_FACTOR * 5
    assert read.stopped_at_line == READ_FACTOR * 5 + 1
    assert (len(read.emails), read.over_limit) == (5, READ_FACTOR * 5 - 5)
    assert not read.usable
    assert read.summary().startswith(
        f"The list is too long to read whole (reading stopped at line {READ_FACTOR * 5 + 1})"
    )
    exactly = read_email_list("\n".join(f"u{i}@example.com" for i in range(20)), limit=5)
    assert exactly.stopped_at_line is None


def test_reading_stops_beyond_the_character_bound(monkeypatch):
    """Text beyond MAX_LIST_CHARS is not read: the line the bound falls in and what follows
    are left, and the list says where reading stopped."""
    monkeypatch.setattr(bulk_input, "MAX_LIST_CHARS", 40)
    text = "a@example.com\nb@example.com\nc@example.com\nd@example.com\n"
    read = read_email_list(text, limit=100)
    assert read.emails == ("a@example.com", "b@example.com")
    assert read.stopped_at_line == 3
    assert not read.usable


@pytest.mark.parametrize(
    "text",
    [
        '"' * 2_000_000,
        "<" * 1_000_000 + "|" * 1_000_000,
        "<" + "|" * 3000 + ">" + "a@example.com," * 100_000,
        "a," * 1_000_000 + "x@example.com",
        ",\n" * 1_000_000,
        '"",""\n' * 300_000,
        '"a@example.com,' * 150_000,
        "x" * 2_000_000,
    ],
    ids=["quotes", "brackets", "pipes", "names", "separators", "blank-cells", "open", "long"],
)
def test_pathological_text_is_read_in_bounded_time(text):
    """Texts of megabytes built to make a careless reader backtrack or loop per character
    are read in well under the time a quadratic reading would take (hours), and within the
    bounds: entries and cells stop at their caps."""
    started = time.monotonic()
    read = read_email_list(text, limit=1000)
    assert time.monotonic() - started < 10
    assert read.entries <= READ_FACTOR * 1000 + 1
    assert not read.usable


# ------------------------------------------------------------------------------- summary


def test_the_summary_counts_and_shows_the_first_refused():
    """The field error: how many of how many lines were refused, the first three with their
    line, text and reason, and how many more."""
    lines = [f"u{i}@example.com" for i in range(250)]
    for number, bad in ((4, "bob@"), (9, "carol"), (20, "d@x"), (30, "e@")):
        lines[number - 1] = bad
    read = read_email_list("\n".join(lines), limit=1000)
    assert read.summary() == (
        f"4 of 250 lines refused: line 4 `bob@` ({NOT_AN_ADDRESS}); line 9 `carol` "
        f"({NOT_AN_ADDRESS}); line 20 `d@x` ({reason('d@x')}); and 1 more."
    )
    assert read.summary(first=1).endswith("; and 3 more.")


def test_the_summary_says_entries_when_lines_hold_several():
    """When lines hold several entries, the count is of entries, not lines; one refused of
    one is singular."""
    read = read_email_list("a@example.com, bob@, c@example.com", limit=5)
    assert read.summary().startswith("1 of 3 entries refused: line 1 `bob@`")
    assert read_email_list("bob@", limit=5).summary().startswith("1 of 1 line refused")


def test_the_summary_clips_and_makes_the_text_safe():
    """A long entry is clipped to MAX_SHOWN_CHARS with "…"; a backtick cannot close the code
    span it is shown in; a tab is a space."""
    long_entry = "x" * 300 + "@example.com"
    read = read_email_list(f"{long_entry}\nab`c@\n", limit=5)
    first, second = read.refused
    assert first.text == "x" * (MAX_SHOWN_CHARS - 1) + "…"
    assert second.text == "abˋc@"
    assert read.summary().count("`") == 4
    assert read_email_list("Carol\tJones\na@example.com\nDave\tX", limit=5).refused[0].text == (
        "Dave X"
    )


def test_the_summary_of_a_usable_list_says_what_was_read():
    """A usable list's summary counts the emails, the duplicates left out, the header and
    the cells ignored."""
    read = read_email_list(
        "email,name\na@example.com,Ann\nA@example.com,Ann\nb@example.com,Bo", limit=5
    )
    assert read.usable
    assert read.summary() == (
        "2 emails; 1 duplicate left out; first line `email,name` read as a header; "
        "3 cells without an @ (names, ids) ignored."
    )


def test_an_empty_list_is_not_usable():
    """Nothing but blanks: no address found, not usable."""
    read = read_email_list(" \n,;\n\t", limit=5)
    assert not read.usable
    assert read.summary() == "No email address found: paste one a line, or attach a file."


def test_the_limit_must_be_positive():
    """A limit under 1 is a programming error, not a person's."""
    with pytest.raises(ValueError):
        read_email_list("a@example.com", limit=0)


# ------------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["list.txt", "LIST.CSV", "customers.Csv", " emails.txt "])
def test_a_txt_or_csv_file_in_utf8_is_read_with_or_without_bom(name):
    """.txt and .csv (any case) in UTF-8 are decoded; a UTF-8 BOM is dropped."""
    assert decode_list_file("a@bücher.de\n".encode(), name) == "a@bücher.de\n"
    assert decode_list_file(b"\xef\xbb\xbfa@example.com", name) == "a@example.com"


@pytest.mark.parametrize("name", ["list.xlsx", "list.txt.exe", "csv", "", "list.pdf"])
def test_other_file_names_are_refused(name):
    """Anything not ending in .txt or .csv is refused, saying what to attach."""
    with pytest.raises(InvalidInput, match=r"is not a \.txt or \.csv file"):
        decode_list_file(b"a@example.com", name)


def test_a_file_that_is_not_utf8_is_refused_saying_which_line():
    """Latin-1 bytes are not UTF-8: refused, saying the line and how to save it; UTF-16 is
    named as such."""
    with pytest.raises(InvalidInput, match=r"not UTF-8 text \(line 2 .*save it as UTF-8"):
        decode_list_file(b"a@example.com\nj\xf6rg@example.de\n", "list.csv")
    with pytest.raises(InvalidInput, match="is UTF-16 text"):
        decode_list_file("a@example.com".encode("utf-16"), "list.txt")


def test_a_file_over_slacks_limit_is_refused(monkeypatch):
    """More than 10 MB (Slack's limit) is refused before it is decoded."""
    monkeypatch.setattr(bulk_input, "MAX_LIST_BYTES", 10)
    with pytest.raises(InvalidInput, match="larger than 10 MB"):
        decode_list_file(b"a@example.com", "list.txt")


def test_a_file_name_is_shown_safely():
    """A file name with a reordering character or a backtick is shown with neither."""
    with pytest.raises(InvalidInput) as caught:
        decode_list_file(b"", "list\u202etxt.`exe")
    assert "\u202e" not in str(caught.value)
    assert str(caught.value).count("`") == 2


# ----------------------------------------------------------------------------- properties

LOCALS = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9_+-]{1,5})?", fullmatch=True)
DOMAINS = st.sampled_from(
    [
        ("example.com", "example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("example.org", "EXAMPLE.ORG"),
        ("mail.example.net", "mail.example.net"),
        ("räksmörgås.se", "xn--rksmrgs-5wao1o.se"),
    ]
)
SEPARATORS = st.sampled_from(["\n", "\r\n", ",", ";", " ", "\t", ", ", " ;\t", "\n\n", ",,"])


@st.composite
def spelled_lists(draw):
    """Distinct addresses (normalised), and a text spelling each of them one or more times,
    in other cases, domain forms, Slack markup or CSV quotes, joined by random separators."""
    addresses = draw(
        st.lists(st.tuples(LOCALS, DOMAINS), min_size=1, max_size=12, unique_by=lambda a: a[0])
    )
    picks = draw(
        st.lists(st.integers(0, len(addresses) - 1), max_size=20).map(
            lambda later: list(range(len(addresses))) + later
        )
    )
    order = draw(st.permutations(picks))
    spellings = []
    for index in order:
        local, (unicode_domain, other_domain) = addresses[index]
        local = local.upper() if draw(st.booleans()) else local
        address = f"{local}@{draw(st.sampled_from([unicode_domain, other_domain]))}"
        wrap = draw(st.sampled_from(["{}", "<mailto:{0}|{0}>", "<{}>", '"{}"']))
        spellings.append(wrap.format(address))
    text = spellings[0]
    for spelling in spellings[1:]:
        text += draw(SEPARATORS) + spelling
    firsts = list(dict.fromkeys(order))
    expected = [f"{addresses[i][0]}@{addresses[i][1][0]}" for i in firsts]
    return text, expected, len(order) - len(firsts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spelled_lists())
def test_any_spelling_of_valid_addresses_reads_back_deduplicated(case):
    """Valid addresses, each spelled one or more times in any case, domain form, Slack
    markup or CSV quotes, joined by any separators, read back as the distinct addresses in
    first-seen order, with the rest counted as duplicates and nothing refused."""
    text, expected, duplicates = case
    read = read_email_list(text, limit=1000)
    assert [e.lower() for e in read.emails] == expected
    assert read.duplicates == duplicates
    assert read.refused == ()
    assert read.usable


TEXT_PIECES = st.sampled_from(
    [
        "@", "a@example.com", "\n", "\r", ",", ";", " ", "\t", '"', "<", ">", "|", "mailto:",
        "&amp;", "&lt;", "\ufeff", "\u202e", "\x00", "\u00a0", "xn--", "ü", "．", "＠", "`",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.lists(TEXT_PIECES | st.text(max_size=6), max_size=60).map("".join),
    limit=st.integers(1, 8),
    slack_markup=st.booleans(),
)
def test_reading_never_raises_and_its_counts_add_up(text, limit, slack_markup):
    """On any text: no exception; every entry is exactly one of listed, refused, duplicate or
    over the limit; the listed ones are valid and distinct, at most ``limit``; refused texts
    are short and have nothing hidden; lines go in order; there is always a summary."""
    read = read_email_list(text, limit=limit, slack_markup=slack_markup)
    counted = len(read.emails) + len(read.refused) + read.duplicates + read.over_limit
    assert read.entries == counted
    assert len(read.emails) <= limit
    assert all(validate_email(e) == e for e in read.emails)
    assert len({e.lower() for e in read.emails}) == len(read.emails)
    assert [r.line for r in read.refused] == sorted(r.line for r in read.refused)
    for refused in read.refused:
        assert len(refused.text) <= MAX_SHOWN_CHARS
        assert not any(hidden_kind(c) for c in refused.text)
    assert read.summary(first=2)
