"""The requester's direct messages: where the request went (Cancel is on the request message
itself), what replaces a DM that offered Cancel (posted before it moved there) once Cancel can no
longer act, how the request ended, and that it could not be posted."""

from __future__ import annotations

from typing import Any

from bot.domain.model import Operation, State, VerificationRequest
from bot.domain.outcomes import NotResendable, Resent
from bot.slack import ids
from bot.slack.blocks.batch import emails_words, shown_as_batch
from bot.slack.blocks.batch_reply import batch_cancelled_dm, batch_outcome_dm, batch_submitted_dm
from bot.slack.blocks.provider import mask_emails
from bot.slack.blocks.request import cancel_element
from bot.slack.blocks.text import (
    Blocks,
    by_rule,
    code,
    context,
    deciders,
    esc,
    operation_words,
    section,
    user,
    when,
)


def _asked(request: VerificationRequest) -> str:
    """``Your request to resend the verification email for `a@b.c```."""
    return f"Your request to {operation_words(request.operation)} for {emails_words(request)}"


def submitted_dm(request: VerificationRequest, channel: str) -> tuple[str, Blocks]:
    """The DM telling the requester where the request went; no button (the request message
    carries their Cancel), so it never needs rewriting."""
    if shown_as_batch(request):
        return batch_submitted_dm(request, channel)
    if by_rule(request) and request.rule is not None:
        text = (
            f"{_asked(request)} was posted in <#{esc(channel)}>. The rule "
            f"*{esc(request.rule.name)}* approves it: nobody needs to; it runs once the "
            "provider's view of the domain is read. I will tell you here how it ends."
        )
        return text, [section(text)]
    text = (
        f"{_asked(request)} was posted in <#{esc(channel)}> for approval. It expires "
        f"{when(request.expires_at)}. I will tell you here when it is decided; until then you "
        "can cancel it with *Cancel request* on the request message there."
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
    posted = f"{_asked(request)} was posted in <#{esc(channel)}> for approval."
    match request.state:
        case State.REJECTED if isinstance(request.items[0].outcome, NotResendable):
            what = ":no_entry_sign: The provider cannot resend it"
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
    """What replaces the DM whose Cancel button was clicked (what the requester hears of it)."""
    if shown_as_batch(request):
        return batch_cancelled_dm(request)
    return (
        f":leftwards_arrow_with_hook: You cancelled your request to "
        f"{operation_words(request.operation)} for {emails_words(request)}. Nothing was sent to "
        "the provider."
    )


def outcome_dm(request: VerificationRequest, channel: str) -> str:
    if shown_as_batch(request):
        return batch_outcome_dm(request, channel)
    where = f"<#{esc(channel)}>"
    by = deciders(request, "an approver")
    asked = _asked(request)
    outcome = request.outcome
    match request.state:
        case State.SUCCEEDED if request.operation is Operation.RESEND:
            to = (
                f" to {code(mask_emails(outcome.recipient), 120)}"
                if isinstance(outcome, Resent)
                else ""
            )
            return (
                f":white_check_mark: {asked} was approved by {by} and the provider sent the "
                f"verification email again{to}. Details are in the thread in {where}."
            )
        case State.SUCCEEDED:
            return (
                f":white_check_mark: {asked} was approved by {by} and the verification was "
                f"cleared. Details are in the thread in {where}."
            )
        case State.REJECTED if isinstance(outcome, NotResendable):
            return (
                f":no_entry_sign: {asked} was closed before approval: "
                f"{code(mask_emails(outcome.reason), 600)} Nothing was sent. Choose *Clear the "
                "stuck verification* instead, or ask again once the provider can resend."
            )
        case State.REJECTED:
            note = f" Reason: {esc(request.decision_note)}" if request.decision_note else ""
            return f":no_entry_sign: {asked} was rejected by {by}.{note}"
        case State.UNKNOWN:
            return (
                f":grey_question: {asked} was approved by {by}, but the provider gave no "
                "answer, so it may or may not have acted: the outcome is unknown. See the "
                f"thread in {where}."
            )
        case State.EXPIRED:
            return f"{asked} expired without a decision."
        case State.CANCELLED:
            return f"You cancelled your request to {operation_words(request.operation)} for " + (
                f"{emails_words(request)}."
            )
        case State.RESOLVED:
            return (
                f":ballot_box_with_check: The outcome of {asked[0].lower()}{asked[1:]} was "
                f"unknown; {user(request.decided_by or '')} checked with the provider and "
                f"closed it as resolved. See the thread in {where}."
            )
        case _:
            return (
                f":x: {asked} was approved by {by}, but the provider call failed. See the "
                f"thread in {where}."
            )


def not_posted_dm(request: VerificationRequest, channel: str, reason: str) -> str:
    return (
        f":warning: I could not post your request to {operation_words(request.operation)} for "
        f"{emails_words(request)} in <#{esc(channel)}> ({esc(reason)}), so it was not sent for "
        "approval. "
        "Ask an admin to run `python -m bot check`."
    )
