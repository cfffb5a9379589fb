"""What a person typed, validated: an email address, a reason, a rejection note.

These see plain text only. Slack's own markup (``<mailto:…|…>``, its ``&amp;`` escapes) is
undone by the listeners before anything reaches here (bot/listeners/parsing.py).
"""

from __future__ import annotations

import re

MAX_REASON_CHARS = 500
MAX_EMAIL_CHARS = 254


class InvalidInput(ValueError):
    """Input a person typed that we cannot use; the message is safe to show them."""


# RFC 5322 atext for an unquoted local part; non-ASCII letters are allowed as RFC 6531 does.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_LOCAL_RE = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")
_QUOTED_LOCAL_RE = re.compile(r'^"([^"\\\r\n]|\\[^\r\n])*"$')
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9\u0080-\U0010FFFF-]{1,63}(?<!-)$")


def validate_email(raw: str) -> str:
    """Return the address normalised (domain lower-cased), or raise InvalidInput."""
    email = raw.strip()
    if not email:
        raise InvalidInput("Please enter an email address.")
    if len(email) > MAX_EMAIL_CHARS:
        raise InvalidInput(f"That is longer than an email address can be ({MAX_EMAIL_CHARS}).")
    if any(c.isspace() for c in email) and not email.startswith('"'):
        raise InvalidInput("An email address cannot contain spaces.")
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidInput("That does not look like an email address (name@domain).")
    if len(local) > 64:
        raise InvalidInput("The part before the @ is longer than 64 characters.")
    if not (_LOCAL_RE.match(local) or _QUOTED_LOCAL_RE.match(local)):
        raise InvalidInput("The part before the @ has characters an email address cannot have.")
    domain = domain.rstrip(".").lower()
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput("The domain after the @ is not a valid domain name.")
    if labels[-1].isdigit():
        raise InvalidInput("The domain after the @ is not a valid domain name.")
    return f"{local}@{domain}"


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
