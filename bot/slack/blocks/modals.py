"""The modals: the request form (/verify-email: the address, what should happen to it, and
why), Reject's optional reason and Resolved's required note."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from bot.domain.inputs import MAX_EMAIL_CHARS, MAX_REASON_CHARS
from bot.domain.model import Operation, RuleTerms, State, VerificationRequest
from bot.slack import ids
from bot.slack.blocks.batch import emails_words, shown_as_batch
from bot.slack.blocks.provider import provider_line
from bot.slack.blocks.text import esc, operation_title, operation_words, plain, section, user

WHAT_APPROVAL_DOES = (
    "*Clear the stuck verification*: when an approver clicks *Approve*, the provider clears "
    "the stuck email verification for this address: its domains' verification caches are "
    "cleared and the affected clients are notified.\n"
    "*Resend the verification email*: the provider sends the verification email again; the "
    "customer still clicks its link themselves (the safer choice).\n"
    "Nothing happens until someone other than you approves, unless the approval rules need "
    "no approval for it."
)
# What each choice of the form's radio group says under its title (at most 75 characters).
OPERATION_HINTS = {
    Operation.CONFIRM: "The provider marks it verified now, without the customer's click",
    Operation.RESEND: "The provider emails the verification link again",
}
HINT_LIMIT = 2000  # Slack's limit for an input block's hint


def operation_option(operation: Operation) -> dict[str, Any]:
    """One choice of the form's radio group; its value is the operation's."""
    return {
        "text": plain(operation_title(operation)),
        "description": plain(OPERATION_HINTS[operation]),
        "value": operation.value,
    }


def reason_hint(rules: Mapping[Operation, RuleTerms | None]) -> str | None:
    """What the reason must match, from the rules that would decide each operation offered
    (``The reason must match ^(TICKET|ZD)-\\d+ (rule default).``); None when nothing is asked."""
    asks = {
        op: (rule.reason_pattern, rule.name)
        for op, rule in rules.items()
        if rule is not None and rule.reason_pattern is not None
    }
    if not asks:
        return None
    if len(set(asks.values())) == 1 and len(asks) == len(rules):
        pattern, name = next(iter(asks.values()))
        return f"The reason must match {pattern} (rule {name})."
    return " ".join(
        f"To {operation_words(op)}, the reason must match {pattern} (rule {name})."
        for op, (pattern, name) in asks.items()
    )


def request_modal(
    email: str | None,
    reason: str = "",
    private_metadata: str = "",
    *,
    operation: Operation = Operation.CONFIRM,
    refused: Collection[Operation] = (),
    rules: Mapping[Operation, RuleTerms | None] | None = None,
) -> dict[str, Any]:
    """The request form: the address (``email`` prefilled), what should happen (``operation``
    chosen; those the rules ``refused`` for the address left out, and said so), and the reason
    (``reason`` prefilled; the pattern the ``rules`` of the operations offered ask of it, said
    in its hint)."""
    offered = [op for op in Operation if op not in refused] or list(Operation)
    chosen = operation if operation in offered else offered[0]
    options = [operation_option(op) for op in offered]
    operation_block: dict[str, Any] = {
        "type": "input",
        "block_id": ids.OPERATION_BLOCK,
        "label": plain("What should happen?"),
        "element": {
            "type": "radio_buttons",
            "action_id": ids.OPERATION_INPUT,
            "options": options,
            "initial_option": options[offered.index(chosen)],
        },
    }
    left_out = [op for op in Operation if op not in offered]
    if left_out:
        names = " and ".join(operation_title(op) for op in left_out)
        operation_block["hint"] = plain(
            f"{names}: not offered for this address, the approval rules do not allow it.",
            HINT_LIMIT,
        )
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
    reason_block: dict[str, Any] = {
        "type": "input",
        "block_id": ids.REASON_BLOCK,
        "label": plain("Reason or ticket reference"),
        "element": reason_element,
    }
    hint = reason_hint({op: (rules or {}).get(op) for op in offered}) if rules else None
    if hint is not None:
        reason_block["hint"] = plain(hint, HINT_LIMIT)
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
            operation_block,
            reason_block,
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
                f"Reject {user(request.requester)}'s request to "
                f"{operation_words(request.operation)} for {emails_words(request)}? The provider "
                "will not be called."
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
    """The form Resolved opens: why the unknown outcome needs no Retry (required). For a bulk
    request, Resolved closes all its unknown emails together."""
    reading = None if shown_as_batch(request) else request.readback
    seen = f"\n{provider_line(reading, lead='Last reading')}" if reading is not None else ""
    what = (
        f"`{esc(request.email)}`"
        if not shown_as_batch(request)
        else (
            f"the {sum(i.state is State.UNKNOWN for i in request.items)} emails of bulk request "
            f"`{esc(request.id)}` whose outcome is unknown"
        )
    )
    return {
        "type": "modal",
        "callback_id": ids.RESOLVE_VIEW,
        "title": plain("Close as resolved", 24),
        "submit": plain("Resolved", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"request_id": request.id}),
        "blocks": [
            section(
                f"Close the request to {operation_words(request.operation)} for "
                f"{what} as *resolved*? Its outcome "
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
