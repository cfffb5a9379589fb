"""The request message in APPROVAL_CHANNEL: who asks to clear what and why, its state in one
line, Approve and Reject (and the requester's Cancel) while it is pending, the provider's view
and earlier requests for the same email or domain. The Home tab shows the same state line and
buttons for each request."""

from __future__ import annotations

from typing import Any, assert_never

from bot.domain.model import History, State, VerificationRequest
from bot.domain.outcomes import Cleared
from bot.slack import ids
from bot.slack.blocks.provider import error_summary, provider_line
from bot.slack.blocks.text import (
    Blocks,
    approvals_line,
    clip,
    code,
    context,
    day,
    deciders,
    email_forms,
    esc,
    plain,
    section,
    user,
    when,
)


def request_message(
    request: VerificationRequest, required: int = 1, history: History | None = None
) -> tuple[str, Blocks]:
    """Fallback text and blocks for the request message, in whatever state it is.
    ``required``: APPROVALS_REQUIRED (above 1, the message says who has approved so far);
    ``history``: earlier requests for the same email or domain, shown so a repeat stands out."""
    summary = (
        f"*Email verification request* from {user(request.requester)}\n"
        f"*Email:* {email_forms(request.email)}\n"
        f"*Domain:* {email_forms(request.domain)}\n"
        f"*Reason:* {esc(request.reason)}\n"
        f"*Expires:* {when(request.expires_at)}"
    )
    blocks: Blocks = [section(summary), section(state_line(request, required))]
    if request.state is State.PENDING:
        blocks.append(decision_buttons(request, cancel=True))
    if request.view is not None:
        blocks.append(context(provider_line(request.view)))
    if request.readback is not None and request.state is not State.PENDING:
        blocks.append(context(provider_line(request.readback, lead="Provider after the call")))
    if history is not None:
        blocks.append(context(history_line(history)))
    blocks.append(context(f"Request `{esc(request.id)}` · state: {request.state.value}"))
    text = (
        f"Email verification request from {user(request.requester)} for "
        f"{esc(request.email)}: {request.state.value}"
    )
    return text, blocks


def state_line(request: VerificationRequest, required: int) -> str:
    """The request's state in one line (who approved, what the provider did): on the request
    message and on the request's row in the Home tab."""
    by = deciders(request, "someone")
    outcome = request.outcome
    match request.state:
        case State.PENDING:
            if required > 1:
                return (
                    f":hourglass: *Waiting for approval*: {approvals_line(request, required)}; "
                    "each by a different approver other than the requester"
                )
            return ":hourglass: *Waiting for approval* by an approver other than the requester"
        case State.EXECUTING:
            return f":arrows_counterclockwise: *Approved by {by}*, calling the provider…"
        case State.SUCCEEDED:
            n = len(outcome.cleared_domains) if isinstance(outcome, Cleared) else 0
            return f":white_check_mark: *Cleared*, approved by {by} ({n} domain(s) cleared)"
        case State.FAILED:
            return f":x: *Failed*, approved by {by}: {code(error_summary(outcome), 400)}"
        case State.UNKNOWN:
            return (
                f":grey_question: *Outcome unknown*, approved by {by}: the provider may or may "
                "not have acted. In the thread an approver can check the provider, retry, or "
                "close it as resolved."
            )
        case State.REJECTED:
            note = f": {esc(request.decision_note)}" if request.decision_note else ""
            return f":no_entry_sign: *Rejected by {by}*{note}"
        case State.EXPIRED:
            return ":hourglass_flowing_sand: *Expired* without a decision; ask again if needed"
        case State.CANCELLED:
            return f":leftwards_arrow_with_hook: *Cancelled by {by}*, who asked for it"
        case State.RESOLVED:
            note = f": {esc(request.decision_note)}" if request.decision_note else ""
            return (
                f":ballot_box_with_check: *Resolved by {by}* after an unknown outcome, without "
                f"a Retry{note}"
            )
    assert_never(request.state)


def decision_buttons(
    request: VerificationRequest, block_id: str = ids.ACTIONS_BLOCK, *, cancel: bool = False
) -> dict[str, Any]:
    """Approve (with its confirmation) and Reject for a pending request, and with ``cancel``
    the requester's Cancel (the request message's: the service refuses it to anyone else).
    ``block_id``: the channel message's own; the Home tab, showing several requests, gives
    each row its own (ids.for_request), as Slack refuses a view with a repeated block_id."""
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            {
                "type": "button",
                "action_id": ids.APPROVE_ACTION,
                "text": plain("Approve"),
                "style": "primary",
                "value": request.id,
                "confirm": {
                    "title": plain("Clear this verification?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            f"The provider will clear the verification for "
                            f"{email_forms(request.email)} and notify its clients. "
                            "This cannot be undone.",
                            300,
                        ),
                    },
                    "confirm": plain("Approve", 30),
                    "deny": plain("Cancel", 30),
                    "style": "primary",
                },
            },
            {
                "type": "button",
                "action_id": ids.REJECT_ACTION,
                "text": plain("Reject"),
                "style": "danger",
                "value": request.id,
            },
            *([cancel_element(request)] if cancel else []),
        ],
    }


def cancel_element(request: VerificationRequest) -> dict[str, Any]:
    """The requester's Cancel (with its confirmation): on the request message, beside Approve
    and Reject, and on the requester's Home tab."""
    return {
        "type": "button",
        "action_id": ids.CANCEL_ACTION,
        "text": plain("Cancel request"),
        "value": request.id,
        "confirm": {
            "title": plain("Cancel this request?", 100),
            "text": {
                "type": "mrkdwn",
                "text": clip(
                    f"Only the person who asked for it can cancel it. Nobody will be able to "
                    f"approve the request for `{esc(request.email)}` any more.",
                    300,
                ),
            },
            "confirm": plain("Cancel request", 30),
            "deny": plain("Keep it", 30),
        },
    }


def history_line(history: History) -> str:
    """``cleared 2 times in the last 30 days, last by @ana on 2026-11-30; 1 rejected``. When
    there were more than it counts (``history.more``), it says so and what the counts cover:
    ``more than 20 in the last 30 days; of the latest 20: cleared 20 times, …``."""
    where = f"`{esc(history.email)}` or `{esc(history.domain)}`"
    if not history.requests:
        return f":mag: No earlier request for {where} in the last {history.days} days."
    parts = []
    period = f" in the last {history.days} days"
    if history.more:
        parts.append(f"more than {len(history.requests)}{period}")
        period = ""
    cleared = history.cleared
    if cleared:
        last = cleared[0]
        times = "once" if len(cleared) == 1 else f"{len(cleared)} times"
        parts.append(
            f"cleared {times}{period}, last by {deciders(last, 'someone')} on "
            f"{day(last.updated_at)}"
        )
    others: dict[str, int] = {}
    for earlier in history.requests:
        if earlier.state is not State.SUCCEEDED:
            others[earlier.state.value] = others.get(earlier.state.value, 0) + 1
    parts.extend(f"{n} {state}" for state, n in sorted(others.items()))
    if history.more:
        counted = "; ".join(parts[1:])
        return (
            f":mag: Earlier requests for {where}: {parts[0]}; "
            f"of the latest {len(history.requests)}: {counted}."
        )
    return f":mag: Earlier requests for {where}: " + "; ".join(parts) + "."
