"""The App Home tab: what waits for the approver, the person's own requests (with Cancel while
pending) and the last decisions, within Slack's 100 blocks a view, longer lists counted. A bulk
request is listed as a batch (``Bulk: confirm 300 emails``), with its progress while it runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.batch import is_batch
from bot.domain.model import Operation, State, VerificationRequest
from bot.domain.service import HOME_COUNT_CAP, HomeData
from bot.slack import ids
from bot.slack.blocks.batch_words import batch_state_line, batch_title, domains_words
from bot.slack.blocks.dm import cancel_button
from bot.slack.blocks.request import decision_buttons, state_line
from bot.slack.blocks.text import (
    Blocks,
    by_rule,
    clip,
    context,
    esc,
    header,
    operation_words,
    plain,
    section,
    user,
    when,
)

HOME_BLOCK_LIMIT = 100  # Slack's limit for a view
HOME_WAITING_SHOWN = 20  # two blocks each, with their buttons
HOME_MINE_SHOWN = 15
HOME_DECIDED_SHOWN = 10
HOME_RUNNING_SHOWN = 5  # bulk requests running now, one block each


def _home_request_line(request: VerificationRequest) -> str:
    if is_batch(request):
        return (
            f"*{batch_title(request)}* from {user(request.requester)}: "
            f"{esc(clip(request.reason, 200))}\n{domains_words(request)}"
            f"\nAsked {when(request.created_at)} to {operation_words(request.operation)}, "
            f"expires {when(request.expires_at)}"
        )
    return (
        f"`{esc(request.email)}` from {user(request.requester)}: {esc(clip(request.reason, 200))}"
        f"\nAsked {when(request.created_at)} to {operation_words(request.operation)}, expires "
        f"{when(request.expires_at)}"
    )


def _state_line(request: VerificationRequest, required: int, now: datetime | None) -> str:
    if is_batch(request):
        return batch_state_line(request, required, now)
    return state_line(request, required)


def _batch_buttons(request: VerificationRequest, block_id: str, *, decide: bool) -> dict[str, Any]:
    """A bulk request's row of buttons: Approve (its confirmation counting the emails) and
    Reject (``decide``), else the requester's Cancel; the same actions and values as a single
    request's, so the same listeners take them."""
    n = len(request.items)
    if request.operation is Operation.RESEND:
        does = f"The provider will send the verification email again for each of {n} emails."
    else:
        does = (
            f"The provider will clear the verification of each of {n} emails and notify its "
            "clients. This cannot be undone."
        )
    if not decide:
        cancel = {
            "type": "button",
            "action_id": ids.CANCEL_ACTION,
            "text": plain("Cancel request"),
            "value": request.id,
            "confirm": {
                "title": plain("Cancel this bulk request?", 100),
                "text": {
                    "type": "mrkdwn",
                    "text": f"Nobody will be able to approve the bulk request for {n} emails.",
                },
                "confirm": plain("Cancel request", 30),
                "deny": plain("Keep it", 30),
            },
        }
        return {"type": "actions", "block_id": block_id, "elements": [cancel]}
    approve = {
        "type": "button",
        "action_id": ids.APPROVE_ACTION,
        "text": plain("Approve"),
        "style": "primary",
        "value": request.id,
        "confirm": {
            "title": plain(f"Approve {n} emails?", 100),
            "text": {"type": "mrkdwn", "text": clip(does, 300)},
            "confirm": plain("Approve", 30),
            "deny": plain("Cancel", 30),
            "style": "primary",
        },
    }
    reject = {
        "type": "button",
        "action_id": ids.REJECT_ACTION,
        "text": plain("Reject"),
        "style": "danger",
        "value": request.id,
    }
    return {"type": "actions", "block_id": block_id, "elements": [approve, reject]}


def _more(
    count: int, shown: int, what: str, channel: str, *, at_least: bool = False
) -> dict[str, Any] | None:
    if count <= shown:
        return None
    plus = "+" if at_least else ""
    return context(f"…and {count - shown}{plus} more {what}: see <#{esc(channel)}>.")


def _counted(count: int | None, listed: int) -> tuple[int, str, bool]:
    """A Home list's count (the store's, capped; else the list's length), its words ("100+"
    when the count stopped at the cap), and whether it did."""
    if count is None:
        return listed, str(listed), False
    capped = count >= HOME_COUNT_CAP
    return count, f"{count}+" if capped else str(count), capped


def home_view(data: HomeData, channel: str) -> dict[str, Any]:
    """One person's Home tab; at most HOME_BLOCK_LIMIT blocks, longer lists counted."""
    out: Blocks = []
    if data.is_approver:
        waiting_words = f"{len(data.waiting)}+" if data.waiting_more else str(len(data.waiting))
        out.append(header(f"Waiting for your approval ({waiting_words})"))
        if not data.waiting:
            out.append(section("Nothing is waiting for you."))
        for request in data.waiting[:HOME_WAITING_SHOWN]:
            status = _state_line(request, data.required, data.now)
            out.append(section(f"{_home_request_line(request)}\n{status}"))
            if not by_rule(request):  # (the service lists none of those: nobody is asked)
                row = ids.for_request(ids.ACTIONS_BLOCK, request.id)
                if is_batch(request):
                    out.append(_batch_buttons(request, row, decide=True))
                else:
                    out.append(decision_buttons(request, row))
        waiting_more = _more(
            len(data.waiting), HOME_WAITING_SHOWN, "waiting", channel, at_least=data.waiting_more
        )
        if waiting_more:
            out.append(waiting_more)
        if data.running:
            out.append(header(f"Bulk requests running ({len(data.running)})"))
            for request in data.running[:HOME_RUNNING_SHOWN]:
                status = _state_line(request, data.required, data.now)
                out.append(section(f"{_home_request_line(request)}\n{status}"))
            if more := _more(len(data.running), HOME_RUNNING_SHOWN, "running", channel):
                out.append(more)
        out.append({"type": "divider"})
    mine_count, mine_words, mine_capped = _counted(data.mine_count, len(data.mine))
    out.append(header(f"Your requests, last {data.days} days ({mine_words})"))
    if not data.mine:
        out.append(section("You have asked for nothing lately. Type `/verify-email` to ask."))
    for request in data.mine[:HOME_MINE_SHOWN]:
        status = _state_line(request, data.required, data.now)
        out.append(section(f"{_home_request_line(request)}\n{status}"))
        if request.state is State.PENDING:
            row = ids.for_request(ids.CANCEL_BLOCK, request.id)
            if is_batch(request):
                out.append(_batch_buttons(request, row, decide=False))
            else:
                out.append(cancel_button(request, row))
    if more := _more(mine_count, HOME_MINE_SHOWN, "of yours", channel, at_least=mine_capped):
        out.append(more)
    if data.is_approver:
        out.append({"type": "divider"})
        out.append(header("Last decisions"))
        if not data.decided:
            out.append(section("No decisions yet."))
        for request in data.decided[:HOME_DECIDED_SHOWN]:
            what = (
                f"*{batch_title(request)}*"
                if is_batch(request)
                else f"`{esc(request.email)}` ({operation_words(request.operation)})"
            )
            out.append(
                context(
                    f"{what}: {_state_line(request, data.required, data.now)} "
                    f"({when(request.updated_at)})"
                )
            )
        decided_count, _, decided_capped = _counted(data.decided_count, len(data.decided))
        decided_more = _more(
            decided_count, HOME_DECIDED_SHOWN, "decisions", channel, at_least=decided_capped
        )
        if more := decided_more:
            out.append(more)
    return {"type": "home", "blocks": out[:HOME_BLOCK_LIMIT]}
