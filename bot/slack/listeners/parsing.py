"""What Slack sends, turned into plain values for the domain: command text, modal fields,
button values, modal metadata. Everything here is untrusted input: a wrong shape gives "" or
None, never an exception.

Slack's own markup is undone here, and only here: an address may arrive as
``<mailto:a@b.c|a@b.c>`` (or ``<a@b.c>``), and what a person typed arrives with ``&``, ``<``
and ``>`` escaped as ``&amp;``, ``&lt;`` and ``&gt;``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bot.domain.inputs import MAX_REASON_CHARS, InvalidInput, validate_email
from bot.domain.model import is_request_id

_SLACK_WRAPPED_RE = re.compile(r"^<([^<>]*)>")
HELP_WORDS = frozenset({"help", "-h", "--help", "?"})
STATUS_WORD = "status"


@dataclass(frozen=True)
class CommandInput:
    help: bool = False
    # ``status EMAIL``: show the email's open request and last outcomes (no form).
    status: bool = False
    email: str | None = None
    reason: str = ""
    # When the text was not a valid address: what to tell the person.
    error: str | None = None
    raw_email: str = ""


def parse_command_text(text: object) -> CommandInput:
    """Parse what Slack sent after ``/verify-email``.

    ``""`` opens an empty form, ``help`` shows usage, ``status <email>`` asks about an
    address, ``<email> [reason…]`` prefills the form.
    """
    text = (text if isinstance(text, str) else "").strip()
    if not text:
        return CommandInput()
    if text.lower() in HELP_WORDS:
        return CommandInput(help=True)
    first, _, rest = text.partition(" ")
    if first.lower() == STATUS_WORD:
        if not rest.strip():
            return CommandInput(status=True, error="Say which address: status alice@example.com")
        asked = parse_command_text(rest)
        return CommandInput(
            status=True, email=asked.email, error=asked.error, raw_email=asked.raw_email
        )
    if first.startswith("<"):
        m = _SLACK_WRAPPED_RE.match(text)
        if m:
            first, rest = m.group(0), text[m.end() :]
    # Slack's own markup uses literal <>; what the person typed arrives escaped, so unwrap first.
    candidate = slack_unescape(unwrap_slack(first))
    reason = slack_unescape(rest.strip())[:MAX_REASON_CHARS]
    try:
        email = validate_email(candidate)
    except InvalidInput as e:
        return CommandInput(error=str(e), raw_email=candidate)
    return CommandInput(email=email, reason=reason)


def unwrap_slack(token: str) -> str:
    """Undo Slack's markup around a link or email: ``<mailto:a@b.c|a@b.c>``, ``<a@b.c>``."""
    m = _SLACK_WRAPPED_RE.match(token)
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


def input_value(view: object, block_id: str, action_id: str) -> str:
    """The submitted value of a plain_text_input, or "" when absent (optional, or tampered)."""
    node: object = view
    for key in ("state", "values", block_id, action_id, "value"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) else ""


def user_of(body: object) -> str:
    """The id of the person who clicked or submitted (interactions), or ""."""
    user = body.get("user") if isinstance(body, dict) else None
    user_id = user.get("id") if isinstance(user, dict) else None
    return user_id if isinstance(user_id, str) else ""


def request_id_of(action: object) -> str | None:
    """The request id a button carries as its value, if it is shaped as one."""
    value = action.get("value") if isinstance(action, dict) else None
    return value if is_request_id(value) else None


def request_id_from_metadata(raw: object) -> str | None:
    """The request id a modal carries in its private_metadata (``{"request_id": …}``)."""
    try:
        data: Any = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return None
    request_id = data.get("request_id") if isinstance(data, dict) else None
    return request_id if is_request_id(request_id) else None
