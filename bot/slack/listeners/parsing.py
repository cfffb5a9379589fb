"""What Slack sends, turned into plain values for the domain: command text, modal fields,
button values, modal metadata. Everything here is untrusted input: a wrong shape gives "" or
None, never an exception.

Slack's own markup is undone here (and in the reading of a bulk list, which shares the pure
helpers ``unwrap_slack`` and ``slack_unescape`` of bot/domain/inputs.py): an address may
arrive as ``<mailto:a@b.c|a@b.c>`` (or ``<a@b.c>``), and what a person typed arrives with
``&``, ``<`` and ``>`` escaped as ``&amp;``, ``&lt;`` and ``&gt;``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.domain.inputs import (
    MAX_REASON_CHARS,
    SLACK_WRAPPED_RE,
    InvalidInput,
    slack_unescape,
    unwrap_slack,
    validate_email,
)
from bot.domain.model import Operation, is_request_id

HELP_WORDS = frozenset({"help", "-h", "--help", "?"})
STATUS_WORD = "status"
RESEND_WORD = "resend"
BULK_WORD = "bulk"


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
    # What the form is opened to ask for: ``resend <email>`` chooses the resend.
    operation: Operation = Operation.CONFIRM
    # ``bulk``: open the bulk form (a list of emails pasted or attached; no address here).
    bulk: bool = False


def parse_command_text(text: object) -> CommandInput:
    """Parse what Slack sent after ``/verify-email``.

    ``""`` opens an empty form, ``help`` shows usage, ``status <email>`` asks about an
    address, ``<email> [reason…]`` prefills the form, ``resend [<email> [reason…]]`` too, with
    "Resend the verification email" chosen; ``bulk`` opens the bulk form (nothing after it).
    """
    text = (text if isinstance(text, str) else "").strip()
    if not text:
        return CommandInput()
    if text.lower() in HELP_WORDS:
        return CommandInput(help=True)
    first, _, rest = text.partition(" ")
    if first.lower() == BULK_WORD:
        if rest.strip():
            return CommandInput(
                bulk=True,
                error="`/verify-email bulk` takes nothing after it: type it alone, then paste "
                "the emails into the form it opens (or attach a .txt or .csv file there)",
            )
        return CommandInput(bulk=True)
    if first.lower() == RESEND_WORD:
        asked = parse_command_text(rest) if rest.strip() else CommandInput()
        if asked.help or asked.status or asked.operation is not Operation.CONFIRM:
            # "resend help", "resend status x", "resend resend x": no address to resend for.
            word = rest.strip().partition(" ")[0]
            asked = CommandInput(error="say the address: resend alice@example.com", raw_email=word)
        return CommandInput(
            email=asked.email,
            reason=asked.reason,
            error=asked.error,
            raw_email=asked.raw_email,
            operation=Operation.RESEND,
        )
    if first.lower() == STATUS_WORD:
        if not rest.strip():
            return CommandInput(status=True, error="Say which address: status alice@example.com")
        asked = parse_command_text(rest)
        return CommandInput(
            status=True, email=asked.email, error=asked.error, raw_email=asked.raw_email
        )
    if first.startswith("<"):
        m = SLACK_WRAPPED_RE.match(text)
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


def input_value(view: object, block_id: str, action_id: str) -> str:
    """The submitted value of a plain_text_input, or "" when absent (optional, or tampered)."""
    node: object = view
    for key in ("state", "values", block_id, action_id, "value"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) else ""


def selected_value(view: object, block_id: str, action_id: str) -> str | None:
    """The value of the option chosen in a radio group or select, or None when none was (or
    the state is not shaped as Slack sends it)."""
    node: object = view
    for key in ("state", "values", block_id, action_id, "selected_option", "value"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) else None


def files_of(view: object, block_id: str, action_id: str) -> list[dict[str, Any]]:
    """The file objects submitted in a file_input (what Slack sends as its state's ``files``),
    or [] when the state is missing, null, empty or not shaped as Slack sends it; an entry
    that is not an object is left out."""
    node: object = view
    for key in ("state", "values", block_id, action_id, "files"):
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, list):
        return []
    return [dict(f) for f in node if isinstance(f, dict)]


def has_field(view: object, block_id: str) -> bool:
    """Whether the submitted form's state has ``block_id`` at all (a form opened before that
    field existed has not)."""
    values = view.get("state", {}).get("values") if isinstance(view, dict) else None
    return isinstance(values, dict) and block_id in values


def operation_of(value: str | None) -> Operation | None:
    """The operation a form's choice names, or None for anything else (the value is
    untrusted: only the two the form offers are taken)."""
    for operation in Operation:
        if value == operation.value:
            return operation
    return None


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
