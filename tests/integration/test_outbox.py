"""The outbox on its own: a real store (SQLite) and a recording stand-in for Slack.

What it promises: every notice is delivered in order within its lane, a DM Slack refuses never
holds up the channel, a late delivery describes the change that queued it (its audit entry),
Slack's own trouble is retried with backoff while a person's mistake is given up on, and a
request Slack will never take is handed back to be closed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from doubles import CHANNEL, Clock, RecordingSlack, make_request

from bot.domain.model import (
    HISTORY_SHOWN,
    Action,
    State,
    VerificationRequest,
    new_request_id,
    one_item_request,
)
from bot.domain.outcomes import Cleared, ProviderFailed
from bot.domain.ports import Transition
from bot.domain.views import ProviderView
from bot.slack.blocks import PROVIDER_LINE_MARK
from bot.slack.notices import Lane, Notice, Surface, notices_for
from bot.slack.notifier import DeliveryError, Posted
from bot.slack.outbox import GIVE_UP_AFTER, MAX_BACKOFF, Outbox, backoff
from bot.store import BaseSQLStore, open_store

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path) -> Any:
    s = open_store(f"sqlite:///{tmp_path}/outbox.db", announce=notices_for)
    yield s
    s.close()


@pytest.fixture
def slack() -> RecordingSlack:
    return RecordingSlack()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def unpostable() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def outbox(store, slack, clock, unpostable) -> Outbox:
    return Outbox(
        store,
        slack,
        on_unpostable=lambda request_id, error: unpostable.append((request_id, error)),
        clock=clock,
        owner="test",
    )


def new_request(store: BaseSQLStore, email: str = "alice@example.com") -> VerificationRequest:
    request = make_request(email=email, created_at=T0)
    return store.create(request, "U0REQ")


def change(store: BaseSQLStore, request_id: str, src: State, dst: State, **kw: Any) -> Any:
    return store.transition(
        Transition(request_id, frozenset({src}), dst, actor="U0APP", now=T0, **kw)
    )


def view() -> ProviderView:
    return ProviderView(domain="example.com", status="pending", read_at=T0, domain_id="dom_1")


def transient(reason: str = "ratelimited") -> DeliveryError:
    return DeliveryError("x", reason, permanent=False)


def permanent(reason: str = "not_in_channel") -> DeliveryError:
    return DeliveryError("x", reason, permanent=True)


def test_a_new_request_is_posted_where_it_records_and_the_requester_told(
    store, slack, outbox
) -> None:
    """Delivering a new request posts it, stores where Slack put it (the notifier writes
    nothing), then DMs the requester; nothing is left queued."""
    request = new_request(store)
    outbox.deliver(request.id)
    assert slack.methods() == ["post_request", "dm"]
    stored = store.get(request.id)
    assert (stored.channel, stored.message_ts) == (CHANNEL, "1700000000.000001")
    assert slack.calls[1][1] == "U0REQ" and "posted" in slack.calls[1][2]
    assert store.outbox_entries() == []
    outbox.deliver(request.id)  # nothing twice
    assert slack.methods() == ["post_request", "dm"]


def test_a_refused_dm_does_not_hold_up_the_channel(store, slack, outbox, clock) -> None:
    """The DM lane waits (retried with backoff) while the channel's notices go on; the DM is
    sent when it is due again."""
    request = new_request(store)
    slack.fail["dm"] = [transient()]
    outbox.deliver(request.id)
    change(
        store,
        request.id,
        State.PENDING,
        State.REJECTED,
        action=Action.REJECT,
    )
    outbox.deliver(request.id)
    assert slack.methods() == ["post_request", "show"]
    [waiting, *behind] = store.outbox_entries(request.id)
    assert (waiting.kind, waiting.queue, waiting.attempts) == (Notice.DM_POSTED, Lane.DM, 1)
    assert waiting.next_attempt_at == T0 + backoff(0)
    assert [e.kind for e in behind] == [Notice.DM_OUTCOME, Notice.SETTLE_DM]
    clock.now = T0 + backoff(0)
    assert outbox.deliver_due() >= 1
    assert store.outbox_entries() == []
    # The "posted" DM (no button since Cancel moved to the message: nothing to rewrite), then
    # how it ended.
    assert slack.methods() == ["post_request", "show", "dm", "dm"]
    assert "rejected" in slack.calls[-1][2]


def test_a_late_reply_describes_the_attempt_that_queued_it(store, slack, outbox) -> None:
    """An unknown outcome's reply, delivered only after a Retry succeeded, still says
    "unknown" with that attempt's outcome (read from its audit entry), and the Retry's reply
    says what the Retry did."""
    request = new_request(store)
    outbox.deliver(request.id)
    first = ProviderFailed(kind="timeout", message="no answer", outcome_unknown=True)
    second = Cleared(("example.com",), ("3704",), "cleared")
    change(store, request.id, State.PENDING, State.EXECUTING, action=Action.APPROVE, item=0)
    slack.fail["reply_result"] = [transient()]
    change(
        store,
        request.id,
        State.EXECUTING,
        State.UNKNOWN,
        action=Action.PROVIDER_ERROR,
        item=0,
        outcome=first,
    )
    outbox.deliver(request.id)  # Slack is down for the reply
    change(store, request.id, State.UNKNOWN, State.EXECUTING, action=Action.RETRY, item=0)
    change(
        store,
        request.id,
        State.EXECUTING,
        State.SUCCEEDED,
        action=Action.PROVIDER_SUCCESS,
        item=0,
        outcome=second,
    )
    outbox.deliver_due()  # due now: the backoff is measured from the failed try
    replies = [c for c in slack.calls if c[0] == "reply_result"]
    assert replies == []  # the first reply is not due yet, and the second waits behind it
    outbox.clock = lambda: T0 + backoff(0)
    outbox.deliver(request.id)
    replies = [c for c in slack.calls if c[0] == "reply_result"]
    # Each reply's text says what its own change came to (the primitives see only text).
    assert [text for _, _, text in replies] == [
        "Outcome unknown for alice@example.com",
        "Cleared 1 domain(s) and notified 1 client(s) for alice@example.com",
    ]


def test_a_request_slack_will_never_take_is_handed_back(store, slack, outbox, unpostable) -> None:
    """A permanent refusal of the request message buries the entry and hands the request to
    on_unpostable (the service closes it); the outbox itself changes no state."""
    request = new_request(store)
    slack.fail["post_request"] = [permanent("channel_not_found")]
    outbox.deliver(request.id)
    assert unpostable == [(request.id, "channel_not_found")]
    assert store.get(request.id).state is State.PENDING
    assert [e.kind for e in store.outbox_entries(request.id)] == [Notice.DM_POSTED]


def test_transient_failures_are_retried_for_a_week_then_given_up_audited(
    store, slack, outbox, clock, unpostable
) -> None:
    """Slack's own trouble is retried with a growing wait capped at MAX_BACKOFF, however many
    attempts it takes, until GIVE_UP_AFTER from when the entry was queued (the last try at
    that very moment); then it is given up on (buried), the give-up is audited on the request
    with the notice and Slack's error, and a request message that never went out is handed
    back."""
    # Only the request message is queued: the DM's lane has tests of its own.
    store.announce = lambda action, bulk=False: [(Notice.POST_REQUEST, Lane.CHANNEL)]
    request = store.create(
        one_item_request(
            id=new_request_id(),
            email="bob@example.com",
            domain="example.com",
            reason="T-2",
            requester="U0REQ",
            state=State.PENDING,
            created_at=T0,
            expires_at=T0 + timedelta(days=30),
            updated_at=T0,
        ),
        "U0REQ",
    )
    slack.fail["post_request"] = [transient()] * 2000
    outbox.deliver(request.id)
    attempts = 1
    while True:
        [entry] = store.outbox_entries(request.id)
        assert entry.attempts == attempts
        expected = min(clock.now + backoff(attempts - 1), T0 + GIVE_UP_AFTER)
        assert entry.next_attempt_at == expected
        clock.now = entry.next_attempt_at
        outbox.deliver_due()
        attempts += 1
        if clock.now >= T0 + GIVE_UP_AFTER:
            break
        assert unpostable == []  # far beyond the 20 attempts the outbox once gave up after
    assert attempts > 600
    assert store.outbox_entries(request.id) == []
    assert unpostable == [(request.id, "ratelimited")]
    assert set(slack.methods()) == {"find_request_message"}  # each retry looked first
    [given_up] = [e for e in store.audit_log(request.id) if e.action == Action.DELIVERY_GIVEN_UP]
    assert (given_up.actor, given_up.from_state, given_up.to_state) == (
        "bot",
        State.PENDING,
        State.PENDING,
    )
    assert given_up.details["notice"] == Notice.POST_REQUEST
    assert given_up.details["error"] == "ratelimited"
    assert given_up.details["attempts"] == attempts
    assert store.metric_figures().given_up == {Notice.POST_REQUEST.value: 1}
    assert backoff(0) == timedelta(seconds=1)
    assert backoff(30) == backoff(10_000) == timedelta(seconds=MAX_BACKOFF) == timedelta(minutes=15)


def test_a_refusal_is_given_up_at_once_and_audited(store, slack, outbox, unpostable) -> None:
    """A person's mistake (a refusal asking again cannot change) is given up on at the first
    attempt, audited and counted, as before the week-long retries."""
    request = new_request(store)
    slack.fail["post_request"] = [permanent("not_in_channel")]
    outbox.deliver(request.id)
    assert unpostable == [(request.id, "not_in_channel")]
    [given_up] = [e for e in store.audit_log(request.id) if e.action == Action.DELIVERY_GIVEN_UP]
    assert given_up.details["why"] == "refused" and given_up.details["attempts"] == 1
    assert store.metric_figures().given_up == {Notice.POST_REQUEST.value: 1}


def test_a_post_tried_before_is_looked_for_and_adopted_not_posted_twice(
    store, slack, outbox, clock
) -> None:
    """A request message whose earlier post got no answer is looked for first; a copy Slack
    holds becomes the request's message and is updated, with no second post. A first try
    never looks (no extra call on the common path)."""
    request = new_request(store)
    slack.fail["post_request"] = [transient("timeout")]
    outbox.deliver(request.id)
    assert "find_request_message" not in slack.methods()
    slack.copy = Posted(CHANNEL, "1699999999.000100")
    clock.now = T0 + backoff(0)
    outbox.deliver_due()
    assert slack.methods()[:2] == ["find_request_message", "show"]
    assert "post_request" not in slack.methods()
    assert store.get(request.id).message_ts == "1699999999.000100"


def test_updates_queued_together_show_the_state_once(store, slack, outbox) -> None:
    """Two message updates queued for a request render the same current state: one call."""
    request = new_request(store)
    outbox.deliver(request.id)
    slack.calls.clear()
    # A change the post did not show (the provider's view) queues one, then one more.
    store.record_view(request.id, view(), action=Action.LOOKUP, actor="bot", now=T0)
    store.enqueue(request.id, [(Notice.SHOW, Lane.CHANNEL)], now=T0)
    outbox.deliver(request.id)
    assert slack.methods() == ["show"]


def test_a_new_request_is_held_for_its_lookup_then_posted_with_it(
    store, slack, outbox, monkeypatch
) -> None:
    """What a new request tells is held until its lookup is recorded (or until ``held_until``):
    then the message is posted showing the provider's view, the DM follows, and the lookup's
    own update is not sent (it would show what the post showed)."""
    posted: list[str] = []
    post = slack.post

    def post_keeping_blocks(what: str, channel: str, text: str, blocks: Any = None, **kw: Any):
        posted.append(json.dumps(blocks))
        return post(what, channel, text, blocks, **kw)

    monkeypatch.setattr(slack, "post", post_keeping_blocks)
    request = store.create(
        make_request(created_at=T0), "U0REQ", held_until=T0 + timedelta(seconds=1)
    )
    outbox.deliver(request.id)
    assert slack.methods() == []  # held
    store.record_view(request.id, view(), action=Action.LOOKUP, actor="bot", now=T0)
    outbox.deliver(request.id)
    assert slack.methods() == ["post_request", "dm"]
    [message] = posted
    assert PROVIDER_LINE_MARK in message and "pending" in message
    assert store.outbox_entries() == []


def test_a_post_not_waiting_longer_than_held_until_is_updated_by_the_lookup(
    store, slack, outbox, clock
) -> None:
    """With no lookup by ``held_until`` the message is posted without the provider's view, and
    the lookup recorded later updates it (that update shows something new: it is sent)."""
    request = store.create(
        make_request(created_at=T0), "U0REQ", held_until=T0 + timedelta(seconds=1)
    )
    clock.now = T0 + timedelta(seconds=1)
    outbox.deliver(request.id)
    assert slack.methods() == ["post_request", "dm"]
    store.record_view(request.id, view(), action=Action.LOOKUP, actor="bot", now=clock.now)
    outbox.deliver(request.id)
    assert slack.methods() == ["post_request", "dm", "show"]


def test_a_lookup_not_shown_releases_nothing(store, slack, outbox) -> None:
    """A lookup that comes back once the request has left pending (approved meanwhile) is not
    shown, and leaves what the approval held ("calling the provider…") held."""
    request = new_request(store)
    outbox.deliver(request.id)
    held = T0 + timedelta(seconds=2)
    change(
        store,
        request.id,
        State.PENDING,
        State.EXECUTING,
        action=Action.APPROVE,
        item=0,
        claim_id="c1",
        lease_until=T0 + timedelta(minutes=1),
        held_until=held,
    )
    recorded = store.record_view(
        request.id,
        view(),
        action=Action.LOOKUP,
        actor="bot",
        now=T0,
        states=frozenset({State.PENDING}),
    )
    assert recorded.view is None
    [interim] = store.outbox_entries(request.id)
    assert (interim.kind, interim.next_attempt_at) == (Notice.SHOW, held)


def test_a_dm_with_cancel_from_before_is_still_settled(store, slack, outbox) -> None:
    """A "posted" DM that offered Cancel (posted before Cancel moved to the request message)
    is still rewritten without it once the request is decided."""
    request = new_request(store)
    outbox.deliver(request.id)
    store.record_buttons(
        request.id, Surface.CANCEL_DM, "D0REQ", "1699999999.000001", audit_id=None, now=T0
    )
    change(store, request.id, State.PENDING, State.REJECTED, action=Action.REJECT)
    outbox.deliver(request.id)
    assert slack.methods() == ["post_request", "dm", "show", "dm", "rewrite"]
    assert "can no longer be cancelled" in slack.calls[-1][2]
    assert store.live_buttons(request.id) == []


def test_a_posted_request_is_never_posted_again(store, slack, outbox) -> None:
    """A POST_REQUEST whose message already exists (a delivery whose completion was lost) is
    completed without a second post."""
    request = new_request(store)
    store.set_message(request.id, CHANNEL, "1.1")
    outbox.deliver(request.id)
    assert slack.methods() == ["dm"]
    assert store.outbox_entries() == []


def test_history_beside_a_request_is_not_cut_by_newer_requests(store, outbox) -> None:
    """The history beside a request counts the requests before it, however many came after it
    for the same domain (they take places in the store's newest-first answer), and says "more"
    (History.more) only when there were more than HISTORY_SHOWN before it."""

    def made(email: str, minutes: int) -> VerificationRequest:
        at = T0 + timedelta(minutes=minutes)
        request = one_item_request(
            id=new_request_id(),
            email=email,
            domain=email.rpartition("@")[2],
            reason="T-1",
            requester="U0REQ",
            state=State.PENDING,
            created_at=at,
            expires_at=at + timedelta(days=1),
            updated_at=at,
        )
        return store.create(request, "U0REQ")

    earlier = [made(f"old{n}@example.com", -100 + n) for n in range(3)]
    request = made("alice@example.com", 0)
    for n in range(HISTORY_SHOWN + 5):
        made(f"new{n}@example.com", 1 + n)
    history = outbox.renderer._history(request)
    assert [r.id for r in history.requests] == [r.id for r in reversed(earlier)]
    assert history.more is False
    for n in range(HISTORY_SHOWN):
        made(f"older{n}@example.com", -200 + n)
    history = outbox.renderer._history(request)
    assert len(history.requests) == HISTORY_SHOWN and history.more is True
    assert history.requests[:3] == tuple(reversed(earlier))


def test_an_update_after_a_retry_is_sent_though_it_renders_as_the_post_did(
    store, slack, clock
) -> None:
    """Replica A posts the message when the request is already unknown; replica B delivers
    the updates that follow, then a Retry's "calling the provider…"; the Retry's outcome is
    unknown again, rendering just as the post did. A, delivering that last update, sends it:
    the request changed since A posted (B showed it executing meanwhile), so "it shows this
    already" no longer holds."""
    a = Outbox(store, slack, clock=clock, owner="replica-a")
    b = Outbox(store, slack, clock=clock, owner="replica-b")
    request = store.create(make_request(created_at=T0), "U0REQ")
    store.record_view(request.id, view(), action=Action.LOOKUP, actor="bot", now=T0)
    unknown = ProviderFailed(kind="timeout", message="No answer in time", outcome_unknown=True)

    def call(action: Action, src: State, claim: str) -> None:
        claimed = change(
            store,
            request.id,
            src,
            State.EXECUTING,
            action=action,
            decided_by="U0APP",
            claim_id=claim,
            lease_until=T0 + timedelta(minutes=1),
            item=0,
        )
        assert claimed is not None
        done = change(
            store,
            request.id,
            State.EXECUTING,
            State.UNKNOWN,
            action=Action.PROVIDER_ERROR,
            outcome=unknown,
            fence=claim,
            item=0,
        )
        assert done is not None

    call(Action.APPROVE, State.PENDING, "c1")
    [head] = store.claim_outbox(now=T0, owner="replica-a", lease_seconds=60, limit=1)
    assert head.kind == Notice.POST_REQUEST
    a._deliver_one(head, "replica-a")  # A posts it, unknown
    b.deliver(request.id)  # B: the updates queued behind the post
    call(Action.RETRY, State.UNKNOWN, "c2")
    updates = [c for c in slack.calls if c[0] == "show"]
    a.deliver(request.id)
    sent = [c for c in slack.calls if c[0] == "show"][len(updates) :]
    assert sent, "the update showing the Retry's unknown outcome was not sent"
    assert "unknown" in sent[-1][2].lower()
