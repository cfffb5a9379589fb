"""The store's compare-and-set transition, on every backend: legal, illegal and losing
changes and their audit entries, expiry and updated_before guards, races between threads
and processes (exactly one winner), and requests of several items moving by their items."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from stores import (
    EXECUTING,
    PENDING,
    T0,
    Told,
    approve,
    make_request,
    run_processes,
    says,
    unique_email,
)

from bot.domain.model import (
    Action,
    Item,
    OpenRequestExists,
    State,
    VerificationRequest,
    new_request_id,
)
from bot.domain.outcomes import Cleared
from bot.domain.ports import Transition
from bot.slack.notices import Notice
from bot.store import BaseSQLStore, open_store

# ---------------------------------------------------------------------------------------------
# transition


def test_legal_transition_updates_state_and_appends_audit(store: BaseSQLStore) -> None:
    """A legal transition updates state, updated_at and the given columns, and appends an
    entry with actor, action, from/to state, time and details."""
    request = store.create(make_request(), actor="U_REQ")
    later = T0 + timedelta(minutes=5)
    claimed = store.transition(
        Transition(
            request.id,
            PENDING,
            State.EXECUTING,
            actor="U_APP",
            action=Action.APPROVE,
            item=0,
            now=later,
            details={"note": "looks fine ✓", "n": 1},
            decided_by="U_APP",
        )
    )
    assert claimed is not None
    assert claimed.state is State.EXECUTING
    assert claimed.updated_at == later
    assert claimed.decided_by == "U_APP"
    assert claimed == store.get(request.id)
    create, entry = store.audit_log(request.id)
    assert create.action == "create"
    assert entry.actor == "U_APP"
    assert entry.action == "approve"
    assert entry.from_state is State.PENDING
    assert entry.to_state is State.EXECUTING
    assert entry.at == later
    assert entry.details == {"note": "looks fine ✓", "n": 1}

    outcome = Cleared(("example.com", "ü.example"), ("3704",), "ok ✓", "abc-123", "2026-01-01Z")
    done = store.transition(
        Transition(
            request.id,
            EXECUTING,
            State.SUCCEEDED,
            actor="U_APP",
            action=Action.PROVIDER_SUCCESS,
            item=0,
            now=later + timedelta(seconds=2),
            details={"nested": {"x": None}},
            outcome=outcome,
        )
    )
    assert done is not None
    assert done.state is State.SUCCEEDED
    assert done.outcome == outcome
    # The audit entry holds the outcome's serialised form and the details given.
    details = store.audit_log(request.id)[-1].details
    assert details["type"] == "cleared" and details["provider_request_id"] == "abc-123"
    assert details["nested"] == {"x": None}
    # Not given this time, so kept from the approval.
    assert done.decided_by == "U_APP"
    assert [e.action for e in store.audit_log(request.id)] == [
        "create",
        "approve",
        "provider_success",
    ]


def test_transition_from_one_of_several_states_records_the_actual_one(
    store: BaseSQLStore,
) -> None:
    """With several from_states, the audit's from_state is the state the request really had."""
    request = store.create(make_request(), actor="U_REQ")
    rejected = store.transition(
        Transition(
            request.id,
            frozenset({State.PENDING}),
            State.REJECTED,
            actor="U_APP",
            action=Action.REJECT,
            now=T0,
            decided_by="U_APP",
            decision_note="not our customer",
        )
    )
    assert rejected is not None and rejected.decision_note == "not our customer"
    assert store.audit_log(request.id)[-1].from_state is State.PENDING

    other = store.create(make_request(), actor="U_REQ")
    approve(store, other.id)
    store.transition(
        Transition(
            other.id,
            EXECUTING,
            State.UNKNOWN,
            actor="U_APP",
            action=Action.PROVIDER_ERROR,
            item=0,
            now=T0,
        )
    )
    retried = store.transition(
        Transition(
            other.id,
            frozenset({State.UNKNOWN}),
            State.EXECUTING,
            actor="U_APP2",
            action=Action.RETRY,
            item=0,
            now=T0,
            decided_by="U_APP2",
        )
    )
    assert retried is not None and retried.decided_by == "U_APP2"
    assert store.audit_log(other.id)[-1].from_state is State.UNKNOWN


def test_transition_from_wrong_state_returns_none_and_appends_nothing(
    store: BaseSQLStore,
) -> None:
    """A request not in from_states is left alone: None, same row, no audit entry."""
    request = store.create(make_request(), actor="U_REQ")
    approve(store, request.id)
    before = store.get(request.id)
    entries = store.audit_log(request.id)
    assert approve(store, request.id, actor="U_LATE") is None
    assert (
        store.transition(
            Transition(
                request.id, PENDING, State.REJECTED, actor="U_X", action=Action.REJECT, now=T0
            )
        )
        is None
    )
    assert store.get(request.id) == before
    assert store.audit_log(request.id) == entries


def test_transition_of_unknown_request_returns_none(store: BaseSQLStore) -> None:
    """An id that does not exist (buttons carry untrusted ids) gives None, writes nothing."""
    assert approve(store, "does-not-exist") is None
    assert store.audit_log("does-not-exist") == []


@pytest.mark.parametrize(
    ("from_states", "to_state"),
    [
        (frozenset({State.PENDING}), State.SUCCEEDED),
        (frozenset({State.EXECUTING}), State.PENDING),
        (frozenset({State.SUCCEEDED}), State.EXECUTING),
        (frozenset({State.PENDING, State.UNKNOWN}), State.REJECTED),
        (frozenset(), State.EXECUTING),
    ],
)
def test_illegal_transition_raises_value_error_and_writes_nothing(
    store: BaseSQLStore, from_states: frozenset[State], to_state: State
) -> None:
    """A transition TRANSITIONS does not allow is a programming error: ValueError, no write."""
    request = store.create(make_request(), actor="U_REQ")
    with pytest.raises(ValueError):
        store.transition(
            Transition(
                request.id,
                from_states,
                to_state,
                actor="U",
                action=Action.PROVIDER_ERROR,
                item=0,
                now=T0,
            )
        )
    assert store.get(request.id) == request
    assert len(store.audit_log(request.id)) == 1


def test_transition_rejects_naive_now(store: BaseSQLStore) -> None:
    """`now` must be timezone-aware, like every timestamp the store keeps."""
    request = store.create(make_request(), actor="U_REQ")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.transition(
            Transition(
                request.id,
                PENDING,
                State.EXECUTING,
                actor="U",
                action=Action.APPROVE,
                item=0,
                now=datetime(2025, 3, 1),
            )
        )
    assert store.get(request.id) == request


def test_unexpired_only_refuses_an_expired_request(store: BaseSQLStore) -> None:
    """With unexpired_only, a request at or past expires_at is not claimed (matching
    VerificationRequest.is_expired), while one just before it is."""
    expired = store.create(make_request(ttl=timedelta(hours=1)), actor="U_REQ")
    at_expiry = expired.expires_at
    for now in (at_expiry, at_expiry + timedelta(days=3)):
        says(store, Action.APPROVE, Notice.SHOW)
        assert (
            store.transition(
                Transition(
                    expired.id,
                    PENDING,
                    State.EXECUTING,
                    actor="U",
                    action=Action.APPROVE,
                    item=0,
                    now=now,
                    unexpired_only=True,
                )
            )
            is None
        )
    assert store.get(expired.id) == expired
    assert len(store.audit_log(expired.id)) == 1
    assert store.outbox_entries(expired.id) == []

    fresh = store.create(make_request(email=unique_email(), ttl=timedelta(hours=1)), actor="U")
    claimed = store.transition(
        Transition(
            fresh.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action=Action.APPROVE,
            item=0,
            now=fresh.expires_at - timedelta(microseconds=1),
            unexpired_only=True,
        )
    )
    assert claimed is not None and claimed.state is State.EXECUTING
    # Without the flag an expired request can still be moved (the sweep marks it expired).
    swept = store.transition(
        Transition(
            expired.id,
            PENDING,
            State.EXPIRED,
            actor="sweeper",
            action=Action.EXPIRE,
            now=at_expiry + timedelta(days=3),
        )
    )
    assert swept is not None and swept.state is State.EXPIRED


# ---------------------------------------------------------------------------------------------
# Races on transition


def test_fifty_threads_racing_to_claim_exactly_one_wins(store: BaseSQLStore) -> None:
    """Of 50 threads released together to claim one request, exactly one gets it and exactly
    one executing audit entry is written."""
    request = store.create(make_request(), actor="U_REQ")
    n = 50
    barrier = threading.Barrier(n)
    results: list[VerificationRequest | None] = [None] * n
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = approve(store, request.id, actor=f"U{i}", decided_by=f"U{i}")
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread below
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    entries = [e for e in store.audit_log(request.id) if e.to_state is State.EXECUTING]
    assert len(entries) == 1
    assert entries[0].actor == winners[0].decided_by
    final = store.get(request.id)
    assert final is not None and final.decided_by == winners[0].decided_by


def _race_worker(
    url: str,
    request_ids: list[str],
    barrier: Any,
    worker: str,
    threads: int,
    results: Any,
) -> None:
    """Runs in a spawned process: `threads` threads each try to claim every request."""
    store = open_store(url, announce=Told())
    won: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        for rid in request_ids:
            try:
                barrier.wait(timeout=60)
                says(store, Action.APPROVE, Notice.SHOW)
                claimed = store.transition(
                    Transition(
                        rid,
                        PENDING,
                        State.EXECUTING,
                        actor=f"{worker}-{t}",
                        action=Action.APPROVE,
                        item=0,
                        now=datetime.now(UTC),
                        decided_by=f"{worker}-{t}",
                    )
                )
            except BaseException as e:  # noqa: BLE001 -- sent back to the test to report
                with lock:
                    errors.append(repr(e))
                barrier.abort()  # release every other thread now rather than at its timeout
                return
            if claimed is not None:
                with lock:
                    won.append(rid)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.close()
    results.put((worker, won, errors))


def test_two_processes_racing_on_one_database_exactly_one_wins_each_time(
    database_url: str,
) -> None:
    """Two processes (4 threads each) released together 40 times, once per request, on one
    database: every request is claimed exactly once, audited once, and queues its outbox
    entry once."""
    with open_store(database_url, announce=Told()) as store:
        ids = [store.create(make_request(email=unique_email()), actor="U").id for _ in range(40)]
    procs_n, threads_n = 2, 4
    barrier = multiprocessing.get_context("spawn").Barrier(procs_n * threads_n)
    outcomes = run_processes(
        _race_worker, [(database_url, ids, barrier, f"P{i}", threads_n) for i in range(procs_n)]
    )
    assert [errors for _, _, errors in outcomes] == [[], []]
    wins = Counter(rid for _, won, _ in outcomes for rid in won)
    assert wins == Counter(dict.fromkeys(ids, 1))
    # Both processes won some: they really raced (40 coin flips all landing one way is ~1e-12).
    assert all(won for _, won, _ in outcomes)
    with open_store(database_url, announce=Told()) as store:
        for rid in ids:
            entries = store.audit_log(rid)
            assert [e.action for e in entries] == ["create", "approve"]
            got = store.get(rid)
            assert got is not None and got.decided_by == entries[1].actor
            assert [e.kind for e in store.outbox_entries(rid)] == ["show"]


# ---------------------------------------------------------------------------------------------
# Guards and items


def test_updated_before_guards_a_transition(store: BaseSQLStore) -> None:
    """With updated_before, a transition wins only if the request last changed before that
    time: a sweep never takes a request that was claimed afresh since it was listed."""
    request = store.create(make_request(), actor="U")
    claimed_at = T0 + timedelta(minutes=5)
    store.transition(
        Transition(
            request.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action=Action.APPROVE,
            item=0,
            now=claimed_at,
        )
    )
    swept = store.transition(
        Transition(
            request.id,
            EXECUTING,
            State.UNKNOWN,
            actor="bot",
            action=Action.PROVIDER_ERROR,
            item=0,
            now=claimed_at + timedelta(hours=1),
            updated_before=claimed_at,
        )
    )
    assert swept is None
    assert (stored := store.get(request.id)) is not None and stored.state is State.EXECUTING
    swept = store.transition(
        Transition(
            request.id,
            EXECUTING,
            State.UNKNOWN,
            actor="bot",
            action=Action.PROVIDER_ERROR,
            item=0,
            now=claimed_at + timedelta(hours=1),
            updated_before=claimed_at + timedelta(seconds=1),
        )
    )
    assert swept is not None and swept.state is State.UNKNOWN


def test_a_request_of_several_items_holds_each_email_and_moves_by_its_items(
    store: BaseSQLStore,
) -> None:
    """A request may hold several items (emails): each is stored with its own state and holds
    its email against a second open request (one open request per email, across items); each
    item is claimed and answered under its own claim, and the request is in the state its
    items make of it; closing the request closes its waiting items and frees their emails."""
    both = VerificationRequest(
        id=new_request_id(),
        reason="INC-7",
        requester="U_REQ",
        state=State.PENDING,
        created_at=T0,
        expires_at=T0 + timedelta(days=1),
        updated_at=T0,
        items=(Item("a@x.example", "x.example"), Item("b@y.example", "y.example", position=1)),
    )
    created = store.create(both, actor="U_REQ")
    assert [(i.position, i.email, i.state) for i in created.items] == [
        (0, "a@x.example", State.PENDING),
        (1, "b@y.example", State.PENDING),
    ]
    assert store.audit_log(both.id)[0].details["emails"] == ["a@x.example", "b@y.example"]
    with pytest.raises(OpenRequestExists) as held:
        store.create(make_request(email="B@Y.example"), actor="U_OTHER")
    assert held.value.existing.id == both.id

    def execute(item: int, src: State, dst: State, action: Action, **kw: Any) -> Any:
        change = Transition(
            both.id, frozenset({src}), dst, actor="U_APP", action=action, now=T0, item=item, **kw
        )
        return store.transition(change)

    lease = T0 + timedelta(minutes=1)
    first = execute(
        0, State.PENDING, State.EXECUTING, Action.APPROVE, claim_id="c0", lease_until=lease
    )
    assert first.state is State.EXECUTING
    assert [i.state for i in first.items] == [State.EXECUTING, State.PENDING]
    assert first.items[0].claim_id == "c0" and first.items[1].claim_id is None
    execute(1, State.PENDING, State.EXECUTING, Action.APPROVE, claim_id="c1", lease_until=lease)
    # The fence is the item's own claim: item 1's claim cannot answer for item 0.
    cleared = Cleared(("x.example",), ("1",), "ok")
    assert (
        execute(
            0,
            State.EXECUTING,
            State.SUCCEEDED,
            Action.PROVIDER_SUCCESS,
            fence="c1",
            outcome=cleared,
        )
        is None
    )
    done = execute(
        0, State.EXECUTING, State.SUCCEEDED, Action.PROVIDER_SUCCESS, fence="c0", outcome=cleared
    )
    assert done.state is State.EXECUTING  # item 1 still runs
    assert done.items[0].outcome == cleared and done.items[1].outcome is None
    last = execute(1, State.EXECUTING, State.UNKNOWN, Action.PROVIDER_ERROR, fence="c1")
    assert last.state is State.UNKNOWN
    assert [e.to_state for e in store.audit_log(both.id)][-1] is State.UNKNOWN

    other = store.create(
        replace(
            both,
            id=new_request_id(),
            items=(Item("c@z.example", "z.example"), Item("d@z.example", "z.example", position=1)),
        ),
        actor="U_REQ",
    )
    rejected = store.transition(
        Transition(other.id, PENDING, State.REJECTED, actor="U_APP", action=Action.REJECT, now=T0)
    )
    assert rejected is not None
    assert [i.state for i in rejected.items] == [State.REJECTED, State.REJECTED]
    assert store.create(make_request(email="d@z.example"), actor="U_REQ").state is State.PENDING
