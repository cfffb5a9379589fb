"""The modals: the request form (/verify-email), Reject's optional reason and Resolved's
required note."""

from __future__ import annotations

import json
from typing import Any

from bot.domain.inputs import MAX_EMAIL_CHARS, MAX_REASON_CHARS
from bot.domain.model import VerificationRequest
from bot.slack import ids
from bot.slack.blocks.provider import provider_line
from bot.slack.blocks.text import esc, plain, section, user

WHAT_APPROVAL_DOES = (
    "When an approver clicks *Approve*, the provider clears the stuck email verification for "
    "this address: its domains' verification caches are cleared and the affected clients are "
    "notified. Nothing happens until someone other than you approves."
)


def request_modal(
    email: str | None, reason: str = "", private_metadata: str = ""
) -> dict[str, Any]:
    email_element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ids.EMAIL_INPUT,
        "max_length": MAX_EMAIL_CHARS,
        "placeholder": plain("alice@example.com"),
    }
    if email:
        email_element["initial_value"] = email
    reason_element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ids.REASON_INPUT,
        "multiline": True,
        "max_length": MAX_REASON_CHARS,
        "placeholder": plain("Ticket reference, or why this verification is stuck"),
    }
    if reason:
        reason_element["initial_value"] = reason[:MAX_REASON_CHARS]
    return {
        "type": "modal",
        "callback_id": ids.REQUEST_VIEW,
        "title": plain("Verify email", 24),
        "submit": plain("Ask for approval", 24),
        "close": plain("Cancel", 24),
        "private_metadata": private_metadata[:3000],
        "blocks": [
            {
                "type": "input",
                "block_id": ids.EMAIL_BLOCK,
                "label": plain("Email address"),
                "element": email_element,
            },
            {
                "type": "input",
                "block_id": ids.REASON_BLOCK,
                "label": plain("Reason or ticket reference"),
                "element": reason_element,
            },
            section(WHAT_APPROVAL_DOES),
        ],
    }


def reject_modal(request: VerificationRequest) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": ids.REJECT_VIEW,
        "title": plain("Reject request", 24),
        "submit": plain("Reject", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"request_id": request.id}),
        "blocks": [
            section(
                f"Reject {user(request.requester)}'s request to clear `{esc(request.email)}`? "
                "The provider will not be called."
            ),
            {
                "type": "input",
                "block_id": ids.REJECT_REASON_BLOCK,
                "optional": True,
                "label": plain("Reason (optional, shown in the channel)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.REJECT_REASON_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            },
        ],
    }


def resolve_modal(request: VerificationRequest) -> dict[str, Any]:
    """The form Resolved opens: why the unknown outcome needs no Retry (required)."""
    reading = request.readback
    seen = f"\n{provider_line(reading, lead='Last reading')}" if reading is not None else ""
    return {
        "type": "modal",
        "callback_id": ids.RESOLVE_VIEW,
        "title": plain("Close as resolved", 24),
        "submit": plain("Resolved", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"request_id": request.id}),
        "blocks": [
            section(
                f"Close the request to clear `{esc(request.email)}` as *resolved*? Its outcome "
                "is unknown; once resolved it cannot be retried, and the provider is not called "
                f"again.{seen}"
            ),
            {
                "type": "input",
                "block_id": ids.RESOLVE_NOTE_BLOCK,
                "label": plain("Why (what the provider shows; kept in the audit log)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.RESOLVE_NOTE_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            },
        ],
    }
