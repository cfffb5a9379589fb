"""The maintenance round and its loop: what happens without anyone clicking."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from doubles import Clock, Delivery, Roles, StubProvider

from bot.domain.model import Action, State
from bot.domain.ports import Transition
from bot.domain.service import ApprovalPolicy, Approvals
from bot.maintenance import (
    INTERRUPTED_GRACE,
    LOOKUP_AFTER,
    MAX_LOOKUPS,
    Maintenance,
    interrupted_bound,
)
from bot.provider.view import VIEW_CALLS, VIEW_TIMEOUT
from bot.slack.notices import notices_for
from bot.store import StoreError, open_store


class CountingOutbox:
    """Stands in for the outbox: counts the rounds' calls to deliver what is due."""

    def __init__(self) -> None:
        self.rounds = 0

    def deliver_due(self, limit: int = 100) -> int:
        self.rounds += 1
        return 3


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/m.db", announce=notices_for)
    yield s
    s.close()


def test_a_round_expires_recovers_and_delivers(store) -> None:
    """One round expires pending requests past their TTL, turns claims older than a call can
    take (plus the grace) into unknown, and delivers what is due; it counts each."""
    clock, delivery = Clock(), Delivery()
    approvals = Approvals(
        store, StubProvider(), Roles(), delivery, ApprovalPolicy(ttl=timedelta(hours=1)), clock
    )
    stale = approvals.submit("a@example.com", "T", "U1")
    stuck = approvals.submit("b@example.com", "T", "U1")
    # Claimed by a process that then stopped: executing, with no call in flight anywhere.
    claimed = store.transition(
        Transition(
            stuck.id,
            frozenset({State.PENDING}),
            State.EXECUTING,
            actor="U2",
            action=Action.APPROVE,
            item=0,
            now=clock.now,
        )
    )
    assert claimed is not None
    outbox = CountingOutbox()
    maintenance = Maintenance(
        approvals,
        outbox,  # type: ignore[arg-type]
        interrupted_after=interrupted_bound(0, 60),
    )
    clock.now += timedelta(seconds=59 + INTERRUPTED_GRACE)
    # (``stale`` was never looked up, as submit alone does not: the first round does it.)
    assert maintenance.run_once() == {
        "expired": 0,
        "interrupted": 0,
        "reminded": 0,
        "escalated": 0,
        "delivered": 3,
        "looked_up": 1,
    }
    clock.now += timedelta(hours=1)
    assert maintenance.run_once() == {
        "expired": 1,
        "interrupted": 1,
        "reminded": 0,
        "escalated": 0,
        "delivered": 3,
        "looked_up": 0,
    }
    assert store.get(stale.id).state is State.EXPIRED
    assert store.get(stuck.id).state is State.UNKNOWN
    assert outbox.rounds == 2


def test_the_loop_outlives_a_bad_round_and_stops_when_asked(caplog) -> None:
    """A round that fails (the store away, or a bug) is logged and the loop goes on to the
    next one; stop() ends it."""
    outcomes = [StoreError("database is locked"), RuntimeError("a bug"), None]

    class Scripted(Maintenance):
        def run_once(self) -> dict[str, int]:
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome
            self._stop.set()  # the third round asks the loop to stop
            return {}

    maintenance = Scripted(None, None, interrupted_after=1, interval=0)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="bot.maintenance"):
        maintenance._loop()
    assert outcomes == []
    assert "store is unavailable: database is locked" in caplog.text
    assert "Maintenance round failed" in caplog.text and "a bug" in caplog.text


def test_a_round_looks_up_the_requests_whose_lookup_was_cut_off(store) -> None:
    """Pins the recovery of lookups that never ran (a process stopped between posting a
    request and recording its reading): a round looks up pending requests with no reading once
    they are older than LOOKUP_AFTER (longer than a lookup can take), oldest first and at most
    MAX_LOOKUPS a round; never a younger one, one already read, one no longer pending, or one
    past its expiry."""
    assert LOOKUP_AFTER > VIEW_CALLS * 2 * VIEW_TIMEOUT  # never a live lookup
    clock, provider = Clock(), StubProvider()
    approvals = Approvals(
        store, provider, Roles(), Delivery(), ApprovalPolicy(ttl=timedelta(hours=1)), clock
    )
    start = clock.now
    cut_off = []
    for i in range(MAX_LOOKUPS + 1):
        cut_off.append(approvals.submit(f"u{i}@d{i}.example", "T", "U1"))
        clock.now += timedelta(seconds=1)  # oldest first
    read = approvals.submit("read@read.example", "T", "U1")
    approvals.look_up(read.id)
    rejected = approvals.submit("no@no.example", "T", "U1")
    approvals.reject(rejected.id, "U2")
    provider.views.clear()
    maintenance = Maintenance(approvals, CountingOutbox(), interrupted_after=60)  # type: ignore[arg-type]
    clock.now = start + timedelta(seconds=LOOKUP_AFTER)
    young = approvals.submit("young@young.example", "T", "U1")
    assert maintenance.run_once()["looked_up"] == 0  # a lookup may still be under way
    clock.now += timedelta(seconds=10)
    assert maintenance.run_once()["looked_up"] == MAX_LOOKUPS
    assert provider.views == [r.domain for r in cut_off[:MAX_LOOKUPS]]
    assert maintenance.run_once()["looked_up"] == 1
    assert provider.views[MAX_LOOKUPS:] == [cut_off[-1].domain]
    assert maintenance.run_once()["looked_up"] == 0
    for request in cut_off:
        entry = store.audit_log(request.id)[-1]
        assert (entry.action, entry.actor) == (Action.LOOKUP, "bot")
        assert store.get(request.id).view is not None
    assert store.get(young.id).view is None and store.get(rejected.id).view is None
    clock.now += timedelta(hours=2)  # young is past its expiry (an hour), not swept yet
    assert approvals.look_up_missing(LOOKUP_AFTER, MAX_LOOKUPS) == []
    assert young.domain not in provider.views
