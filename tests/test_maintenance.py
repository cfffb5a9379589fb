"""The maintenance round and its loop: what happens without anyone clicking."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from test_approvals import Clock, Delivery, Roles, StubProvider

from bot.domain.model import Action, State
from bot.domain.service import ApprovalPolicy, Approvals, Transition
from bot.maintenance import INTERRUPTED_GRACE, Maintenance, interrupted_bound
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
    s = open_store(f"sqlite:///{tmp_path}/m.db")
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
    assert maintenance.run_once() == {"expired": 0, "interrupted": 0, "reminded": 0, "delivered": 3}
    clock.now += timedelta(hours=1)
    assert maintenance.run_once() == {"expired": 1, "interrupted": 1, "reminded": 0, "delivered": 3}
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
