"""A hard deadline on every provider call, a lease on every claim, a fence on every outcome.

End to end over real HTTP against the stand-ins: a provider that trickles its headers is cut
off at the attempt's wall-clock deadline; a claim's answer that comes after its lease ran out
(and a Retry claimed the request) is recorded against its own claim, never on the Retry's; a
process killed mid-call leaves a claim the sweep takes once its lease has run out.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from processes import make_workspace, state_of
from worlds import later, request_of

from bot.domain.model import Action, State, new_request_id, one_item_request
from bot.domain.ports import Transition
from bot.slack import ids
from bot.slack.notices import notices_for
from bot.standins.provider import CONFIRM_PATH, Response
from bot.standins.world import APPROVER, REQUESTER, SECOND_APPROVER, World
from bot.store import open_store

T = TypeVar("T")
EMAIL = "alice@example.com"


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """``check()``'s first truthy value, looked at every 50 ms for at most ``timeout`` s (for
    what only the store shows: nothing in Slack wakes a waiter)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        pause.wait(0.05)


def test_a_provider_trickling_its_headers_is_cut_off_at_the_deadline(database_url, tmp_path):
    """A provider that sends its headers one byte every 0.3 s (each read well within
    HOSTUP_TIMEOUT=1, the whole far beyond it) is cut off at the attempt's wall-clock
    deadline: the request is unknown (with Retry) within about a second, not after the
    minute the trickle would take, and the bot closed the connection."""
    settings = {"DATABASE_URL": database_url, "HOSTUP_TIMEOUT": 1}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        message = world.driver.ask(REQUESTER, EMAIL)
        world.provider.enqueue(Response.trickle_headers(0.3))
        started = time.monotonic()
        world.driver.approve(APPROVER, message)
        request = eventually(
            lambda: (r := request_of(world, message)).state is State.UNKNOWN and r or None,
            timeout=10,
            what="unknown outcome",
        )
        took = time.monotonic() - started
        assert took < 1 + 2.5, took  # the deadline, the click's own round trip, a margin
        assert request.outcome.kind == "timeout"
        reply = world.driver.wait_thread_reply(message)
        assert ids.RETRY_ACTION in str(reply["blocks"])
        [call] = [c for c in world.provider.calls if c["path"] == CONFIRM_PATH]
        # The stand-in notices the hang-up at its next byte.
        eventually(
            lambda: any(c.get("abandoned") for c in world.provider.calls),
            timeout=5,
            what="closed connection",
        )
        assert call["status"] is None  # never answered in full


def test_a_late_answer_is_recorded_against_its_own_claim_not_the_retrys(
    database_url, tmp_path, caplog
):
    """A claim whose lease ran out is swept to unknown and retried; the first call's answer then
    arrives while the Retry's call is under way. It is fenced out: recorded as a late answer
    against its own claim (with the provider's requestId), never as the Retry's outcome; the
    Retry's own answer is the one recorded, and nothing is logged as an ERROR."""
    settings = {"DATABASE_URL": database_url, "HOSTUP_TIMEOUT": 10}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        first_gate, retry_gate = threading.Event(), threading.Event()
        message = world.driver.ask(REQUESTER, EMAIL)
        world.provider.enqueue(Response.held(first_gate), Response.held(retry_gate))
        world.driver.approve(APPROVER, message)
        world.provider.wait_for_calls(1)
        request = request_of(world, message)
        store = world.services.store

        def current() -> Any:
            return store.get(request.id)

        first_claim = current().claim_id
        assert first_claim is not None
        # The claim's lease runs out (the process holding it stalled, as far as anyone knows).
        maintenance = world.services.maintenance
        later(world, world.services.approvals.policy.lease.total_seconds() + 1)
        assert maintenance.run_once()["interrupted"] == 1
        reply = world.driver.wait_thread_reply(message)
        world.driver.click(SECOND_APPROVER, reply, ids.RETRY_ACTION)
        world.provider.wait_for_calls(2)
        retry_claim = eventually(
            lambda: (r := current()).state is State.EXECUTING and r.claim_id,
            timeout=10,
            what="the Retry's claim",
        )
        assert retry_claim != first_claim
        with caplog.at_level(logging.WARNING):
            first_gate.set()  # the stale call answers while the Retry's call is under way
            late = eventually(
                lambda: [e for e in store.audit_log(request.id) if e.action == Action.LATE_ANSWER],
                timeout=10,
                what="late answer in the audit log",
            )
            assert current().state is State.EXECUTING  # the Retry's claim stands
            retry_gate.set()
            done = eventually(
                lambda: (r := current()).state is State.SUCCEEDED and r or None,
                timeout=10,
                what="the Retry's outcome",
            )
        [entry] = late
        calls = world.provider.calls
        assert entry.details["claim_id"] == first_claim
        assert entry.details["type"] == "cleared"  # what the provider said, kept
        assert entry.details["provider_request_id"]
        assert entry.from_state is entry.to_state is State.EXECUTING
        assert done.claim_id == retry_claim
        assert calls[0]["status"] == calls[1]["status"] == 200
        # Each claim's own answer: the Retry's outcome is not the stale call's.
        assert done.outcome.provider_request_id != entry.details["provider_request_id"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "late answer" in caplog.text
        assert len(calls) == 2


def test_a_process_killed_mid_call_is_offered_for_retry_within_its_lease(tmp_path: Path):
    """A process killed (SIGKILL) while its call is under way leaves its claim and lease; with
    HOSTUP_TIMEOUT=3, another process offers the request for Retry within 45 s of the kill (the
    lease, one attempt's deadline plus a grace, and one maintenance round), not the two minutes
    the old age bound took. The provider is called once."""
    with make_workspace(tmp_path) as workspace:
        env = workspace.env(HOSTUP_TIMEOUT="3")
        first = workspace.start(env)
        message = workspace.driver(first).ask(REQUESTER, EMAIL)
        with open_store(env["DATABASE_URL"]) as store:
            eventually(lambda: store.outbox_entries() == [], timeout=15, what="deliveries")
        gate = threading.Event()
        workspace.provider.enqueue(Response.held(gate))
        workspace.driver(first).approve(APPROVER, message)
        workspace.provider.wait_in_flight(CONFIRM_PATH, timeout=10)
        # Killed once "calling the provider…" is shown: a kill in the middle of a delivery
        # leaves that delivery leased to the dead process (the outbox's own, longer bound).
        with open_store(env["DATABASE_URL"]) as store:
            eventually(lambda: store.outbox_entries() == [], timeout=15, what="deliveries")
        first.kill()
        killed = time.monotonic()
        assert first.proc.returncode == -signal.SIGKILL
        gate.set()
        second = workspace.start(workspace.env(DATABASE_URL=env["DATABASE_URL"]))
        driver = workspace.driver(second)
        driver.timeout = 45
        final = driver.final_message(message)
        offered = time.monotonic() - killed
        assert state_of(final) == "unknown"
        reply = driver.wait_thread_reply(message)
        assert ids.RETRY_ACTION in str(reply["blocks"])
        print(f"offered for Retry {offered:.1f} s after the kill (HOSTUP_TIMEOUT=3)")
        assert offered <= 45, offered
        assert len(workspace.provider.calls) == 1


# ---------------------------------------------------------------------------------------------
# The store's part, on each backend: the claim, the renewal, the fence and the sweep's test

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def claimed(store: Any, claim_id: str, lease_until: datetime) -> Any:
    """A request claimed (pending -> executing) with ``claim_id`` and ``lease_until``."""
    request = store.create(
        one_item_request(
            id=new_request_id(),
            email=f"u-{new_request_id()}@example.com",
            domain="example.com",
            reason="T-1",
            requester="U1",
            state=State.PENDING,
            created_at=T0,
            expires_at=T0 + timedelta(days=1),
            updated_at=T0,
        ),
        actor="U1",
    )
    done = store.transition(
        Transition(
            request.id,
            frozenset({State.PENDING}),
            State.EXECUTING,
            actor="U2",
            action=Action.APPROVE,
            item=0,
            now=T0,
            claim_id=claim_id,
            lease_until=lease_until,
        )
    )
    assert done is not None and (done.claim_id, done.lease_until) == (claim_id, lease_until)
    return done


def outcome(request_id: str, fence: str, **extra: Any) -> Transition:
    return Transition(
        request_id,
        frozenset({State.EXECUTING}),
        State.SUCCEEDED,
        actor="U2",
        action=Action.PROVIDER_SUCCESS,
        item=0,
        now=T0 + timedelta(seconds=5),
        fence=fence,
        **extra,
    )


def test_the_outcome_is_fenced_on_its_claim(database_url: str) -> None:
    """An outcome lands only under the claim it names; another claim's is refused (None) and
    writes nothing."""
    with open_store(database_url, announce=notices_for) as opened:
        store: Any = opened
        request = claimed(store, "claim-a", T0 + timedelta(seconds=13))
        assert store.transition(outcome(request.id, "claim-b")) is None
        assert store.get(request.id).state is State.EXECUTING
        assert len(store.audit_log(request.id)) == 2
        done = store.transition(outcome(request.id, "claim-a"))
        assert done is not None and done.state is State.SUCCEEDED


def test_a_lease_is_renewed_only_by_its_claim_while_it_runs(database_url: str) -> None:
    """renew_lease extends the lease of the current claim while it runs; another claim, a lease
    that ran out, or a request no longer executing cannot renew it. Nothing is audited."""
    with open_store(database_url, announce=notices_for) as opened:
        store: Any = opened
        until = T0 + timedelta(seconds=13)
        request = claimed(store, "claim-a", until)
        later = T0 + timedelta(seconds=40)
        assert not store.renew_lease(request.id, "claim-b", until=later, now=T0)
        assert not store.renew_lease(request.id, "claim-a", until=later, now=until + timedelta(1))
        assert store.renew_lease(request.id, "claim-a", until=later, now=T0 + timedelta(seconds=5))
        assert store.get(request.id).lease_until == later
        assert len(store.audit_log(request.id)) == 2
        assert store.transition(outcome(request.id, "claim-a")) is not None
        assert not store.renew_lease(request.id, "claim-a", until=later, now=T0)


def test_the_sweep_takes_a_claim_only_once_its_lease_ran_out(database_url: str) -> None:
    """The sweep's compare-and-set (claim listed, lease ran out before now) fails while the
    lease runs, and after a renewal; it succeeds once the lease ran out."""
    with open_store(database_url, announce=notices_for) as opened:
        store: Any = opened
        until = T0 + timedelta(seconds=13)
        request = claimed(store, "claim-a", until)

        def sweep(now: datetime) -> Any:
            return store.transition(
                Transition(
                    request.id,
                    frozenset({State.EXECUTING}),
                    State.UNKNOWN,
                    actor="bot",
                    action=Action.INTERRUPTED,
                    item=0,
                    now=now,
                    fence="claim-a",
                    lease_expired_by=now,
                )
            )

        assert sweep(until) is None  # not before it ran out
        renewed = until + timedelta(seconds=30)
        assert store.renew_lease(request.id, "claim-a", until=renewed, now=until)
        assert sweep(until + timedelta(seconds=1)) is None  # renewed meanwhile
        swept = sweep(renewed + timedelta(seconds=1))
        assert swept is not None and swept.state is State.UNKNOWN


def test_a_late_answer_is_audited_against_its_claim_and_changes_nothing(
    database_url: str,
) -> None:
    """record_late appends a late_answer entry (its claim and the answer in its details), from
    and to the current state; the request does not change. A transition cannot record one."""
    with open_store(database_url, announce=notices_for) as opened:
        store: Any = opened
        request = claimed(store, "claim-a", T0 + timedelta(seconds=13))
        before = store.get(request.id)
        after = store.record_late(
            request.id,
            claim_id="claim-old",
            actor="U2",
            now=T0 + timedelta(seconds=20),
            details={"type": "cleared", "provider_request_id": "req-1"},
        )
        assert after == before
        entry = store.audit_log(request.id)[-1]
        assert entry.action == Action.LATE_ANSWER
        assert entry.from_state is entry.to_state is State.EXECUTING
        assert entry.details == {
            "type": "cleared",
            "provider_request_id": "req-1",
            "claim_id": "claim-old",
        }
        with pytest.raises(ValueError, match="recorded only"):
            store.transition(
                Transition(
                    request.id,
                    frozenset({State.EXECUTING}),
                    State.SUCCEEDED,
                    actor="U2",
                    action=Action.LATE_ANSWER,
                    now=T0,
                )
            )
