"""End to end over real HTTP: ask, submit, approve, reject, as Slack sends them.

The real bot runs in this process on loopback (World), against FakeSlack and FakeProvider.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from worlds import request_of, wait_drained

from bot.domain.model import State, utcnow
from bot.slack import ids
from bot.slack.blocks import PROVIDER_LINE_MARK
from bot.standins.driver import rendered
from bot.standins.world import (
    APPROVER,
    CHANNEL,
    OUTSIDER,
    PROVIDER_KEY,
    REQUESTER,
    SECOND_APPROVER,
    World,
)


def has_buttons(message: dict) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks", []))


# ------------------------------------------------------------------------------- 2. Ask


@pytest.mark.parametrize(
    "text",
    [
        "alice@example.com",
        "<mailto:alice@example.com|alice@example.com>",
        "  <mailto:alice@example.com|alice@example.com>   ",
    ],
)
def test_command_opens_prefilled_modal(world, text):
    """/verify-email <email>, however Slack wraps it, acks empty and opens the prefilled modal."""
    sent = world.driver.command(REQUESTER, text)
    assert sent.reply.status == 200
    assert sent.reply.text == ""
    view = world.driver.modal(sent)
    assert view["callback_id"] == ids.REQUEST_VIEW
    email_block = next(b for b in view["blocks"] if b.get("block_id") == ids.EMAIL_BLOCK)
    assert email_block["element"]["initial_value"] == "alice@example.com"


def test_command_alone_opens_empty_modal(world):
    """/verify-email with no text opens the modal with no email filled in."""
    view = world.driver.modal(world.driver.command(REQUESTER, ""))
    email_block = next(b for b in view["blocks"] if b.get("block_id") == ids.EMAIL_BLOCK)
    assert "initial_value" not in email_block["element"]


def test_help(world):
    """/verify-email help explains usage, ephemerally, and opens nothing."""
    sent = world.driver.command(REQUESTER, "help")
    assert "/verify-email alice@example.com" in sent.reply.text
    assert sent.reply.body["response_type"] == "ephemeral"
    assert world.slack.calls_to("views.open") == []


def test_not_an_email(world):
    """Text that is not an email gets a clear ephemeral answer and no modal."""
    sent = world.driver.command(REQUESTER, "alice-at-example")
    assert "not an email address" in sent.reply.text
    assert world.slack.calls_to("views.open") == []


def test_non_requester_refused(world):
    """A caller not in REQUESTERS gets an ephemeral refusal and no modal."""
    sent = world.driver.command(OUTSIDER, "alice@example.com")
    assert sent.reply.status == 200
    answer = world.driver.answer(sent)
    assert "REQUESTERS" in answer
    assert world.slack.calls_to("views.open") == []


def test_approver_not_in_requesters_may_not_ask(world):
    """When REQUESTERS is set and does not list an approver, that approver may not ask."""
    sent = world.driver.command(APPROVER, "alice@example.com")
    assert "REQUESTERS" in world.driver.answer(sent)
    assert world.slack.calls_to("views.open") == []


def test_requesters_unset_means_approvers_only(tmp_path):
    """With REQUESTERS unset only approvers may ask."""
    with World(database_path=tmp_path / "b.db", settings={"REQUESTERS": None}) as w:
        assert w.driver.modal(w.driver.command(APPROVER, "a@example.com"))
        refused = w.driver.command(REQUESTER, "a@example.com")
        assert "REQUESTERS" in w.driver.answer(refused)
        assert len(w.slack.calls_to("views.open")) == 1


# ---------------------------------------------------------------------------- 3. Submit


def test_field_errors_come_back(world):
    """A bad email or missing reason comes back as response_action errors, and nothing is stored."""
    view = world.driver.modal(world.driver.command(REQUESTER, ""))
    reply = world.driver.submit_request(REQUESTER, view, email="not-an-email", reason="  ")
    assert reply.body["response_action"] == "errors"
    assert set(reply.body["errors"]) == {ids.EMAIL_BLOCK, ids.REASON_BLOCK}
    assert world.services.store.list_requests() == []
    assert world.slack.calls_to("chat.postMessage") == []


def test_submitted_values_win_over_prefill(world):
    """What the person submitted, not what they first typed, is stored and posted."""
    view = world.driver.modal(world.driver.command(REQUESTER, "first@example.com"))
    reply = world.driver.submit_request(
        REQUESTER, view, email="second@example.org", reason="TICKET-42"
    )
    assert reply.body in ("", {})
    message = world.driver.request_message("second@example.org")
    assert "first@example.com" not in rendered(message)
    request = request_of(world, message)
    assert (request.email, request.domain, request.reason) == (
        "second@example.org",
        "example.org",
        "TICKET-42",
    )


def test_request_message_contents(world):
    """The top-level message names requester, email, domain, reason, expiry and has both buttons."""
    message = world.driver.ask(REQUESTER, "alice@example.com", "TICKET-7")
    assert "thread_ts" not in message
    text = rendered(message)
    for piece in (f"<@{REQUESTER}>", "alice@example.com", "example.com", "TICKET-7", "<!date^"):
        assert piece in text
    buttons = {
        e["action_id"]: e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }
    assert buttons[ids.APPROVE_ACTION]["style"] == "primary"
    assert "confirm" in buttons[ids.APPROVE_ACTION]
    assert buttons[ids.REJECT_ACTION]["style"] == "danger"
    request = request_of(world, message)
    assert request.state is State.PENDING
    assert (request.channel, request.message_ts) == (CHANNEL, message["ts"])


def test_requester_told_where_it_went(world):
    """The requester gets a DM naming the approval channel."""
    world.driver.ask(REQUESTER, "alice@example.com")
    world.slack.wait_for(lambda: world.driver.dm_texts(REQUESTER) or None, what="DM to requester")
    assert f"<#{CHANNEL}>" in world.driver.dm_texts(REQUESTER)[0]


# --------------------------------------------------------------------------- 4. Approve


def test_approve_end_to_end(world):
    """Approve: one provider call, thread reply with everything, final message, requester DM."""
    world.provider.cleared_domains = ["example.com", "example.net"]
    world.provider.clients_notified = ["3704", "3705"]
    message = world.driver.ask(REQUESTER, "alice@example.com")
    clicked = world.driver.approve(APPROVER, message)
    assert clicked.reply.status == 200
    final = world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)

    calls = [c for c in world.provider.calls if c["path"].endswith("/confirmed")]
    assert len(calls) == 1
    assert calls[0]["method"] == "POST"
    assert calls[0]["headers"]["x-api-key"] == PROVIDER_KEY
    assert calls[0]["json"] == {"email": "alice@example.com", "approved": "yes"}

    reply_text = rendered(reply)
    for piece in (
        "example.com",
        "example.net",
        "3704",
        "3705",
        "Verification caches cleared",
        f"<@{APPROVER}>",
    ):
        assert piece in reply_text
    request = request_of(world, message)
    assert request.outcome.provider_request_id in reply_text

    assert not has_buttons(final)
    assert f"<@{APPROVER}>" in rendered(final)
    assert "state: succeeded" in rendered(final)
    assert request.state is State.SUCCEEDED
    world.slack.wait_for(
        lambda: len(world.driver.dm_texts(REQUESTER)) >= 2 or None, what="outcome DM"
    )
    assert "approved" in world.driver.dm_texts(REQUESTER)[-1]


def test_non_approver_click_changes_nothing(world):
    """Someone who is not an approver is told so privately; the request stays pending."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    clicked = world.driver.approve(OUTSIDER, message)
    answer = world.driver.answer(clicked)
    assert "Only approvers" in answer
    post = next(r for r in world.slack.responses if r.url == clicked.response_url)
    assert post.body["response_type"] == "ephemeral"
    assert post.body.get("replace_original") is False
    assert request_of(world, message).state is State.PENDING
    assert world.provider.calls == []
    assert has_buttons(world.slack.message(CHANNEL, message["ts"]))


def test_self_approval_refused(tmp_path):
    """An approver who asked cannot approve their own request."""
    with World(database_path=tmp_path / "b.db", settings={"REQUESTERS": "*"}) as w:
        message = w.driver.ask(APPROVER, "alice@example.com")
        answer = w.driver.answer(w.driver.approve(APPROVER, message))
        assert "someone else" in answer
        assert request_of(w, message).state is State.PENDING
        assert w.provider.calls == []


def test_self_approval_allowed_when_configured(tmp_path):
    """ALLOW_SELF_APPROVAL lets the requester approve."""
    settings = {"REQUESTERS": "*", "ALLOW_SELF_APPROVAL": True}
    with World(database_path=tmp_path / "b.db", settings=settings) as w:
        message = w.driver.ask(APPROVER, "alice@example.com")
        w.driver.approve(APPROVER, message)
        assert "state: succeeded" in rendered(w.driver.final_message(message))


def test_expired_request_refused(world):
    """Past REQUEST_TTL, Approve is refused, the request expires and the buttons go."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    later = utcnow() + timedelta(days=1, seconds=1)
    world.services.approvals.clock = lambda: later
    answer = world.driver.answer(world.driver.approve(APPROVER, message))
    assert "expired" in answer
    assert request_of(world, message).state is State.EXPIRED
    assert world.provider.calls == []
    final = world.driver.final_message(message)
    assert not has_buttons(final)


def test_second_click_after_done_is_refused(world):
    """A click on an already-approved request says so and calls nothing."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    answer = world.driver.answer(world.driver.approve(SECOND_APPROVER, message))
    assert "already succeeded" in answer
    assert len(world.provider.calls) == 1


def test_tampered_button_value(world):
    """A button value that names no request is answered privately; nothing happens."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == ids.APPROVE_ACTION:
                element["value"] = "'; DROP TABLE requests; --"
    answer = world.driver.answer(world.driver.approve(APPROVER, message))
    assert "does not name a request" in answer
    assert world.provider.calls == []


# ---------------------------------------------------------------------------- 5. Reject


def test_reject_with_reason(world):
    """Reject opens a reason form; the message says who rejected and why; no provider call."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    reply = world.driver.reject(APPROVER, message, reason="not our customer <!here>")
    assert reply.body in ("", {})
    final = world.driver.final_message(message)
    text = rendered(final)
    assert f"Rejected by <@{APPROVER}>" in text
    assert "not our customer &lt;!here&gt;" in text
    assert not has_buttons(final)
    request = request_of(world, message)
    assert request.state is State.REJECTED
    assert request.decision_note == "not our customer <!here>"
    assert world.provider.calls == []
    world.slack.wait_for(
        lambda: len(world.driver.dm_texts(REQUESTER)) >= 2 or None, what="reject DM"
    )
    assert "rejected" in world.driver.dm_texts(REQUESTER)[-1]


def test_reject_without_reason(world):
    """The reason is optional."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.reject(APPROVER, message)
    assert request_of(world, message).state is State.REJECTED


def test_non_approver_cannot_reject(world):
    """A non-approver clicking Reject is told so privately; no form opens."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    opened_before = len(world.slack.calls_to("views.open"))
    answer = world.driver.answer(world.driver.click(OUTSIDER, message, ids.REJECT_ACTION))
    assert "Only approvers" in answer
    assert len(world.slack.calls_to("views.open")) == opened_before
    assert request_of(world, message).state is State.PENDING


def test_reject_form_that_slack_will_not_open_is_said_privately(world):
    """If Slack refuses to open the reject form (an expired trigger, say), the approver is
    told privately and the request stays pending, untouched."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.slack.fail_next("views.open", error="expired_trigger_id")
    answer = world.driver.answer(world.driver.click(APPROVER, message, ids.REJECT_ACTION))
    assert "could not open the reject form" in answer and "expired_trigger_id" in answer
    assert request_of(world, message).state is State.PENDING


# ------------------------------------------------------------------------------ 9. Safe


def test_channel_ping_in_reason_pings_nobody(world):
    """A reason of <!channel> is escaped everywhere it is shown."""
    message = world.driver.ask(REQUESTER, "alice@example.com", "<!channel> <@U0BOSS> <!here>")
    for call in world.slack.calls_to("chat.postMessage") + world.slack.calls_to("chat.update"):
        shown = json.dumps(call.params)
        assert "<!channel>" not in shown
        assert "<!here>" not in shown
        assert "<@U0BOSS>" not in shown
    assert "&lt;!channel&gt;" in rendered(message)


# ---------------------------------------------------------------------------- 10. Calls


def test_warm_flow_costs_at_most_six_slack_calls_showing_everything(world):
    """Once role lookups are cached, a request plus its approval makes at most 6 Web API calls
    (a plain Bolt app's count) and still shows everything: the form; the request posted once,
    with the provider's view of its domain already on it (the post waits for the lookup, so
    no update adds it); the "posted" DM naming the channel (no Cancel on it: nothing to
    rewrite later); the thread reply; the message's final state (the "calling the
    provider…" update, superseded by a quick outcome, is not sent); the outcome DM. Nothing
    is left to tell afterwards."""
    first = world.driver.ask(REQUESTER, "warm@example.com")
    world.driver.approve(APPROVER, first)
    world.driver.final_message(first)
    wait_drained(world, request_of(world, first).id)
    before = len(world.slack.calls)

    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.approve(APPROVER, message)
    final = world.driver.final_message(message)
    world.slack.wait_for(
        lambda: len(world.driver.dm_texts(REQUESTER)) >= 4 or None, what="outcome DM"
    )
    wait_drained(world, request_of(world, message).id)
    calls = world.slack.calls[before:]
    methods = [c.method for c in calls]
    assert len(methods) <= 6, methods
    assert Counter(methods) == {"views.open": 1, "chat.postMessage": 4, "chat.update": 1}
    posts = [c.params for c in calls if c.method == "chat.postMessage"]
    [post] = [p for p in posts if p["channel"] == CHANNEL and not p.get("thread_ts")]
    assert PROVIDER_LINE_MARK in json.dumps(post["blocks"]) and "alice@example.com" in post["text"]
    [posted_dm, outcome_dm] = [p for p in posts if p["channel"] == REQUESTER]
    assert "was posted" in posted_dm["text"] and f"<#{CHANNEL}>" in posted_dm["text"]
    assert "Cancel request" in posted_dm["text"] and "actions" not in json.dumps(posted_dm)
    assert "approved by" in outcome_dm["text"] and "cleared" in outcome_dm["text"]
    [reply] = [p for p in posts if p.get("thread_ts") == message["ts"]]
    assert "alice@example.com" in json.dumps(reply)
    [update] = [c.params for c in calls if c.method == "chat.update"]
    assert update["ts"] == message["ts"] and "state: succeeded" in json.dumps(update["blocks"])
    assert "state: succeeded" in rendered(final) and PROVIDER_LINE_MARK in rendered(final)


# ------------------------------------------------------------------ Slack says no midway


def test_request_that_cannot_be_posted_is_closed_and_requester_told(world):
    """If the request message cannot be posted (bot not in the channel), the requester is told
    why and the stored request is closed rather than left pending with nothing to click."""
    world.slack.fail_next("chat.postMessage", error="not_in_channel")
    view = world.driver.modal(world.driver.command(REQUESTER, "alice@example.com"))
    world.driver.submit_request(REQUESTER, view, reason="T-1")
    world.slack.wait_for(lambda: world.driver.dm_texts(REQUESTER) or None, what="DM to requester")
    assert "not_in_channel" in world.driver.dm_texts(REQUESTER)[0]
    (request,) = world.services.store.list_requests()
    assert request.state is State.EXPIRED
    # The last change is closing it (the give-ups of its notices are audited beside it).
    changes = [e.action for e in world.services.store.audit_log(request.id)]
    assert [a for a in changes if a != "delivery_given_up"][-1] == "post_failed"
    assert "delivery_given_up" in changes


def test_failed_message_update_does_not_stop_the_approval(world):
    """A chat.update failure before the provider call does not stop the approval; the message
    catches up at the next maintenance round, with one update rather than two."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    channel = world.driver.channel  # the request message's updates (not the DM's rewrite)
    shown = len(  # the provider line
        [c for c in world.slack.calls_to("chat.update") if c.ok and c.params["channel"] == channel]
    )
    world.slack.fail_next("chat.update", error="internal_error")
    world.driver.approve(APPROVER, message)
    request = world.slack.wait_for(
        lambda: (r := request_of(world, message)).state is State.SUCCEEDED and r or None,
        what="provider result",
    )
    assert len(world.provider.calls) == 1
    # The refused update is queued for a retry (whichever update Slack refused: the interim
    # one, or the final one if the provider answered first).
    world.slack.wait_for(
        lambda: any(e.attempts for e in world.services.store.outbox_entries(request.id)) or None,
        what="a queued retry",
    )
    later = utcnow() + timedelta(seconds=60)
    world.services.approvals.clock = lambda: later
    world.services.maintenance.run_once()
    assert "state: succeeded" in rendered(world.driver.final_message(message))
    assert (
        len(
            [
                c
                for c in world.slack.calls_to("chat.update")
                if c.ok and c.params["channel"] == channel
            ]
        )
        == shown + 1
    )


def test_submission_from_someone_not_allowed_is_refused_after_the_ack(world):
    """The form is acknowledged at once (no Slack lookup before the ack); a submitter who may
    not ask is then told privately and nothing is stored."""
    view = world.driver.modal(world.driver.command(REQUESTER, "alice@example.com"))
    reply = world.driver.submit_request(OUTSIDER, view, reason="T-1")
    assert reply.body in ("", {})
    world.slack.wait_for(lambda: world.driver.dm_texts(OUTSIDER) or None, what="DM to the outsider")
    assert "REQUESTERS" in world.driver.dm_texts(OUTSIDER)[0]
    assert world.services.store.list_requests() == []
