"""What a person typed, validated: an email address, a reason, a rejection note.

The validators see plain text only. Slack's own markup (``<mailto:…|…>``, its ``&amp;``
escapes) is undone before text reaches them, by the listeners (bot/slack/listeners/parsing.py)
and by the reading of a bulk list (bot/domain/bulk_input.py), both with the two pure helpers
here: ``unwrap_slack`` and ``slack_unescape``.
"""

from __future__ import annotations

import re
import unicodedata

import idna

MAX_REASON_CHARS = 500
MAX_EMAIL_CHARS = 254

# Who may do what is named by Slack ID (APPROVERS, REQUESTERS, a policy rule's lists): a user
# (U…, or W… in Enterprise Grid), a user group (S…), or everyone (every full member).
USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")
GROUP_ID_RE = re.compile(r"^S[A-Z0-9]{2,}$")
EVERYONE = "*"


class InvalidInput(ValueError):
    """Input a person typed that we cannot use; the message is safe to show them."""


# RFC 5322 atext for an unquoted local part; non-ASCII letters are allowed as RFC 6531 does.
# (Quoted local parts are refused: see validate_email.)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_LOCAL_RE = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")
# A label of the domain's ASCII (A-label) form: letters, digits and hyphens.
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# Characters that reorder the text around them (Unicode's bidirectional controls).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt): shown as nothing,
# whatever their category (a Hangul filler is a letter; a variation selector a mark).
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def hidden_kind(char: str) -> str | None:
    """What kind of character ``char`` is, in words, when it cannot be seen or changes how the
    text around it is shown (control, format, bidirectional, invisible, unassigned); None for
    one a person can see (the plain space is one)."""
    if char == " ":
        return None
    if char in _BIDI_CONTROLS:
        return "a character that reverses or reorders the text around it"
    category = unicodedata.category(char)
    if category == "Cc":
        return "a control character"
    code = ord(char)
    if category == "Cf" or any(low <= code <= high for low, high in _IGNORABLE_RANGES):
        return "an invisible character"
    if category in ("Zl", "Zp", "Zs"):
        return "a space or line separator"
    if category in ("Cn", "Co", "Cs"):
        return "a character with no visible form (unassigned or private use)"
    return None


# Names of control characters (Unicode gives them none, only aliases).
_CONTROL_NAMES = {0x00: "NULL", 0x08: "BACKSPACE", 0x1B: "ESCAPE", 0x7F: "DELETE"}


def char_name(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``, ``U+001B ESCAPE`` (``U+0001`` when it has no name)."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(ord(char), "")
    return f"U+{ord(char):04X}{f' {name}' if name else ''}"


def domain_forms(domain: str) -> tuple[str, str]:
    """The domain normalised by IDNA 2008 with UTS #46 mapping (as browsers map it: fullwidth
    letters, ``。`` and upper case map, ``faß`` stays), as (Unicode form, ASCII form); raises
    InvalidInput when IDNA refuses it."""
    try:
        ascii_form = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        unicode_form = idna.decode(ascii_form)
    except idna.IDNAError as exc:
        raise InvalidInput(
            f"The domain after the @ is not a valid domain name ({str(exc)[:120]})."
        ) from None
    return unicode_form.rstrip("."), ascii_form.rstrip(".")


def domain_variants(domain: str) -> tuple[str, ...]:
    """``domain`` as given, then each of its IDNA forms (Unicode, ASCII) that differs; only
    ``domain`` when IDNA refuses it (a name stored before addresses were normalised)."""
    try:
        forms = domain_forms(domain)
    except InvalidInput:
        return (domain,)
    return tuple(dict.fromkeys((domain, *forms)))


def other_forms(email: str) -> tuple[str, ...]:
    """``email`` with its domain in its other IDNA forms, where they differ (the ASCII form of
    ``a@bücher.example``, the Unicode form of ``a@xn--bcher-kva.example``); () when its domain
    has one form, or is one IDNA refuses. A bare domain gives its other forms."""
    local, at, domain = email.rpartition("@")
    return tuple(f"{local}{at}{form}" for form in domain_variants(domain)[1:])


# Slack's markup around a link or an address it recognised (``<mailto:a@b.c|a@b.c>``).
SLACK_WRAPPED_RE = re.compile(r"^<([^<>]*)>")


def unwrap_slack(token: str) -> str:
    """Undo Slack's markup around a link or email: ``<mailto:a@b.c|a@b.c>``, ``<a@b.c>``."""
    m = SLACK_WRAPPED_RE.match(token)
    if not m:
        return token
    inner = m.group(1)
    target = inner
    if "|" in inner:
        # "|" may occur inside an address, so find the split where target and label agree.
        for i, ch in enumerate(inner):
            if ch != "|":
                continue
            left, right = inner[:i], inner[i + 1 :]
            if left.removeprefix("mailto:") == right:
                target = left
                break
        else:
            target = inner.split("|", 1)[0]
    if target.lower().startswith("mailto:"):
        target = target[len("mailto:") :]
        # mailto: links may carry ?subject=...; the address is what comes before.
        target = target.split("?", 1)[0]
    return target


def slack_unescape(text: str) -> str:
    # Slack escapes exactly &, < and > in message text.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def validate_email(raw: str) -> str:
    """Return the address normalised, or raise InvalidInput saying why it is refused.

    The domain is normalised with IDNA 2008 / UTS #46 and kept in its Unicode form (U-labels,
    lower case, NFC): ``alice@ｅｘａｍｐｌｅ．com`` is ``alice@example.com``, and
    ``alice@xn--bcher-kva.example`` is ``alice@bücher.example``, so one address is one key
    whichever form was typed. Refused: characters that cannot be seen or that reorder text
    (NUL, ESC, U+200B, U+202E, …) anywhere, and quoted local parts
    (``"a@evil.test"@example.com``), which can make one address look like another.
    """
    email = raw.strip()
    if not email:
        raise InvalidInput("Please enter an email address.")
    if len(email) > MAX_EMAIL_CHARS:
        raise InvalidInput(f"That is longer than an email address can be ({MAX_EMAIL_CHARS}).")
    if any(c.isspace() for c in email):
        raise InvalidInput("An email address cannot contain spaces or line breaks.")
    for char in email:
        if kind := hidden_kind(char):
            raise InvalidInput(
                f"The address contains {kind} ({char_name(char)}), which cannot be seen in a "
                "message and could hide what the address really is. Type it again without it."
            )
    if '"' in email:
        raise InvalidInput(
            'A quoted part ("…") is not accepted in an address: it can make one address look '
            'like another, as in "a@evil.test"@example.com.'
        )
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidInput("That does not look like an email address (name@domain).")
    if len(local) > 64:
        raise InvalidInput("The part before the @ is longer than 64 characters.")
    if not _LOCAL_RE.match(local):
        raise InvalidInput("The part before the @ has characters an email address cannot have.")
    local = unicodedata.normalize("NFC", local)  # one spelling of what looks the same
    unicode_domain, ascii_domain = domain_forms(domain)
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput("The domain after the @ is not a valid domain name.")
    if labels[-1].isdigit():
        raise InvalidInput("The domain after the @ is not a valid domain name.")
    if len(local) + 1 + len(unicode_domain) > MAX_EMAIL_CHARS:
        raise InvalidInput(f"That is longer than an email address can be ({MAX_EMAIL_CHARS}).")
    return f"{local}@{unicode_domain}"


def domain_of(email: str) -> str:
    return email.rpartition("@")[2]


def validate_reason(raw: str | None) -> str:
    reason = (raw or "").strip()
    if not reason:
        raise InvalidInput("Please give a reason or a ticket reference.")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"Please keep the reason under {MAX_REASON_CHARS} characters.")
    return reason


def clean_note(raw: str | None) -> str:
    """An optional note (a rejection's reason): trimmed, at most MAX_REASON_CHARS."""
    return (raw or "").strip()[:MAX_REASON_CHARS]


def check_reason(reason: str, pattern: str, rule: str) -> None:
    """Raise InvalidInput unless ``reason`` matches the rule's ``reason_pattern`` (searched,
    as ``re.search`` does: the pattern anchors itself with ``^`` where it wants to)."""
    if re.search(pattern, reason) is None:
        raise InvalidInput(
            f"The reason must match the pattern {pattern} (the rule {rule} asks for it)."
        )
