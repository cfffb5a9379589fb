"""The App Home tab: what waits for the approver, the person's own requests (with Cancel while
pending) and the last decisions, within Slack's 100 blocks a view, longer lists counted."""

from __future__ import annotations

from typing import Any

from bot.domain.model import State, VerificationRequest
from bot.domain.service import HOME_COUNT_CAP, HomeData
from bot.slack import ids
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
    section,
    user,
    when,
)

HOME_BLOCK_LIMIT = 100  # Slack's limit for a view
HOME_WAITING_SHOWN = 20  # two blocks each, with their buttons
HOME_MINE_SHOWN = 15
HOME_DECIDED_SHOWN = 10


def _home_request_line(request: VerificationRequest) -> str:
    return (
        f"`{esc(request.email)}` from {user(request.requester)}: {esc(clip(request.reason, 200))}"
        f"\nAsked {when(request.created_at)} to {operation_words(request.operation)}, expires "
        f"{when(request.expires_at)}"
    )


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
            status = state_line(request, data.required)
            out.append(section(f"{_home_request_line(request)}\n{status}"))
            if not by_rule(request):  # (the service lists none of those: nobody is asked)
                row = ids.for_request(ids.ACTIONS_BLOCK, request.id)
                out.append(decision_buttons(request, row))
        waiting_more = _more(
            len(data.waiting), HOME_WAITING_SHOWN, "waiting", channel, at_least=data.waiting_more
        )
        if waiting_more:
            out.append(waiting_more)
        out.append({"type": "divider"})
    mine_count, mine_words, mine_capped = _counted(data.mine_count, len(data.mine))
    out.append(header(f"Your requests, last {data.days} days ({mine_words})"))
    if not data.mine:
        out.append(section("You have asked for nothing lately. Type `/verify-email` to ask."))
    for request in data.mine[:HOME_MINE_SHOWN]:
        out.append(section(f"{_home_request_line(request)}\n{state_line(request, data.required)}"))
        if request.state is State.PENDING:
            out.append(cancel_button(request, ids.for_request(ids.CANCEL_BLOCK, request.id)))
    if more := _more(mine_count, HOME_MINE_SHOWN, "of yours", channel, at_least=mine_capped):
        out.append(more)
    if data.is_approver:
        out.append({"type": "divider"})
        out.append(header("Last decisions"))
        if not data.decided:
            out.append(section("No decisions yet."))
        for request in data.decided[:HOME_DECIDED_SHOWN]:
            out.append(
                context(
                    f"`{esc(request.email)}` ({operation_words(request.operation)}): "
                    f"{state_line(request, data.required)} ({when(request.updated_at)})"
                )
            )
        decided_count, _, decided_capped = _counted(data.decided_count, len(data.decided))
        decided_more = _more(
            decided_count, HOME_DECIDED_SHOWN, "decisions", channel, at_least=decided_capped
        )
        if more := decided_more:
            out.append(more)
    return {"type": "home", "blocks": out[:HOME_BLOCK_LIMIT]}
