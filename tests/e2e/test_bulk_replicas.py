"""A bulk request's run shared by two bot processes (`python -m bot`) on one PostgreSQL
database: a replica killed (``kill -9``) in the middle of its provider calls leaves its queued
items to the other, the calls it had in flight become unknown (never called again), and no
email reaches the provider twice. Asked and approved through the service over the same
database (the Slack side of a bulk request is pinned in tests/e2e/test_bulk.py), so this pins
the runners alone.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from doubles import Delivery, Roles, StubProvider
from processes import make_workspace

from bot.domain.model import State
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack.notices import notices_for
from bot.store import open_store

EMAILS = [f"user{n}@example.com" for n in range(24)]
# Seconds a killed replica's claims live on (INTERRUPTED_AFTER), and the provider's answers'
# time while the first replica calls (long: it is killed with its calls in flight).
LEASE = 5
HANGING = 20.0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_replica_killed_mid_batch_leaves_its_items_to_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    """Replica A claims items and is killed while the provider holds its calls; replica B runs
    every item still queued, its maintenance makes A's in-flight items unknown once their
    leases run out, and every email was called at most once."""
    with make_workspace(tmp_path) as ws:
        settings = {
            "DATABASE_URL": postgres_url,
            "BULK_RATE": "20",
            "BULK_CONCURRENCY": "3",
            "INTERRUPTED_AFTER": str(LEASE),
            "HOSTUP_TIMEOUT": "3",
        }
        ws.provider.delay = HANGING
        a = ws.start(ws.env(**settings))
        store = open_store(postgres_url, announce=notices_for)
        try:
            approvals = Approvals(
                store,
                StubProvider(),
                Roles(approvers={"U2", "U3"}, requesters={"U1"}),
                Delivery(),
                ApprovalPolicy(ttl=timedelta(hours=1)),
            )
            request = approvals.submit_bulk(EMAILS, "incident", "U1").request
            approvals.approve(request.id, "U2")
            approvals.approve(request.id, "U3")

            # A's runners claim up to BULK_CONCURRENCY items; the provider holds those calls.
            wait_until(lambda: len(ws.provider.calls) >= 3, 30, "replica A's calls")
            a.kill()
            in_flight = {call["json"]["email"] for call in ws.provider.calls}
            assert len(in_flight) == 3

            ws.provider.delay = 0.0
            ws.start(ws.env(**settings))
            wait_until(
                lambda: (
                    (got := store.get(request.id)) is not None and got.state is not State.EXECUTING
                ),
                90,
                "replica B to finish the run",
            )
            final = store.get(request.id)
            assert final is not None
            called = Counter(call["json"]["email"] for call in ws.provider.calls)
            assert set(called) == set(EMAILS)
            assert max(called.values()) == 1  # nobody's email reached the provider twice
            by_state = {item.email: item.state for item in final.items}
            assert {e for e, s in by_state.items() if s is State.UNKNOWN} == in_flight
            assert all(by_state[e] is State.SUCCEEDED for e in EMAILS if e not in in_flight)
            assert final.state is State.UNKNOWN
            assert [e.action for e in store.audit_log(request.id)].count("finish") == 1
        finally:
            store.close()
