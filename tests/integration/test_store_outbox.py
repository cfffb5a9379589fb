"""The store's outbox, on every backend: entries queued in the change's transaction, strict
first in, first out per request and lane, claims with leases a stale owner cannot finish,
retries and burials, and claimers in two processes never sharing an entry."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from stores import EXECUTING, PENDING, T0, Told, approve, make_request, run_processes, says, told

from bot.domain.model import Action, State
from bot.domain.ports import Transition
from bot.slack.notices import Lane, Notice
from bot.store import BaseSQLStore, open_store
from bot.store.sql import MAX_ERROR_CHARS

# ---------------------------------------------------------------------------------------------
# The outbox


def test_create_and_transition_store_outbox_entries_in_order(store: BaseSQLStore) -> None:
    """create's and a winning transition's outbox kinds are queued in the order given, due at
    once (created_at / now), with no attempts yet."""
    says(store, Action.CREATE, Notice.POST_REQUEST, Notice.DM_POSTED)
    request = store.create(
        make_request(),
        actor="U",
    )
    later = T0 + timedelta(minutes=3)
    says(store, Action.REJECT, Notice.SHOW, Notice.DM_OUTCOME)
    assert store.transition(
        Transition(
            request.id,
            PENDING,
            State.REJECTED,
            actor="U",
            action=Action.REJECT,
            now=later,
        )
    )
    entries = store.outbox_entries(request.id)
    assert [e.kind for e in entries] == ["post_request", "dm_posted", "show", "dm_outcome"]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert [e.next_attempt_at for e in entries] == [T0, T0, later, later]
    assert [e.created_at for e in entries] == [T0, T0, later, later]
    assert {(e.request_id, e.attempts, e.last_error) for e in entries} == {(request.id, 0, None)}
    assert store.outbox_entries("another") == []
    assert store.outbox_entries() == entries


def test_a_losing_transition_stores_no_outbox_entries(store: BaseSQLStore) -> None:
    """A transition that loses (wrong state, unknown request, expired) queues nothing; an
    illegal one raises before writing anything."""
    request = store.create(make_request(), actor="U")
    says(store, Action.APPROVE, Notice.SHOW)
    approve(store, request.id)
    assert [e.kind for e in store.outbox_entries()] == ["show"]
    says(store, Action.APPROVE, Notice.SHOW, Notice.DM_OUTCOME)
    assert approve(store, request.id) is None
    says(store, Action.PROVIDER_ERROR, Notice.SHOW)
    assert (
        store.transition(
            Transition(
                "nope",
                PENDING,
                State.REJECTED,
                actor="U",
                action=Action.PROVIDER_ERROR,
                item=0,
                now=T0,
            )
        )
        is None
    )
    with pytest.raises(ValueError):
        says(store, Action.PROVIDER_ERROR, Notice.SHOW)
        store.transition(
            Transition(
                request.id,
                EXECUTING,
                State.PENDING,
                actor="U",
                action=Action.PROVIDER_ERROR,
                item=0,
                now=T0,
            )
        )
    assert [e.kind for e in store.outbox_entries()] == ["show"]


def test_fifty_threads_racing_a_transition_queue_its_outbox_entries_once(
    store: BaseSQLStore,
) -> None:
    """Of 50 threads racing to claim a request with an outbox entry, exactly one wins and the
    entry is queued exactly once."""
    request = store.create(make_request(), actor="U_REQ")
    barrier = threading.Barrier(50)
    wins: list[Any] = []
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            says(store, Action.APPROVE, Notice.SHOW)
            if approve(store, request.id, actor=f"U{i}") is not None:
                wins.append(i)
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread below
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(wins) == 1
    assert [e.kind for e in store.outbox_entries(request.id)] == ["show"]


def test_enqueue_appends_entries_and_refuses_unknown_requests(store: BaseSQLStore) -> None:
    """enqueue appends entries after what is queued, due at `now`; nothing for none;
    KeyError for a request that does not exist; ValueError for an entry without a kind."""
    says(store, Action.CREATE, Notice.POST_REQUEST)
    request = store.create(make_request(), actor="U")
    store.enqueue(request.id, told(Notice.SHOW, Notice.REPLY_RESULT), now=T0 + timedelta(seconds=5))
    store.enqueue(request.id, told(), now=T0)
    entries = store.outbox_entries(request.id)
    assert [e.kind for e in entries] == ["post_request", "show", "reply_result"]
    assert entries[1].next_attempt_at == T0 + timedelta(seconds=5)
    with pytest.raises(KeyError):
        store.enqueue("missing", told(Notice.POST_REQUEST), now=T0)
    with pytest.raises(ValueError):
        store.enqueue(request.id, [("", "channel")], now=T0)
    with pytest.raises(TypeError):
        store.enqueue(request.id, "show", now=T0)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        store.enqueue(request.id, told(Notice.POST_REQUEST), now=datetime(2025, 1, 1))
    assert len(store.outbox_entries()) == 3


def test_claim_returns_only_the_head_of_each_requests_queue(store: BaseSQLStore) -> None:
    """Strict FIFO per request: a claim returns each request's oldest undone entry (ordered by
    id, at most `limit`), never an entry behind an undone one, even when that one is not due
    or is leased; completing or burying the head makes the next one the head."""
    says(store, Action.CREATE, Notice.POST_REQUEST, Notice.SHOW, Notice.REPLY_RESULT)
    a = store.create(
        make_request(email="a@example.com"),
        actor="U",
    )
    says(store, Action.CREATE, Notice.POST_REQUEST, Notice.SHOW)
    b = store.create(
        make_request(email="b@example.com"),
        actor="U",
    )
    heads = store.claim_outbox(now=T0, owner="o1", lease_seconds=60)
    assert [(e.request_id, e.kind) for e in heads] == [
        (a.id, "post_request"),
        (b.id, "post_request"),
    ]
    # Leased heads block their queues: nothing else to claim.
    assert store.claim_outbox(now=T0, owner="o2", lease_seconds=60) == []
    a1, b1 = heads
    store.complete_outbox(a1.id, "o1", now=T0)
    [a2] = store.claim_outbox(now=T0, owner="o2", lease_seconds=60)
    assert a2.kind == "show"
    # A head that is retried later still blocks what follows it.
    store.retry_outbox(a2.id, "o2", error="slack down", next_attempt_at=T0 + timedelta(minutes=1))
    assert store.claim_outbox(now=T0 + timedelta(seconds=59), owner="o2", lease_seconds=60) == []
    [again] = store.claim_outbox(
        now=T0 + timedelta(minutes=1), owner="o2", lease_seconds=60, request_id=a.id
    )
    assert (again.id, again.kind, again.attempts, again.last_error) == (
        a2.id,
        "show",
        1,
        "slack down",
    )
    # A buried head counts as done: the next one is the head. (o1's lease has run out, but
    # nobody took it over, so o1 still holds it.)
    store.bury_outbox(b1.id, "o1", error="channel_not_found", now=T0 + timedelta(minutes=1))
    store.complete_outbox(again.id, "o2", now=T0)
    later = T0 + timedelta(minutes=2)
    heads = store.claim_outbox(now=later, owner="o3", lease_seconds=60, limit=1)
    assert [e.kind for e in heads] == ["reply_result"]
    [b2] = store.claim_outbox(now=later, owner="o3", lease_seconds=60)
    assert b2.kind == "show"
    store.complete_outbox(b2.id, "o3", now=later)
    assert [e.kind for e in store.outbox_entries()] == [
        "reply_result"
    ]  # leased by o3, not completed


def test_claim_for_one_request_and_not_yet_due_entries(store: BaseSQLStore) -> None:
    """With request_id only that request's head is claimed; an entry due later is not
    returned before its time; a limit below 1 or a non-positive lease is refused."""
    says(store, Action.CREATE, Notice.POST_REQUEST)
    a = store.create(make_request(email="a@example.com"), actor="U")
    says(store, Action.CREATE)
    b = store.create(make_request(email="b@example.com"), actor="U")
    store.enqueue(b.id, told(Notice.POST_REQUEST), now=T0 + timedelta(hours=1))
    assert store.claim_outbox(now=T0, owner="o", lease_seconds=5, request_id=b.id) == []
    assert store.claim_outbox(now=T0, owner="o", lease_seconds=5, request_id="zz") == []
    [b1] = store.claim_outbox(
        now=T0 + timedelta(hours=1), owner="o", lease_seconds=5, request_id=b.id
    )
    assert b1.kind == "post_request"
    [a1] = store.claim_outbox(now=T0, owner="o", lease_seconds=5, request_id=a.id)
    assert a1.kind == "post_request"
    with pytest.raises(ValueError):
        store.claim_outbox(now=T0, owner="o", lease_seconds=5, limit=0)
    with pytest.raises(ValueError):
        store.claim_outbox(now=T0, owner="o", lease_seconds=0)


def test_leases_expire_and_a_stale_owner_cannot_finish_what_it_lost(
    store: BaseSQLStore,
) -> None:
    """A leased entry is nobody else's until the lease ends; then another owner may take it
    over, and the first owner's complete, retry or bury is ignored; the new owner's counts."""
    says(store, Action.CREATE, Notice.SHOW, Notice.REPLY_RESULT)
    request = store.create(make_request(), actor="U")
    [first] = store.claim_outbox(now=T0, owner="old", lease_seconds=30)
    assert store.claim_outbox(now=T0 + timedelta(seconds=29), owner="new", lease_seconds=30) == []
    takeover = T0 + timedelta(seconds=30)
    [taken] = store.claim_outbox(now=takeover, owner="new", lease_seconds=30)
    assert taken.id == first.id
    store.complete_outbox(first.id, "old", now=takeover)
    store.retry_outbox(first.id, "old", error="x", next_attempt_at=takeover)
    store.bury_outbox(first.id, "old", error="x", now=takeover)
    [still] = store.outbox_entries(request.id)[:1]
    assert (still.id, still.attempts, still.last_error) == (first.id, 0, None)
    assert store.claim_outbox(now=takeover, owner="old", lease_seconds=30) == []
    store.complete_outbox(taken.id, "new", now=takeover)
    assert [e.kind for e in store.outbox_entries(request.id)] == ["reply_result"]
    # Completing twice, or after a retry released the lease, does nothing.
    [dm] = store.claim_outbox(now=takeover, owner="new", lease_seconds=30)
    store.retry_outbox(dm.id, "new", error="e", next_attempt_at=takeover)
    store.complete_outbox(dm.id, "new", now=takeover)
    assert [(e.kind, e.attempts) for e in store.outbox_entries(request.id)] == [("reply_result", 1)]


def test_retry_and_bury_record_attempts_and_truncated_errors(store: BaseSQLStore) -> None:
    """retry counts the attempt and keeps the error (at most MAX_ERROR_CHARS); bury counts it,
    keeps the error and drops the entry from the queue (it is dead, not delivered)."""
    says(store, Action.CREATE, Notice.SHOW, Notice.REPLY_RESULT)
    request = store.create(make_request(), actor="U")
    [show] = store.claim_outbox(now=T0, owner="o", lease_seconds=30)
    long_error = "ratelimited " + "x" * 2000
    store.retry_outbox(show.id, "o", error=long_error, next_attempt_at=T0 + timedelta(seconds=2))
    [queued, _] = store.outbox_entries(request.id)
    assert queued.attempts == 1
    assert queued.last_error is not None and len(queued.last_error) == MAX_ERROR_CHARS
    assert queued.last_error.startswith("ratelimited xxx") and queued.last_error.endswith("…")
    assert queued.next_attempt_at == T0 + timedelta(seconds=2)
    [show] = store.claim_outbox(now=T0 + timedelta(seconds=2), owner="o", lease_seconds=30)
    assert show.attempts == 1
    store.bury_outbox(show.id, "o", error="channel_not_found", now=T0)
    assert [e.kind for e in store.outbox_entries(request.id)] == ["reply_result"]
    with pytest.raises(ValueError, match="timezone-aware"):
        store.retry_outbox(show.id, "o", error="e", next_attempt_at=datetime(2025, 1, 1))


def _claim_worker(url: str, barrier: Any, worker: str, threads: int, results: Any) -> None:
    """Runs in a spawned process: threads claim and complete until nothing is left."""
    store = open_store(url, announce=Told())
    got: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        owner = f"{worker}-{t}"
        try:
            barrier.wait(timeout=60)
            idle = 0
            while idle < 3:
                now = datetime.now(UTC)
                entries = store.claim_outbox(now=now, owner=owner, lease_seconds=600, limit=3)
                idle = 0 if entries else idle + 1
                for entry in entries:
                    with lock:
                        got.append(entry.id)
                    store.complete_outbox(entry.id, owner, now=now)
        except BaseException as e:  # noqa: BLE001 -- sent back to the test to report
            with lock:
                errors.append(repr(e))

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.close()
    results.put((worker, got, errors))


def test_concurrent_claimers_in_two_processes_never_get_the_same_entry(
    database_url: str,
) -> None:
    """Two processes (3 claiming threads each) drain 30 requests' queues of 3 entries
    concurrently: every entry is claimed exactly once, and all end delivered."""
    with open_store(database_url, announce=Told()) as store:
        for i in range(30):
            says(store, Action.CREATE, Notice.POST_REQUEST, Notice.SHOW, Notice.REPLY_RESULT)
            store.create(
                make_request(email=f"q{i}@example.com"),
                actor="U",
            )
        expected = sorted(e.id for e in store.outbox_entries())
    procs_n, threads_n = 2, 3
    barrier = multiprocessing.get_context("spawn").Barrier(procs_n * threads_n)
    outcomes = run_processes(
        _claim_worker,
        [(database_url, barrier, f"P{i}", threads_n) for i in range(procs_n)],
    )
    assert [errors for *_, errors in outcomes] == [[], []]
    claimed = [i for _, got, _ in outcomes for i in got]
    assert sorted(claimed) == expected  # each once: no entry was handed out twice
    with open_store(database_url, announce=Told()) as store:
        assert store.outbox_entries() == []


def test_direct_messages_have_their_own_lane(store: BaseSQLStore) -> None:
    """DM notices queue in a lane of their own, stored with each entry: a DM waiting to be
    retried holds up no channel update, and each lane stays first in, first out."""
    says(store, Action.CREATE, Notice.POST_REQUEST, Notice.DM_POSTED)
    request = store.create(
        make_request(),
        actor="U",
    )
    store.enqueue(request.id, told(Notice.SHOW, Notice.DM_OUTCOME), now=T0)
    heads = store.claim_outbox(now=T0, owner="o", lease_seconds=30, request_id=request.id, limit=5)
    assert sorted(e.kind for e in heads) == ["dm_posted", "post_request"]
    assert {e.kind: e.queue for e in heads} == {"dm_posted": Lane.DM, "post_request": Lane.CHANNEL}
    by_kind = {e.kind: e for e in heads}
    store.retry_outbox(
        by_kind["dm_posted"].id, "o", error="x", next_attempt_at=T0 + timedelta(hours=1)
    )
    store.complete_outbox(by_kind["post_request"].id, "o", now=T0)
    [head] = store.claim_outbox(
        now=T0, owner="o2", lease_seconds=30, request_id=request.id, limit=5
    )
    assert head.kind == "show"  # the channel goes on; dm_outcome still waits behind dm_posted
