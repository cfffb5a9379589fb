"""What Slack must be told, end to end over real HTTP against the stand-ins, on every backend:

* a Slack outage far longer than the 20 attempts the outbox once gave up after is still
  delivered afterwards; a give-up (after 7 days) is audited and shows in /metrics;
* buttons that can no longer act are taken away, with a line saying what happened instead
  (the thread replies' Check provider / Retry / Resolved, and the Cancel of a requester's DM
  posted before Cancel moved to the request message);
* a request message Slack posted but whose answer was lost is found (message metadata,
  conversations.history) and updated, never posted twice, when the history scope is granted.

The clock the bot reads (requests, sweeps, outbox) is moved instead of waiting.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from worlds import later

from bot.domain.model import Action, State, utcnow
from bot.slack import blocks, ids
from bot.slack.notices import Notice, Surface
from bot.slack.notifier import REQUEST_EVENT
from bot.slack.outbox import GIVE_UP_AFTER
from bot.standins.driver import buttons
from bot.standins.provider import Response
from bot.standins.slack import DEFAULT_SCOPES
from bot.standins.world import APPROVER, REQUESTER, SECOND_APPROVER, World

EMAIL = "alice@example.com"


@pytest.fixture
def world(database_url, tmp_path):
    """The bot on the backend under test, with a short provider timeout (an unknown outcome in
    half a second), no reminders, and requests that stay approvable for 30 days (so a week of
    outage does not expire them first)."""
    settings = {
        "DATABASE_URL": database_url,
        "HOSTUP_TIMEOUT": 0.5,
        "REMIND_EVERY": 0,
        "REQUEST_TTL": 30 * 86400,
    }
    with World(database_path=tmp_path / "unused.db", settings=settings) as w:
        yield w


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False) + message.get("text", "")


def request_messages(world: World) -> list[dict[str, Any]]:
    """The top-level messages in the approval channel about EMAIL (copies included)."""
    return [m for m in world.slack.messages(world.driver.channel) if f"`{EMAIL}`" in text_of(m)]


def submit_during_outage(world: World, seconds: float) -> str:
    """Open the form, then submit it while Slack is down for ``seconds``: the request is
    stored and its message cannot be posted. Returns the request's id."""
    view = world.driver.modal(world.driver.command(REQUESTER, EMAIL))
    world.slack.outage(seconds)
    reply = world.driver.submit_request(REQUESTER, view, reason="T-1")
    assert reply.status == 200
    request = stored_request(world)  # the form acks first, then stores it
    world.slack.wait_for(
        lambda: bool(world.services.store.outbox_entries(request.id)[0].attempts) or None,
        what="a failed first post",
    )
    return request.id


def stored_request(world: World) -> Any:
    """The one request, once the form's listener (which acks before it stores) has stored it."""
    return world.slack.wait_for(
        lambda: next(iter(world.services.store.list_requests()), None), what="the request stored"
    )


def head(world: World, request_id: str) -> Any:
    return next(
        e for e in world.services.store.outbox_entries(request_id) if e.kind == Notice.POST_REQUEST
    )


# ------------------------------------------------------------------ 8. never abandoned


def test_an_outage_far_longer_than_twenty_attempts_still_delivers_afterwards(world):
    """Slack down for two days of the bot's clock, 48 failed attempts (the outbox once gave
    up after 20, about 1.8 hours, and closed the request): the request stays pending, nothing
    is given up, and once Slack is back its message is posted and the requester told."""
    request_id = submit_during_outage(world, 3600)
    for hour in range(1, 48):
        later(world, hour * 3600)
        world.services.maintenance.run_once()
    assert head(world, request_id).attempts >= 40  # twice the 20 it once gave up after
    stored = world.services.store.get(request_id)
    assert stored.state is State.PENDING and stored.message_ts is None
    trail = world.services.store.audit_log(request_id)
    assert Action.DELIVERY_GIVEN_UP not in [e.action for e in trail]
    world.slack.outage(0)  # Slack is back
    later(world, 48 * 3600)
    world.services.maintenance.run_once()
    stored = world.services.store.get(request_id)
    assert stored.state is State.PENDING and stored.message_ts is not None
    [message] = request_messages(world)
    assert "state: pending" in text_of(message)
    assert buttons(message) == [ids.APPROVE_ACTION, ids.REJECT_ACTION, ids.CANCEL_ACTION]
    assert any("was posted" in m.get("text", "") for m in world.slack.messages(REQUESTER))


def test_a_give_up_after_seven_days_is_audited_and_counted_in_metrics(world):
    """After GIVE_UP_AFTER of Slack not taking the request message, the outbox gives up: the
    request (still pending, never seen by an approver) is closed, the give-up is audited with
    the notice and Slack's error, and GET /metrics counts it by kind."""
    request_id = submit_during_outage(world, 3600)
    later(world, (GIVE_UP_AFTER - timedelta(hours=1)).total_seconds())
    world.services.maintenance.run_once()
    assert world.services.store.get(request_id).state is State.PENDING  # six days and more
    later(world, (GIVE_UP_AFTER + timedelta(minutes=1)).total_seconds())
    world.services.maintenance.run_once()
    stored = world.services.store.get(request_id)
    assert stored.state is State.EXPIRED and stored.message_ts is None
    # The requester's DM ("posted in …") waited in its own lane for the same week and may be
    # given up in the same round, before or after: the request message's give-up is the one.
    [given_up] = [
        e
        for e in world.services.store.audit_log(request_id)
        if e.action == Action.DELIVERY_GIVEN_UP and e.details["notice"] == Notice.POST_REQUEST
    ]
    assert given_up.details["error"] == "HTTP 503"
    assert given_up.from_state is given_up.to_state is State.PENDING
    metrics = httpx.get(f"{world.url}/metrics", timeout=10).text
    assert 'verify_email_outbox_given_up_total{kind="post_request"} 1.0' in metrics


# ---------------------------------------------------------------------- 9. no stale buttons


def unknown_outcome(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request approved while the provider hangs past HOSTUP_TIMEOUT: its message, and the
    thread reply offering Check provider, Retry and Resolved."""
    message = world.driver.ask(REQUESTER, EMAIL)
    world.provider.enqueue(Response.hang(3))
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)
    assert buttons(reply) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    return message, reply


def test_after_resolved_the_replies_lose_their_buttons_and_say_who_resolved(world):
    """Once an approver closes an unknown outcome as resolved, the thread reply that offered
    Check provider / Retry / Resolved, and the Check provider reply that offered them again,
    keep their text but lose the buttons, with a line saying who resolved it instead."""
    message, reply = unknown_outcome(world)
    world.driver.click(SECOND_APPROVER, reply, ids.CHECK_ACTION)
    checked = world.slack.wait_for(
        lambda: len(world.driver.thread(message)) >= 2 and world.driver.thread(message)[1] or None,
        what="the Check provider reply",
    )
    assert buttons(checked) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    clicked = world.driver.click(SECOND_APPROVER, reply, ids.RESOLVE_ACTION)
    view = world.driver.modal(clicked)
    world.driver.submit(
        SECOND_APPROVER, view, {ids.RESOLVE_NOTE_BLOCK: {ids.RESOLVE_NOTE_INPUT: "verified"}}
    )

    def settled() -> list[dict[str, Any]] | None:
        thread = world.driver.thread(message)
        offered = thread[:2]
        return offered if not any(buttons(r) for r in offered) else None

    first, second = world.slack.wait_for(settled, what="the replies without buttons")
    for rewritten in (first, second):
        assert f"Closed as resolved by <@{SECOND_APPROVER}>" in text_of(rewritten)
    assert "outcome is *unknown*" in text_of(first)  # what it said is kept
    assert "checked the provider" in text_of(second)
    assert not any(buttons(r) for r in world.driver.thread(message))


def dm_with_cancel(world: World) -> dict[str, Any]:
    """The requester's "your request was posted" DM (as Slack holds it now)."""
    return next(m for m in world.slack.messages(REQUESTER) if "was posted" in m.get("text", ""))


def as_posted_before_cancel_moved(world: World) -> None:
    """Make the requester's "posted" DM what the bot posted before Cancel moved to the request
    message: the DM with a Cancel button, remembered (as it was then) to be settled."""
    [request] = world.services.store.list_requests()
    dm = dm_with_cancel(world)
    channel = world.slack.dm_channel(REQUESTER)
    world.services.client.chat_update(
        channel=channel,
        ts=dm["ts"],
        text=dm["text"],
        blocks=[blocks.section(dm["text"]), blocks.cancel_button(request)],
    )
    created = world.services.store.audit_log(request.id)[0]
    world.services.store.record_buttons(
        request.id, Surface.CANCEL_DM, channel, dm["ts"], audit_id=created.id, now=utcnow()
    )


def decide(world: World, how: str, message: dict[str, Any]) -> State:
    """Decide the request ``how``; the state it ends in."""
    [request] = world.services.store.list_requests()
    if how == "approve":
        world.driver.approve(APPROVER, message)
        world.driver.final_message(message)
        return State.SUCCEEDED
    if how == "reject":
        world.driver.reject(APPROVER, message, "not ours")
        world.driver.final_message(message)
        return State.REJECTED
    if how == "expire":
        later(world, 31 * 86400)
        world.services.maintenance.run_once()
        return State.EXPIRED
    world.driver.open_home(REQUESTER)  # cancelled from the Home tab: the DM is not clicked
    world.driver.click_home(REQUESTER, ids.CANCEL_ACTION, request.id)
    world.driver.final_message(message)
    return State.CANCELLED


@pytest.mark.parametrize("how", ["approve", "reject", "expire", "cancel"])
def test_after_any_decision_the_dm_loses_cancel_and_says_what_happened(world, how):
    """A requester's DM that offers Cancel (posted before Cancel moved to the request message)
    keeps it while the request is pending; once it is approved, rejected, expired or cancelled
    (from the Home tab: nobody clicked the DM), the DM is rewritten without Cancel, saying what
    happened instead."""
    message = world.driver.ask(REQUESTER, EMAIL)
    assert buttons(dm_with_cancel(world)) == []  # the "posted" DM has no button now
    as_posted_before_cancel_moved(world)
    assert buttons(dm_with_cancel(world)) == [ids.CANCEL_ACTION]
    state = decide(world, how, message)
    dm = world.slack.wait_for(
        lambda: (m := dm_with_cancel_or_cancelled(world)) and not buttons(m) and m or None,
        what="the DM without Cancel",
    )
    words = {
        State.SUCCEEDED: f"Approved by <@{APPROVER}>",
        State.REJECTED: f"Rejected by <@{APPROVER}>",
        State.EXPIRED: "expired without a decision",
        State.CANCELLED: "You cancelled your request",
    }
    assert words[state] in text_of(dm)


def test_cancel_clicked_in_a_dm_from_before_rewrites_that_dm(world):
    """Cancel clicked in a "posted" DM from before Cancel moved to the request message still
    works: the request is cancelled, that DM is rewritten through the click's response_url to
    say so, and the request message says who cancelled, without buttons."""
    message = world.driver.ask(REQUESTER, EMAIL)
    as_posted_before_cancel_moved(world)
    channel = world.slack.dm_channel(REQUESTER)
    clicked = world.driver.click(REQUESTER, dm_with_cancel(world), ids.CANCEL_ACTION, channel)
    response = world.slack.wait_for(
        lambda: next((r for r in world.slack.responses if r.url == clicked.response_url), None),
        what="the answer to Cancel",
    )
    assert response.body["replace_original"] is True
    assert "You cancelled your request" in response.body["text"]
    final = world.driver.final_message(message)
    assert f"Cancelled by <@{REQUESTER}>" in text_of(final) and buttons(final) == []


def dm_with_cancel_or_cancelled(world: World) -> dict[str, Any] | None:
    """The first DM to the requester: the one that offered Cancel (whatever it says now)."""
    dms = world.slack.messages(REQUESTER)
    return dms[0] if dms else None


# ------------------------------------------------------------------ 12. no duplicate post


def post_with_lost_answer(world: World) -> str:
    """Submit a request while Slack's answer to its post is lost (Slack posts it; the bot's
    call times out), then let the outbox try again. Returns the request's id."""
    world.services.client.timeout = 1  # the bot gives up on a Slack call after 1 s, not 10
    view = world.driver.modal(world.driver.command(REQUESTER, EMAIL))
    world.slack.time_out_next("chat.postMessage", 3, acts=True)
    world.driver.submit_request(REQUESTER, view, reason="T-1")
    request = stored_request(world)  # the form acks first, then stores it
    world.slack.wait_for(
        lambda: bool(world.services.store.outbox_entries(request.id)[0].attempts) or None,
        what="the post's lost answer",
    )
    assert request.message_ts is None  # as stored before: the bot never heard where it went
    later(world, 60)
    world.services.maintenance.run_once()
    return request.id


def test_a_post_whose_answer_was_lost_is_found_and_updated_not_posted_twice(world):
    """Slack posted the request message but its answer was lost: with channels:history the
    retry finds that message by its metadata (conversations.history), records and updates it
    instead of posting again; so there is one request message, and after the decision it shows
    the final state with no live buttons."""
    request_id = post_with_lost_answer(world)
    [message] = request_messages(world)
    assert message["metadata"] == {
        "event_type": REQUEST_EVENT,
        "event_payload": {"request_id": request_id},
    }
    assert world.services.store.get(request_id).message_ts == message["ts"]
    channel_posts = [
        c
        for c in world.slack.calls_to("chat.postMessage")
        if c.params.get("channel") == world.driver.channel
    ]
    assert len(channel_posts) == 1
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    [final] = request_messages(world)
    assert "state: succeeded" in text_of(final) and buttons(final) == []


def test_without_the_history_scope_a_lost_answer_posts_again_as_before(world):
    """Without channels:history the bot cannot look, and posts a second copy as it always did
    (the first keeps showing pending): the scope is optional, and check says what it buys."""
    world.slack.set_scopes([s for s in DEFAULT_SCOPES if not s.endswith(":history")])
    request_id = post_with_lost_answer(world)
    copies = request_messages(world)
    assert len(copies) == 2
    assert world.services.store.get(request_id).message_ts == copies[1]["ts"]
    assert [c.answer.get("error") for c in world.slack.calls_to("conversations.history")] == [
        "missing_scope"
    ]
