"""Durable and exactly-once: unknown outcomes and Retry, interrupted calls, the expiry sweep,
one open request per email, the outbox, and the audit export. On every store backend."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import timedelta

import pytest
from worlds import later, request_of

from bot.cli.audit import DECISIONS, export
from bot.domain.model import DECISION_ACTIONS, Action, State, utcnow
from bot.domain.ports import Transition
from bot.maintenance import INTERRUPTED_GRACE
from bot.slack import ids
from bot.standins.driver import buttons, rendered
from bot.standins.provider import Response
from bot.standins.world import APPROVER, OUTSIDER, REQUESTER, SECOND_APPROVER, World


@pytest.fixture
def world(database_url, tmp_path):
    """The in-process bot on the backend under test (overrides the SQLite-only fixture)."""
    settings = {"DATABASE_URL": database_url, "HOSTUP_TIMEOUT": 0.5}
    with World(database_path=tmp_path / "unused.db", settings=settings) as w:
        yield w


# ------------------------------------------------------------------- 3. unknown and Retry


def unknown_request(world: World, email: str = "alice@example.com"):
    message = world.driver.ask(REQUESTER, email)
    world.provider.enqueue(Response.hang(3))
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)
    return message, reply


def test_timeout_becomes_unknown_with_retry_in_thread(world):
    """No answer in time: the request is unknown, and the thread says so and offers Retry."""
    message, reply = unknown_request(world)
    assert request_of(world, message).state is State.UNKNOWN
    assert "may or may not" in rendered(reply)
    assert buttons(reply) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    assert buttons(world.slack.message(world.driver.channel, message["ts"])) == []


def test_retry_calls_provider_again_and_audits_each_attempt(world):
    """An approver's Retry calls the provider once more; the audit log has both attempts and
    the reply that offered Retry no longer does."""
    message, reply = unknown_request(world)
    clicked = world.driver.click(SECOND_APPROVER, reply, ids.RETRY_ACTION)
    assert clicked.reply.status == 200
    world.slack.wait_for(
        lambda: request_of(world, message).state is State.SUCCEEDED or None, what="success"
    )
    world.slack.wait_for(lambda: len(world.driver.thread(message)) >= 2 or None, what="reply")
    assert len([c for c in world.provider.calls if c["path"].endswith("/confirmed")]) == 2
    request = request_of(world, message)
    actions = [(e.action, e.actor) for e in world.services.store.audit_log(request.id)]
    assert actions == [
        ("create", REQUESTER),
        ("lookup", "bot"),
        ("approve", APPROVER),
        ("provider_error", APPROVER),
        ("readback", "bot"),  # after each call's outcome, outside its claim
        ("retry", SECOND_APPROVER),
        ("provider_success", SECOND_APPROVER),
        ("readback", "bot"),
    ]
    rewritten = world.slack.wait_for(
        lambda: next((r for r in world.slack.responses if r.url == clicked.response_url), None),
        what="the rewritten reply",
    ).body
    assert rewritten["replace_original"] is True
    assert ids.RETRY_ACTION not in json.dumps(rewritten["blocks"])
    assert "Retried by" in json.dumps(rewritten["blocks"])


def test_only_approvers_can_retry(world):
    """A non-approver's Retry is refused privately and calls nothing."""
    message, reply = unknown_request(world)
    answer = world.driver.answer(world.driver.click(OUTSIDER, reply, ids.RETRY_ACTION))
    assert "Only approvers" in answer
    assert request_of(world, message).state is State.UNKNOWN
    assert len(world.provider.calls) == 1


def test_retry_on_a_settled_request_is_refused(world):
    """Retry on a request that is no longer unknown is refused; no second call."""
    message, reply = unknown_request(world)
    world.driver.click(APPROVER, reply, ids.RETRY_ACTION)
    world.slack.wait_for(
        lambda: request_of(world, message).state is State.SUCCEEDED or None, what="success"
    )
    answer = world.driver.answer(world.driver.click(SECOND_APPROVER, reply, ids.RETRY_ACTION))
    assert "succeeded" in answer
    assert len(world.provider.calls) == 2


def test_interrupted_call_becomes_unknown_without_a_click(world):
    """A request a crashed process left executing becomes unknown at the next maintenance round
    once it is older than the longest provider call; the thread offers Retry."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    request = request_of(world, message)
    store = world.services.store
    # What a process that died mid-call leaves behind: claimed, never finished.
    store.transition(
        Transition(
            request.id,
            frozenset({State.PENDING}),
            State.EXECUTING,
            actor=APPROVER,
            action=Action.APPROVE,
            item=0,
            now=utcnow(),
            decided_by=APPROVER,
        )
    )
    maintenance = world.services.maintenance
    assert maintenance.run_once()["interrupted"] == 0  # still within a call's time
    later(world, maintenance.interrupted_after + 1)
    assert maintenance.run_once()["interrupted"] == 1
    assert store.get(request.id).state is State.UNKNOWN
    reply = world.driver.wait_thread_reply(message)
    assert buttons(reply) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    assert "stopped while it was calling" in rendered(reply)
    assert world.provider.calls == []


def test_interrupted_after_shortens_the_bound_and_is_warned_about(tmp_path, caplog):
    """By default the bound is the longest a provider call can take plus a grace; the
    INTERRUPTED_AFTER setting (for soaks and tests) replaces it, with a warning at start-up
    when, as the claim's lease, it is no longer than one provider attempt."""
    with World(database_path=tmp_path / "default.db") as world:
        maintenance = world.services.maintenance
        longest = world.services.provider.max_duration
        assert maintenance.interrupted_after == longest + INTERRUPTED_GRACE
    assert "INTERRUPTED_AFTER" not in caplog.text
    with (
        caplog.at_level(logging.WARNING, logger="bot.services"),
        World(database_path=tmp_path / "short.db", settings={"INTERRUPTED_AFTER": 5}) as world,
    ):
        assert "INTERRUPTED_AFTER=5 is a lease no longer than one provider attempt" in caplog.text
        message = world.driver.ask(REQUESTER, "alice@example.com")
        request = request_of(world, message)
        world.services.store.transition(
            Transition(
                request.id,
                frozenset({State.PENDING}),
                State.EXECUTING,
                actor=APPROVER,
                action=Action.APPROVE,
                item=0,
                now=utcnow(),
                decided_by=APPROVER,
            )
        )
        maintenance = world.services.maintenance
        assert maintenance.interrupted_after == 5
        later(world, 4)
        assert maintenance.run_once()["interrupted"] == 0
        later(world, 6)
        assert maintenance.run_once()["interrupted"] == 1
        assert request_of(world, message).state is State.UNKNOWN


# ------------------------------------------------------------------------ 4. expiry sweep


def test_expiry_sweep_updates_message_without_a_click(world):
    """Past REQUEST_TTL, a maintenance round expires the request: the message says so and has
    no buttons, and the requester hears about it."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    later(world, 86400 + 1)
    assert world.services.maintenance.run_once()["expired"] == 1
    final = world.driver.final_message(message)
    assert "Expired" in rendered(final)
    assert buttons(final) == []
    assert request_of(world, message).state is State.EXPIRED
    world.slack.wait_for(
        lambda: any("expired" in t for t in world.driver.dm_texts(REQUESTER)) or None,
        what="expiry DM",
    )


def test_expiry_sweep_on_two_replicas_changes_once(world):
    """Two replicas sweeping the same store: exactly one expires the request and updates it."""
    world.driver.ask(REQUESTER, "alice@example.com")

    def updates() -> int:  # of the request message (the requester's DM is rewritten too)
        return sum(
            1
            for c in world.slack.calls_to("chat.update")
            if c.params.get("channel") == world.driver.channel
        )

    shown = updates()  # the provider line
    later(world, 86400 + 1)
    from bot.services import build_services

    other = build_services(world.settings)
    try:
        other.approvals.clock = world.services.approvals.clock
        rounds = [world.services.maintenance.run_once(), other.maintenance.run_once()]
    finally:
        other.close()
    assert sorted(r["expired"] for r in rounds) == [0, 1]
    assert updates() == shown + 1


# ------------------------------------------------------------- 5. one open request per email


def test_second_request_for_open_email_points_to_the_first(world):
    """/verify-email for an email with an open request answers privately with its permalink
    and opens no form; the store still holds one request."""
    world.driver.ask(REQUESTER, "alice@example.com")
    opened = len(world.slack.calls_to("views.open"))
    sent = world.driver.command(REQUESTER, "ALICE@example.com")
    answer = world.driver.answer(sent)
    assert "already has an open request" in answer
    assert "https://" in answer and "|the open request>" in answer
    assert len(world.slack.calls_to("views.open")) == opened
    assert len(world.services.store.list_requests()) == 1


def test_second_request_via_the_form_is_refused_with_link(world):
    """Changing the form to an email with an open request gives a field error and a DM link."""
    world.driver.ask(REQUESTER, "alice@example.com")
    view = world.driver.modal(world.driver.command(REQUESTER, "bob@example.com"))
    reply = world.driver.submit_request(REQUESTER, view, email="Alice@Example.com", reason="T-2")
    assert reply.body["response_action"] == "errors"
    assert "open request" in reply.body["errors"][ids.EMAIL_BLOCK]
    world.slack.wait_for(
        lambda: (
            any("already has an open request" in t for t in world.driver.dm_texts(REQUESTER))
            or None
        ),
        what="DM with the link",
    )
    assert len(world.services.store.list_requests()) == 1


@pytest.mark.parametrize("how", ["reject", "approve", "expire"])
def test_new_request_allowed_once_the_open_one_is_done(world, how):
    """Once the open request is rejected, done or expired, a new one for the email is allowed."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    if how == "reject":
        world.driver.reject(APPROVER, message)
        world.driver.final_message(message)
    elif how == "approve":
        world.driver.approve(APPROVER, message)
        world.driver.final_message(message)
    else:
        later(world, 86400 + 1)  # expired but not swept yet: asking again expires it
    sent = world.driver.command(REQUESTER, "alice@example.com")
    view = world.driver.modal(sent)
    reply = world.driver.submit_request(REQUESTER, view, reason="again")
    assert reply.body in ("", {})
    # The request is stored after the acknowledgement: wait for it (bounded), then look.
    store = world.services.store
    world.slack.wait_for(lambda: len(store.list_requests()) == 2 or None, what="the new request")
    states = sorted(r.state.value for r in store.list_requests())
    assert len(states) == 2 and "pending" in states


# ----------------------------------------------------------------------------- 6. outbox


def test_result_survives_slack_outage(world):
    """Slack down when the provider answers: the reply and update are stored, then delivered by
    a later maintenance round with backoff."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.slack.fail_next("chat.postMessage", error="internal_error", times=3)
    world.slack.fail_next("chat.update", error="internal_error", times=3)
    world.driver.approve(APPROVER, message)
    # The outcome, then the read-back (which releases the notices the outcome held for it).
    request = world.slack.wait_for(
        lambda: (
            (r := request_of(world, message)).state is State.SUCCEEDED
            and r.readback is not None
            and r
            or None
        ),
        what="provider result and read-back stored",
    )
    # The service's own delivery tries each lane's head at once (and fails): wait until it has,
    # so no delivery still in flight on the real clock meets the rounds below on the moved one.
    world.slack.wait_for(
        lambda: (
            {e.kind for e in world.services.store.outbox_entries(request.id) if e.attempts}
            >= {"reply_result", "dm_outcome"}
            or None
        ),
        what="both lanes' heads tried once",
    )
    assert world.driver.thread(message) == []
    for step in range(1, 8):
        later(world, 2**step)
        world.services.maintenance.run_once()
        if not world.services.store.outbox_entries(request.id):
            break
    assert world.services.store.outbox_entries(request.id) == []
    reply = world.driver.wait_thread_reply(message)
    assert "example.com" in rendered(reply)
    assert "state: succeeded" in rendered(world.slack.message(world.driver.channel, message["ts"]))
    assert len(world.driver.thread(message)) == 1  # delivered once, not once per try


def test_outbox_delivered_after_restart(world):
    """What Slack missed before a restart is delivered by the new process at start-up."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    # The thread reply is the first chat.postMessage after the click: Slack refuses it once.
    world.slack.fail_next("chat.postMessage", error="service_unavailable", times=1)
    world.driver.approve(APPROVER, message)
    request = world.slack.wait_for(
        lambda: (r := request_of(world, message)).state is State.SUCCEEDED and r or None,
        what="stored",
    )
    world.slack.wait_for(
        lambda: world.services.store.outbox_entries(request.id) or None, what="queued entries"
    )
    world.restart_bot()
    later(world, 3600)
    world.services.maintenance.run_once()
    reply = world.driver.wait_thread_reply(message)
    assert "Cleared domains" in rendered(reply)


def test_permanent_slack_error_closes_request_and_tells_requester(world):
    """A request message Slack will never take (bot not in channel) closes the request and the
    requester is told why."""
    world.slack.fail_next("chat.postMessage", error="not_in_channel")
    view = world.driver.modal(world.driver.command(REQUESTER, "alice@example.com"))
    world.driver.submit_request(REQUESTER, view, reason="T-1")
    world.slack.wait_for(lambda: world.driver.dm_texts(REQUESTER) or None, what="DM to requester")
    assert "not_in_channel" in world.driver.dm_texts(REQUESTER)[0]
    (request,) = world.services.store.list_requests()
    assert request.state is State.EXPIRED
    # The post was given up on at once (not retried) and so was "posted" DM; only the DM just
    # seen may still be finishing its bookkeeping.
    left = [e.kind for e in world.services.store.outbox_entries()]
    assert left in ([], ["dm_not_posted"])
    assert [c.params.get("channel") for c in world.slack.calls_to("chat.postMessage")] == [
        world.driver.channel,
        REQUESTER,
    ]


# ------------------------------------------------------------------------- 7. audit export


def test_the_export_words_every_decision():
    """Each decision action (approve, retry, reject, expire, not posted, cancel, resolve) has its
    word in the export's decision column."""
    assert set(DECISIONS) == DECISION_ACTIONS


def test_the_export_has_the_providers_view(world):
    """The export's provider_view and provider_readback columns say what the domain read when
    it was asked for and after the call."""
    world.provider.status_after_confirm = "verified"
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    out = io.StringIO()
    export(world.services.store, out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["provider_view"], row["provider_readback"]) == ("pending", "verified")


def test_audit_export_csv_and_json(world):
    """The export names who requested, who approved or rejected and when, the outcome and the
    provider's requestId; --since filters; CSV cells cannot become spreadsheet formulas."""
    approved = world.driver.ask(REQUESTER, "alice@example.com", '=HYPERLINK("x")')
    world.driver.approve(APPROVER, approved)
    world.driver.final_message(approved)
    rejected = world.driver.ask(REQUESTER, "bob@example.com")
    world.driver.reject(SECOND_APPROVER, rejected, reason="no")
    world.driver.final_message(rejected)
    store = world.services.store

    out = io.StringIO()
    assert export(store, out) == 2
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    alice, bob = rows["alice@example.com"], rows["bob@example.com"]
    assert (alice["requester"], alice["decision"], alice["decided_by"], alice["state"]) == (
        REQUESTER,
        "approved",
        APPROVER,
        "succeeded",
    )
    assert alice["provider_request_id"] == request_of(world, approved).outcome.provider_request_id
    assert alice["reason"].startswith("'=")
    assert alice["decided_at"] and alice["provider_calls"] == "1"
    assert (bob["decision"], bob["decided_by"], bob["state"]) == (
        "rejected",
        SECOND_APPROVER,
        "rejected",
    )

    out = io.StringIO()
    export(store, out, fmt="json")
    records = {r["email"]: r for r in json.loads(out.getvalue())}
    assert [h["action"] for h in records["alice@example.com"]["history"]] == [
        "create",
        "lookup",
        "approve",
        "provider_success",
        "readback",
    ]
    assert records["alice@example.com"]["reason"] == '=HYPERLINK("x")'

    out = io.StringIO()
    assert export(store, out, since=utcnow() + timedelta(minutes=1)) == 0


def test_approve_on_an_unknown_request_is_not_a_silent_retry(world):
    """A stale Approve button on a request whose outcome is unknown is refused: only Retry,
    with its warning, may call the provider again."""
    message, _ = unknown_request(world)
    answer = world.driver.answer(world.driver.approve(SECOND_APPROVER, message))
    assert "Use Retry" in answer
    assert request_of(world, message).state is State.UNKNOWN
    assert len(world.provider.calls) == 1


def test_a_retried_request_is_not_swept_as_interrupted(world):
    """A request retried after the sweep listed it is a live call: the sweep leaves it alone."""
    message, _ = unknown_request(world)
    request = request_of(world, message)
    store = world.services.store
    listed_cutoff = utcnow() + timedelta(seconds=1)
    store.transition(
        Transition(
            request.id,
            frozenset({State.UNKNOWN}),
            State.EXECUTING,
            actor=APPROVER,
            action=Action.RETRY,
            item=0,
            now=listed_cutoff + timedelta(seconds=1),
        )
    )
    assert (
        store.transition(
            Transition(
                request.id,
                frozenset({State.EXECUTING}),
                State.UNKNOWN,
                actor="bot",
                action=Action.INTERRUPTED,
                item=0,
                now=utcnow(),
                updated_before=listed_cutoff,
            )
        )
        is None
    )
    assert store.get(request.id).state is State.EXECUTING
