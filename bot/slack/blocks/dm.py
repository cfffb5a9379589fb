"""The requester's direct messages: where the request went (Cancel is on the request message
itself), what replaces a DM that offered Cancel (posted before it moved there) once Cancel can no
longer act, how the request ended, and that it could not be posted."""

from __future__ import annotations

from typing import Any

from bot.domain.model import State, VerificationRequest
from bot.slack import ids
from bot.slack.blocks.request import cancel_element
from bot.slack.blocks.text import (
    Blocks,
    context,
    deciders,
    esc,
    section,
    user,
    when,
)


def submitted_dm(request: VerificationRequest, channel: str) -> tuple[str, Blocks]:
    """The DM telling the requester where the request went; no button (the request message
    carries their Cancel), so it never needs rewriting."""
    text = (
        f"Your request to clear the email verification for `{esc(request.email)}` was posted "
        f"in <#{esc(channel)}> for approval. It expires {when(request.expires_at)}. "
        "I will tell you here when it is decided; until then you can cancel it with "
        "*Cancel request* on the request message there."
    )
    return text, [section(text)]


def settled_dm(request: VerificationRequest, channel: str) -> tuple[str, Blocks]:
    """What replaces a DM that offered Cancel (one posted before Cancel moved to the request
    message) once the request is decided: the same sentence, and what happened instead."""
    if request.state is State.CANCELLED:
        text = cancelled_dm(request)  # as the click on Cancel itself rewrites it
        return text, [section(text)]
    if request.state is State.PENDING:  # pragma: no cover - settled only once decided
        return submitted_dm(request, channel)
    posted = (
        f"Your request to clear the email verification for `{esc(request.email)}` was posted "
        f"in <#{esc(channel)}> for approval."
    )
    match request.state:
        case State.REJECTED:
            what = f":no_entry_sign: Rejected by {user(request.decided_by or '')}"
        case State.EXPIRED:
            what = ":hourglass_flowing_sand: It expired without a decision"
        case _:
            what = f":white_check_mark: Approved by {deciders(request, 'an approver')}"
    line = f"{what}, so it can no longer be cancelled; how it ended is below."
    return f"{posted} {line}", [section(posted), context(line)]


def cancel_button(request: VerificationRequest, block_id: str = ids.CANCEL_BLOCK) -> dict[str, Any]:
    """The requester's Cancel in a row of its own: the Home tab gives each request's row its
    own ``block_id`` (ids.for_request)."""
    return {"type": "actions", "block_id": block_id, "elements": [cancel_element(request)]}


def cancelled_dm(request: VerificationRequest) -> str:
    """What replaces the DM whose Cancel button was clicked."""
    return (
        f":leftwards_arrow_with_hook: You cancelled your request to clear the email "
        f"verification for `{esc(request.email)}`. Nothing was sent to the provider."
    )


def outcome_dm(request: VerificationRequest, channel: str) -> str:
    where = f"<#{esc(channel)}>"
    by = deciders(request, "an approver")
    match request.state:
        case State.SUCCEEDED:
            return (
                f":white_check_mark: Your request for `{esc(request.email)}` was approved by "
                f"{by} and the verification was cleared. Details are in the thread in {where}."
            )
        case State.REJECTED:
            note = f" Reason: {esc(request.decision_note)}" if request.decision_note else ""
            return (
                f":no_entry_sign: Your request for `{esc(request.email)}` was rejected by "
                f"{by}.{note}"
            )
        case State.UNKNOWN:
            return (
                f":grey_question: Your request for `{esc(request.email)}` was approved by {by}, "
                "but the provider gave no answer, so it may or may not have acted: the outcome "
                f"is unknown. See the thread in {where}."
            )
        case State.EXPIRED:
            return f"Your request for `{esc(request.email)}` expired without a decision."
        case State.CANCELLED:
            return f"You cancelled your request for `{esc(request.email)}`."
        case State.RESOLVED:
            return (
                f":ballot_box_with_check: The outcome of your request for `{esc(request.email)}` "
                f"was unknown; {user(request.decided_by or '')} checked with the provider and "
                f"closed it as resolved. See the thread in {where}."
            )
        case _:
            return (
                f":x: Your request for `{esc(request.email)}` was approved by {by}, but the "
                f"provider call failed. See the thread in {where}."
            )


def not_posted_dm(request: VerificationRequest, channel: str, reason: str) -> str:
    return (
        f":warning: I could not post your request for `{esc(request.email)}` in "
        f"<#{esc(channel)}> ({esc(reason)}), so it was not sent for approval. "
        "Ask an admin to run `python -m bot check`."
    )
