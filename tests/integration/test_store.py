"""The durable store, on every backend (SQLite, and PostgreSQL when a server is configured: see
tests/backends.py): round trips, the compare-and-set transition, one open request per email,
the outbox (FIFO per request, leases), races between threads and processes, durability, the
schema and its migration, URLs and errors."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import doubles
import pytest
from backends import PostgresServer, sqlite_url, url_with_database
from doubles import Delivery, Roles, StubProvider

from bot.domain.model import (
    OPEN_STATES,
    Action,
    Item,
    OpenRequestExists,
    State,
    VerificationRequest,
    new_request_id,
)
from bot.domain.outcomes import Cleared, NotPosted
from bot.domain.ports import Transition
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack.notices import Lane, Notice
from bot.store import (
    BaseSQLStore,
    SQLiteStore,
    StoreConfigError,
    StoreError,
    open_store,
    sqlite_path_from_url,
)
from bot.store.schema import SCHEMA_VERSION
from bot.store.sql import MAX_ERROR_CHARS

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
PENDING = frozenset({State.PENDING})
EXECUTING = frozenset({State.EXECUTING})
ROOT = Path(__file__).resolve().parents[2]


def make_request(
    *,
    email: str = "alice@example.com",
    reason: str = "ticket #42",
    requester: str = "U_REQ",
    created_at: datetime = T0,
    ttl: timedelta = timedelta(days=1),
    request_id: str | None = None,
) -> VerificationRequest:
    """The factory's pending request, with this module's own reason, requester and clock."""
    changes = {"id": request_id} if request_id else {}
    return doubles.make_request(
        email=email, reason=reason, requester=requester, created_at=created_at, ttl=ttl, **changes
    )


def unique_email() -> str:
    return f"user-{new_request_id()}@example.com"


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "postgres"


def told(*notices: Notice) -> list[tuple[str, str]]:
    """Outbox entries for ``notices``, each in its lane (as the edge's table queues them)."""
    return [(n.value, n.lane.value) for n in notices]


class Told:
    """The edge's table (bot/slack/notices.py) as a store test scripts it: what a change of
    each action queues, nothing unless said. The store's promise is to queue exactly that, in
    the change's transaction; which notices an action really gets is bot/slack's."""

    def __init__(self) -> None:
        self.table: dict[Action, list[tuple[str, str]]] = {}

    def says(self, action: Action, *notices: Notice) -> None:
        self.table[action] = told(*notices)

    def __call__(self, action: Action) -> list[tuple[str, str]]:
        return self.table.get(action, [])


def says(store: BaseSQLStore, action: Action, *notices: Notice) -> None:
    """Script what a change of ``action`` queues in ``store`` (opened with a Told)."""
    assert isinstance(store.announce, Told)
    store.announce.says(action, *notices)


@pytest.fixture
def store(database_url: str) -> Iterator[BaseSQLStore]:
    """The store under test, on each backend."""
    s = open_store(database_url, announce=Told())
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    """For what only SQLite has (files, PRAGMAs, its write lock)."""
    s = SQLiteStore(db_path, announce=Told())
    try:
        yield s
    finally:
        s.close()


def approve(store: BaseSQLStore, request_id: str, actor: str = "U_APP", **kw: Any) -> Any:
    return store.transition(
        Transition(
            request_id,
            PENDING,
            State.EXECUTING,
            actor=actor,
            action=Action.APPROVE,
            item=0,
            now=T0,
            **kw,
        )
    )


def run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``target(*a, results)`` in one spawned process per ``a``; what each put on the
    results queue, in the order they finished."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, results)) for a in args]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=90) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        for p in procs:
            p.close()
        results.close()
        results.join_thread()
    return outcomes


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize(
    "reason",
    [
        "'; DROP TABLE requests; --",
        "He said \"hi\" and 'bye' \\ back",
        "Ünïcödé ✓ 漢字 עברית 🙂👩🏽‍💻 \u200b zero-width, tab\tand\nnewline",
        "Robert'); DELETE FROM audit_log WHERE ('1'='1",
        "100% sure? %s %(x)s {0} ?",
    ],
)
def test_create_get_round_trip_keeps_untrusted_text_exactly(
    store: BaseSQLStore, reason: str
) -> None:
    """Whatever a person typed comes back byte for byte, and SQL (or a placeholder) in it is
    never executed."""
    request = make_request(email="o'brien+ünï@bücher.example", reason=reason, requester="U'1")
    created = store.create(request, actor="U'1")
    assert created == request
    assert store.get(request.id) == request
    # The tables are still there and hold exactly this one request.
    assert store.list_requests() == [request]
    assert len(store.audit_log(request.id)) == 1


def test_get_returns_aware_utc_datetimes_and_none_for_unknown_id(store: BaseSQLStore) -> None:
    """Timestamps come back timezone-aware in UTC, whatever zone they went in with; an
    unknown (or hostile) id is simply not found."""
    cet = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    request = make_request(created_at=cet)
    got = store.create(request, actor="U_REQ")
    assert got.created_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.expires_at.tzinfo is not None and got.updated_at.tzinfo is not None
    assert store.get("nope") is None
    assert store.get("' OR '1'='1") is None
    assert store.get("\ud800") is None
    assert store.get("a\x00b") is None


def test_create_appends_create_audit_entry_in_same_transaction(store: BaseSQLStore) -> None:
    """create writes one audit entry: action "create", None -> pending, by the actor, at
    created_at, with the email, domain and reason as details."""
    request = make_request(reason="ticket 🙂")
    store.create(request, actor="U_REQ")
    [entry] = store.audit_log(request.id)
    assert entry.request_id == request.id
    assert entry.action == "create"
    assert entry.actor == "U_REQ"
    assert entry.from_state is None
    assert entry.to_state is State.PENDING
    assert entry.at == request.created_at
    assert entry.details == {
        "email": "alice@example.com",
        "domain": "example.com",
        "reason": "ticket 🙂",
    }


def test_create_refuses_a_request_that_is_not_pending(store: BaseSQLStore) -> None:
    """Only pending requests may be created; anything else is a programming error."""
    request = make_request()
    executing = replace(request, state=State.EXECUTING)
    with pytest.raises(ValueError, match="pending"):
        store.create(executing, actor="U_REQ")
    assert store.get(request.id) is None


def test_create_refuses_a_duplicate_id_and_writes_nothing(store: BaseSQLStore) -> None:
    """A second create with the same id (even for another email) raises StoreError and leaves
    one audit entry."""
    request = make_request()
    store.create(request, actor="U_REQ")
    with pytest.raises(StoreError, match="already exists"):
        store.create(
            make_request(request_id=request.id, email="other@example.com", reason="other"),
            actor="U_X",
        )
    assert store.get(request.id) == request
    assert len(store.audit_log(request.id)) == 1
    assert store.find_open("other@example.com") is None


def test_create_rejects_naive_datetimes(store: BaseSQLStore) -> None:
    """A naive datetime would be ambiguous in storage: refused as a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.create(make_request(created_at=datetime(2025, 1, 1)), actor="U_REQ")


def test_lone_surrogates_are_stored_as_replacement_characters(store: BaseSQLStore) -> None:
    """JSON from Slack can carry a lone surrogate, which is not encodable text: it is stored as
    U+FFFD instead of failing the request, in columns and JSON alike."""
    request = make_request(reason="bad \ud800 half")
    created = store.create(request, actor="U_REQ")
    assert created.reason == "bad \ufffd half"
    [entry] = store.audit_log(request.id)
    assert entry.details["reason"] == "bad \ufffd half"


def test_nul_characters_are_stored_as_replacement_characters(store: BaseSQLStore) -> None:
    """PostgreSQL text cannot hold NUL: in a column it is stored as U+FFFD (on every backend,
    so they behave alike), while inside JSON it is escaped and comes back exactly."""
    request = make_request(email="nul\x00@example.com", reason="a\x00b")
    says(store, Action.CREATE, Notice.POST_REQUEST)
    created = store.create(request, actor="U\x00REQ")
    assert created.reason == "a\ufffdb"
    assert created.email == "nul\ufffd@example.com"
    assert store.find_open("NUL\x00@example.com") == created
    [entry] = store.audit_log(request.id)
    assert entry.actor == "U\ufffdREQ"
    assert entry.details["reason"] == "a\x00b"  # JSON keeps it, escaped as \u0000
    store.set_message(request.id, "C\x001", "1.0\x00")
    done = approve(
        store, request.id, actor="U\x00", details={"x": "\x00"}, outcome=NotPosted("m\x00")
    )
    assert done is not None and done.outcome == NotPosted("m\x00")
    assert (done.channel, done.message_ts) == ("C\ufffd1", "1.0\ufffd")
    assert store.audit_log(request.id)[-1].details == {
        "type": "not_posted",
        "slack_error": "m\x00",
        "x": "\x00",
    }
    [queued] = store.outbox_entries(request.id)
    assert queued.kind == "post_request"
    [claimed] = store.claim_outbox(now=T0, owner="o\x00", lease_seconds=60)
    store.retry_outbox(claimed.id, "o\x00", error="bad\x00error", next_attempt_at=T0)
    assert store.outbox_entries(request.id)[0].last_error == "bad\ufffderror"


def test_set_message_records_channel_and_ts(store: BaseSQLStore) -> None:
    """set_message stores where the request was posted, without touching state or audit;
    an unknown id raises KeyError."""
    request = store.create(make_request(), actor="U_REQ")
    store.set_message(request.id, "C123", "1712345678.000100")
    got = store.get(request.id)
    assert got is not None
    assert (got.channel, got.message_ts) == ("C123", "1712345678.000100")
    assert got.state is State.PENDING and got.updated_at == request.updated_at
    assert len(store.audit_log(request.id)) == 1
    with pytest.raises(KeyError):
        store.set_message("missing", "C1", "1.0")


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
# One open request per email


@pytest.mark.parametrize("state", [State.PENDING, State.EXECUTING, State.UNKNOWN])
def test_second_open_request_for_same_email_is_refused_case_insensitively(
    store: BaseSQLStore, state: State
) -> None:
    """While a request for an email is pending, executing or unknown, creating another for the
    same address, in any letter case, raises OpenRequestExists carrying the open one, and
    writes nothing at all (no request, audit entry or outbox entry)."""
    first = store.create(make_request(email="Alice@Example.com"), actor="U_REQ")
    if state is not State.PENDING:
        approve(store, first.id)
    if state is State.UNKNOWN:
        store.transition(
            Transition(
                first.id,
                EXECUTING,
                State.UNKNOWN,
                actor="bot",
                action=Action.PROVIDER_ERROR,
                item=0,
                now=T0,
            )
        )
    for email in ("alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.com"):
        second = make_request(email=email)
        with pytest.raises(OpenRequestExists) as info:
            says(store, Action.CREATE, Notice.POST_REQUEST)
            store.create(second, actor="U_OTHER")
        assert info.value.existing.id == first.id
        assert info.value.existing.state is state
        assert store.get(second.id) is None
        assert store.audit_log(second.id) == []
    assert [e.request_id for e in store.outbox_entries()] == []
    assert [r.id for r in store.list_requests()] == [first.id]
    # Another address is not affected.
    assert store.create(make_request(email="alice2@example.com"), actor="U").state is State.PENDING


@pytest.mark.parametrize(
    ("to_state", "via"),
    [
        (State.REJECTED, None),
        (State.EXPIRED, None),
        (State.SUCCEEDED, State.EXECUTING),
        (State.FAILED, State.EXECUTING),
    ],
)
def test_a_new_request_is_allowed_once_the_open_one_is_done(
    store: BaseSQLStore, to_state: State, via: State | None
) -> None:
    """Once the open request is succeeded, failed, rejected or expired, a new request for the
    same email (in another case, even) is created, and find_open finds the new one."""
    first = store.create(make_request(email="bob@example.com"), actor="U_REQ")
    src = PENDING
    if via is not None:
        approve(store, first.id)
        src = EXECUTING
    assert (
        store.transition(
            Transition(
                first.id, src, to_state, actor="U", action=Action.PROVIDER_ERROR, item=0, now=T0
            )
        )
        is not None
    )
    second = store.create(make_request(email="BOB@example.com"), actor="U_REQ")
    assert second.state is State.PENDING
    found = store.find_open("bob@EXAMPLE.com")
    assert found is not None and found.id == second.id


def test_find_open_returns_the_open_request_for_that_email(store: BaseSQLStore) -> None:
    """find_open ignores other emails and final states, compares case-insensitively, and
    treats hostile text as data."""
    assert store.find_open("alice@example.com") is None
    old = store.create(make_request(created_at=T0), actor="U")
    store.transition(
        Transition(old.id, PENDING, State.REJECTED, actor="U", action=Action.REJECT, now=T0)
    )
    store.create(make_request(email="bob@example.com"), actor="U")
    assert store.find_open("alice@example.com") is None

    current = store.create(make_request(created_at=T0 + timedelta(hours=1)), actor="U")
    approve(store, current.id)
    assert (found := store.find_open("alice@example.com")) is not None
    assert found.id == current.id and found.state is State.EXECUTING
    assert store.find_open("ALICE@example.COM") == found
    assert store.find_open("' OR 1=1 --") is None
    assert store.find_open("%") is None


def _create_race_worker(
    url: str, emails: list[str], barrier: Any, worker: str, threads: int, results: Any
) -> None:
    """Runs in a spawned process: `threads` threads each try to create a request per email."""
    store = open_store(url, announce=Told())
    won: list[str] = []
    refused: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        for i, email in enumerate(emails):
            # Every racer spells the address its own way: one open request per email, any case.
            spelled = email.upper() if (t + i) % 2 else email
            try:
                barrier.wait(timeout=60)
                store.create(make_request(email=spelled), actor=f"{worker}-{t}")
            except OpenRequestExists as e:
                with lock:
                    refused.append(e.existing.email.lower())
                continue
            except BaseException as e:  # noqa: BLE001 -- sent back to the test to report
                with lock:
                    errors.append(repr(e))
                barrier.abort()
                return
            with lock:
                won.append(email)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.close()
    results.put((worker, won, refused, errors))


def test_two_processes_creating_requests_for_the_same_emails_open_exactly_one_each(
    database_url: str,
) -> None:
    """Two processes (3 threads each) released together 15 times, once per email, each
    spelling it in its own case: exactly one request per email is created, every other
    attempt gets OpenRequestExists, and the store holds one open request per email."""
    open_store(database_url, announce=Told()).close()  # the schema exists before the race starts
    emails = [f"race-{i}@example.com" for i in range(15)]
    procs_n, threads_n = 2, 3
    barrier = multiprocessing.get_context("spawn").Barrier(procs_n * threads_n)
    outcomes = run_processes(
        _create_race_worker,
        [(database_url, emails, barrier, f"P{i}", threads_n) for i in range(procs_n)],
    )
    assert [errors for *_, errors in outcomes] == [[], []]
    wins = Counter(email for _, won, _, _ in outcomes for email in won)
    assert wins == Counter(dict.fromkeys(emails, 1))
    refusals = Counter(email for _, _, refused, _ in outcomes for email in refused)
    assert refusals == Counter(dict.fromkeys(emails, procs_n * threads_n - 1))
    with open_store(database_url, announce=Told()) as store:
        requests = store.list_requests()
        assert sorted(r.email.lower() for r in requests) == sorted(emails)
        for email in emails:
            found = store.find_open(email)
            assert found is not None and len(store.audit_log(found.id)) == 1


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
# Durability


def test_data_survives_close_and_reopen(database_url: str) -> None:
    """Requests, their states, audit logs and outbox entries are all there after close and
    reopen."""
    with open_store(database_url, announce=Told()) as store:
        says(store, Action.CREATE, Notice.POST_REQUEST)
        request = store.create(
            make_request(reason="keep me ✓"),
            actor="U_REQ",
        )
        store.set_message(request.id, "C1", "1.2")
        says(store, Action.APPROVE, Notice.SHOW)
        approve(store, request.id, decided_by="U_APP")
        before, log = store.get(request.id), store.audit_log(request.id)
        queued = store.outbox_entries()
    with open_store(database_url, announce=Told()) as store:
        assert store.get(request.id) == before
        assert store.audit_log(request.id) == log
        assert store.outbox_entries() == queued
        assert before is not None and before.state is State.EXECUTING


_KILL_CHILD = """
import sys
from datetime import UTC, datetime, timedelta, timezone
from bot.domain.model import Action, State, one_item_request
from bot.domain.ports import Transition
from bot.store import open_store

# The approval below queues one update of the message, nothing else is queued.
store = open_store(sys.argv[1], announce=lambda a: [("show", "channel")] if a == "approve" else [])
now = datetime.now(UTC)
store.create(
    one_item_request(
        id="killed-1", email="k@example.com", domain="example.com", reason="survive",
        requester="U_REQ", state=State.PENDING, created_at=now,
        expires_at=now + timedelta(days=1), updated_at=now,
    ),
    actor="U_REQ",
)
store.transition(Transition(
    "killed-1", frozenset({State.PENDING}), State.EXECUTING,
    actor="U_APP", action=Action.APPROVE, item=0, now=now, decided_by="U_APP",
))
print("ready", flush=True)
sys.stdin.read()  # wait here, connection open, until killed
"""


def test_committed_request_survives_kill_9(database_url: str) -> None:
    """A request created and claimed in a process that is then SIGKILLed is in the database,
    with its audit log and outbox entry, when it is reopened."""
    with subprocess.Popen(  # noqa: S603 -- this interpreter on a constant snippet
        [sys.executable, "-c", _KILL_CHILD, database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with open_store(database_url, announce=Told()) as store:
        got = store.get("killed-1")
        assert got is not None
        assert got.state is State.EXECUTING and got.decided_by == "U_APP"
        assert [e.action for e in store.audit_log("killed-1")] == ["create", "approve"]
        assert [e.kind for e in store.outbox_entries("killed-1")] == ["show"]


# ---------------------------------------------------------------------------------------------
# The schema


def test_sqlite_settings_wal_full_sync_busy_timeout_and_schema(
    sqlite_store: SQLiteStore,
) -> None:
    """The file is in WAL mode with a schema_version row; the connection syncs FULL, waits
    5 s for a lock, and the documented indexes exist (the open-email one unique)."""
    conn = sqlite_store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 9
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {
        "items_open_email",
        "items_email_key",
        "items_domain",
        "requests_state_expires",
        "requests_created",
        "requests_requester",
        "audit_log_request",
        "outbox_undone",
        "outbox_due",
    } <= indexes
    unique = {r[1]: r[2] for r in conn.execute("PRAGMA index_list(items)")}
    assert unique["items_open_email"] == 1


def test_postgres_schema_types_and_indexes(postgres_url: str) -> None:
    """On PostgreSQL the timestamps are timestamptz, the outbox ids are identities, and the
    open-email index is unique and partial."""
    with open_store(postgres_url, announce=Told()):
        pass
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        types: dict[str, str] = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type "
                "FROM information_schema.columns WHERE table_schema = 'public'"
            ).fetchall()
        )
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'items_open_email'"
        ).fetchone()
    assert types["requests.created_at"] == "timestamp with time zone"
    assert types["outbox.lease_until"] == "timestamp with time zone"
    assert types["outbox.id"] == "bigint"
    assert index is not None and index[0].startswith("CREATE UNIQUE INDEX")
    assert "WHERE" in index[0] and "pending" in index[0]


def test_stores_opening_a_new_database_together_create_the_schema_once(
    database_url: str,
) -> None:
    """Six stores opened at the same moment on a new, empty database (replicas starting
    together) all start, and the schema is there once: SQLite's write lock or PostgreSQL's
    advisory lock makes them take turns."""
    barrier = threading.Barrier(6)
    stores: list[BaseSQLStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait(timeout=30)
            stores.append(open_store(database_url, announce=Told()))
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        assert len(stores) == 6
        request = stores[0].create(make_request(), actor="U")
        assert all(s.get(request.id) == request for s in stores)
    finally:
        for s in stores:
            s.close()


def _set_schema_version(url: str, version: int, postgres_server: Any) -> None:
    if backend_of(url) == "sqlite":
        conn = sqlite3.connect(sqlite_path_from_url(url))
        try:
            with conn:
                conn.execute("UPDATE schema_version SET version = ?", (version,))
        finally:
            conn.close()
    else:
        postgres_server.execute(url, "UPDATE schema_version SET version = %s", (version,))


def test_reopening_a_newer_schema_refuses_with_store_error(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    """A database written by a newer bot is not silently used by an older one."""
    open_store(database_url, announce=Told()).close()
    server = request.getfixturevalue("postgres_server") if "postgres" in database_url else None
    _set_schema_version(database_url, SCHEMA_VERSION + 1, server)
    with pytest.raises(StoreError, match="newer"):
        open_store(database_url, announce=Told())


def test_a_file_that_is_not_a_database_gives_store_error_naming_it(tmp_path: Path) -> None:
    """Pointing DATABASE_URL at some other file is explained, naming the path."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(StoreError, match="notes.txt"):
        SQLiteStore(path)


# The schema as the first release (version 2) created it, for either backend: the outbox had no
# lane and no audit_id yet.
_V2_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "INSERT INTO schema_version (version) VALUES (2)",
    """CREATE TABLE requests (
        id TEXT PRIMARY KEY, email TEXT NOT NULL, domain TEXT NOT NULL, reason TEXT NOT NULL,
        requester TEXT NOT NULL, state TEXT NOT NULL, created_at {time} NOT NULL,
        expires_at {time} NOT NULL, updated_at {time} NOT NULL, channel TEXT, message_ts TEXT,
        decided_by TEXT, decision_note TEXT, outcome TEXT, email_key TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX requests_open_email ON requests (email_key) "
    "WHERE state IN ('executing', 'pending', 'unknown')",
    """CREATE TABLE audit_log (
        id {serial}, request_id TEXT NOT NULL REFERENCES requests (id), at {time} NOT NULL,
        actor TEXT NOT NULL, action TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{{}}')""",
    """CREATE TABLE outbox (
        id {serial}, request_id TEXT NOT NULL REFERENCES requests (id), kind TEXT NOT NULL,
        created_at {time} NOT NULL, next_attempt_at {time} NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, lease_owner TEXT,
        lease_until {time}, delivered_at {time}, dead_at {time})""",
)


def _write_v2(url: str, postgres_server: Any) -> None:
    """A version-2 database holding one rejected request whose SHOW and DM_OUTCOME were still
    queued (written, as version 2 did, with the same time as the change's audit entry)."""
    created = T0.isoformat(timespec="microseconds")
    later = (T0 + timedelta(minutes=1)).isoformat(timespec="microseconds")
    expires = (T0 + timedelta(days=1)).isoformat(timespec="microseconds")
    rows = [
        (
            "INSERT INTO requests VALUES ('old-1', 'Carol@Example.COM', 'example.com', 'r', "
            "'U', 'rejected', ?, ?, ?, 'C1', '1.1', 'U_APP', 'no', NULL, 'carol@example.com')",
            (created, expires, later),
        ),
        (
            "INSERT INTO audit_log (request_id, at, actor, action, from_state, to_state, details) "
            "VALUES ('old-1', ?, 'U', 'create', NULL, 'pending', '{}')",
            (created,),
        ),
        (
            "INSERT INTO audit_log (request_id, at, actor, action, from_state, to_state, details) "
            "VALUES ('old-1', ?, 'U_APP', 'reject', 'pending', 'rejected', '{\"note\": \"no\"}')",
            (later,),
        ),
        (
            "INSERT INTO outbox (request_id, kind, created_at, next_attempt_at) "
            "VALUES ('old-1', 'show', ?, ?), ('old-1', 'dm_outcome', ?, ?)",
            (later, later, later, later),
        ),
    ]
    if backend_of(url) == "sqlite":
        ddl = [
            s.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", time="TEXT") for s in _V2_SCHEMA
        ]
        conn = sqlite3.connect(sqlite_path_from_url(url))
        try:
            with conn:
                for statement in ddl:
                    conn.execute(statement)
                for statement, params in rows:
                    conn.execute(statement, params)
        finally:
            conn.close()
    else:
        serial = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        for statement in _V2_SCHEMA:
            postgres_server.execute(url, statement.format(serial=serial, time="TIMESTAMPTZ"))
        for statement, params in rows:
            postgres_server.execute(url, statement.replace("?", "%s"), params)


def test_a_version_2_database_is_brought_up_to_date_in_place(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    """The first released schema (2) is migrated at start, on either backend, without losing
    or changing a row: each queued entry gets its lane (DMs apart) and the audit entry of the
    change that queued it, so a late delivery still describes that change."""
    server = request.getfixturevalue("postgres_server") if "postgres" in database_url else None
    _write_v2(database_url, server)
    with open_store(database_url, announce=Told()) as store:
        old = store.get("old-1")
        assert old is not None and old.state is State.REJECTED and old.decision_note == "no"
        log = store.audit_log("old-1")
        assert [e.action for e in log] == ["create", "reject"]
        entries = store.outbox_entries("old-1")
        assert [(e.kind, e.queue) for e in entries] == [
            ("show", Lane.CHANNEL),
            ("dm_outcome", Lane.DM),
        ]
        assert {e.audit_id for e in entries} == {log[1].id}
        linked = store.audit_entry(log[1].id or 0)
        assert linked is not None and linked.details == {"note": "no"}
        # New requests work as on a new database, and name their audit entries directly.
        says(store, Action.CREATE, Notice.SHOW)
        new = store.create(make_request(email="dave@example.com"), "U")
        [queued] = store.outbox_entries(new.id)
        assert queued.audit_id == store.audit_log(new.id)[0].id
    with open_store(
        database_url, announce=Told()
    ) as store:  # a second start has nothing left to do
        assert store.get("old-1") == old


def test_a_version_1_sqlite_file_is_refused(db_path: Path) -> None:
    """Version 1 never left development: a file claiming it is refused, saying so, and is
    left as it was."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    conn.close()
    with pytest.raises(StoreError, match="schema version 1, which no released bot wrote"):
        SQLiteStore(db_path, announce=Told())
    conn = sqlite3.connect(db_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"schema_version"}


# ---------------------------------------------------------------------------------------------
# open_store and DATABASE_URL


def test_open_store_relative_url_is_relative_to_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///data/bot.db opens data/bot.db under the current directory."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///data/bot.db", announce=Told()) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "data" / "bot.db"
        store.create(make_request(), actor="U_REQ")
    assert (tmp_path / "data" / "bot.db").is_file()


def test_open_store_absolute_url(tmp_path: Path) -> None:
    """sqlite:////abs/path.db (four slashes) opens the absolute path."""
    path = tmp_path / "abs.db"
    url = sqlite_url(path)
    assert url.startswith("sqlite:////")
    with open_store(url, announce=Told()) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == path
    assert path.is_file()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_open_store_postgres_urls_open_a_postgres_store(
    postgres_server: PostgresServer, scheme: str
) -> None:
    """postgresql://, postgres:// (and SQLAlchemy's postgresql+psycopg://) all open the
    PostgreSQL store."""
    from bot.store.postgres import PostgresStore

    with postgres_server.fresh_database() as url:
        url = scheme + url[url.index("://") :]
        with open_store(url, announce=Told()) as store:
            assert isinstance(store, PostgresStore)
            store.ping()


def test_open_store_postgres_without_the_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without psycopg installed, a PostgreSQL URL gets StoreConfigError naming the postgres
    extra, and the password is not repeated."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "bot.store.postgres", raising=False)
    with pytest.raises(StoreConfigError, match=r"verify-email-bot\[postgres\]") as info:
        open_store("postgresql://bot:s3cr3t-pw@db.internal:5432/bot", announce=Told())
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "bot.db",
        "s3cr3t-pw",
        "mysql://root:s3cr3t-pw@localhost/bot",
        "user:s3cr3t-pw@host/db",
        "sqlite://s3cr3t-pw@host/bot.db",
        "sqlite://bot.db",
        "sqlite:///",
        "sqlite:////tmp/",
        "sqlite:///:memory:",
        "sqlite:///bot.db?password=s3cr3t-pw",
        "sqlite:///file:s3cr3t-pw?mode=ro",
        "http://example.com/s3cr3t-pw",
    ],
)
def test_open_store_garbage_raises_config_error_without_echoing(url: str) -> None:
    """A URL the bot cannot use raises StoreConfigError naming DATABASE_URL, without repeating
    any of the URL (it may hold a password)."""
    with pytest.raises(StoreConfigError) as info:
        open_store(url, announce=Told())
    message = str(info.value)
    assert "DATABASE_URL" in message
    assert "s3cr3t-pw" not in message
    assert "host" not in message and "root" not in message


def test_sqlite_path_from_url_refuses_a_postgres_url() -> None:
    """Asking for the SQLite file of a PostgreSQL URL is a StoreConfigError without the
    password."""
    with pytest.raises(StoreConfigError, match="PostgreSQL") as info:
        sqlite_path_from_url("postgresql://bot:s3cr3t-pw@db.internal/bot")
    assert "s3cr3t-pw" not in str(info.value)


def test_store_config_error_is_a_store_error() -> None:
    """Start-up code can catch StoreError for both a bad URL and an unopenable file."""
    assert issubclass(StoreConfigError, StoreError)


# ---------------------------------------------------------------------------------------------
# PostgreSQL errors: named, without the password


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when this returns


def test_postgres_connection_refused_names_host_and_database_not_password() -> None:
    """No server listening: StoreError naming the host, port and database, never the
    password (not even in the exception chain)."""
    port = _closed_port()
    url = f"postgresql://bot:s3cr3t-pw@127.0.0.1:{port}/somedb"
    with pytest.raises(StoreError) as info:
        open_store(url, announce=Told())
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "somedb" in message
    assert "s3cr3t-pw" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_postgres_wrong_password_and_unknown_database_are_store_errors(
    postgres_server: PostgresServer,
) -> None:
    """A refused login and a database that does not exist give StoreError naming the host and
    database (and saying what went wrong), never the password."""
    from urllib.parse import urlencode

    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(postgres_server.url)
    # The server may be on TCP (host:port) or a Unix socket (its directory, port 5432).
    port = params.get("port") or "5432"
    host = f"{params['host']}:{port}"
    where = urlencode({"host": params["host"], "port": port})
    wrong = f"postgresql://{params['user']}:Wr0ng-pa55@/nosuchdb_here?{where}"
    with pytest.raises(StoreError) as info:
        open_store(wrong, announce=Told())
    assert host in str(info.value) and "nosuchdb_here" in str(info.value)
    assert "password authentication failed" in str(info.value)
    assert "Wr0ng-pa55" not in str(info.value)

    missing = url_with_database(postgres_server.url, "nosuchdb_here")
    with pytest.raises(StoreError) as info:
        open_store(missing, announce=Told())
    assert "nosuchdb_here" in str(info.value) and "does not exist" in str(info.value)
    assert f":{params['password']}@" not in str(info.value)  # the URL is never repeated


def test_postgres_server_going_away_gives_store_error_and_recovers(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """When the store's connections are killed (a server restart, a failover), the next
    operation reconnects (connections are checked before use); with the pool unable to
    connect at all, operations raise StoreError naming the database rather than hanging."""
    from psycopg.conninfo import conninfo_to_dict

    from bot.store.postgres import PostgresStore

    with PostgresStore(postgres_url, pool_timeout=2) as store:
        request = store.create(make_request(), actor="U")
        dbname = str(conninfo_to_dict(postgres_url)["dbname"])
        postgres_server.execute(
            postgres_server.url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        )
        assert store.get(request.id) == request
        store.ping()

        # Now the database refuses every connection: a bounded wait, then StoreError.
        postgres_server.execute(
            postgres_server.url, f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false'
        )
        try:
            postgres_server.execute(
                postgres_server.url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )
            with pytest.raises(StoreError, match=dbname) as info:
                store.get(request.id)
            assert "no connection within 2 s" in str(info.value)
        finally:
            postgres_server.execute(
                postgres_server.url, f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true'
            )


# ---------------------------------------------------------------------------------------------
# ping, close and errors


def test_ping_succeeds_on_a_healthy_store_and_writes_nothing(store: BaseSQLStore) -> None:
    """ping on a writable store returns None and leaves the data as it was."""
    request = store.create(make_request(), actor="U_REQ")
    store.ping()  # raises StoreError when it fails
    assert store.list_requests() == [request]
    assert store.outbox_entries() == []


def test_unwritable_location_raises_store_error_naming_the_path(tmp_path: Path) -> None:
    """A database whose parent is a regular file (root ignores chmod, so this is how a test
    makes a location unusable) raises StoreError naming the path, not a sqlite3 error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    url = f"sqlite:///{blocker}/bot.db"
    with pytest.raises(StoreError, match="not-a-dir/bot.db") as info:
        open_store(url, announce=Told()).ping()
    assert not isinstance(info.value, StoreConfigError)
    with pytest.raises(StoreError, match="missing-dir"):
        SQLiteStore(tmp_path / "missing-dir" / "bot.db")


def test_ping_answers_busy_while_another_process_holds_the_write_lock(
    db_path: Path,
) -> None:
    """While another process holds the write lock, ping answers at once (the database is
    there and being written: busy, not down) where writes raise StoreError saying it is
    locked once busy_timeout runs out; the store works again once it is released."""
    with SQLiteStore(db_path, busy_timeout_ms=50) as store:
        request = store.create(make_request(), actor="U_REQ")
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            store.ping()
            with pytest.raises(StoreError, match="locked"):
                approve(store, request.id)
            # Reads are not blocked by a writer in WAL mode.
            assert store.get(request.id) == request
            other.execute("ROLLBACK")
        finally:
            other.close()
        store.ping()
        assert approve(store, request.id) is not None


def test_closed_store_raises_store_error_and_close_is_idempotent(database_url: str) -> None:
    """After close, ping and every operation raise StoreError; closing twice is harmless."""
    store = open_store(database_url, announce=Told())
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.ping()
    with pytest.raises(StoreError, match="closed"):
        store.get("x")
    with pytest.raises(StoreError, match="closed"):
        store.claim_outbox(now=T0, owner="o", lease_seconds=1)


# ---------------------------------------------------------------------------------------------
# list_requests


def test_list_requests_filters_by_state_and_times_oldest_first(store: BaseSQLStore) -> None:
    """list_requests returns requests oldest first: all, or those in the given states, expiring
    strictly before a time (the expiry sweep), updated strictly before a time (the sweep for
    interrupted calls) and created at or after a time (the audit export)."""
    a = store.create(make_request(email="a@x.io", created_at=T0, ttl=timedelta(hours=1)), "U")
    b = store.create(make_request(email="b@x.io", created_at=T0 + timedelta(minutes=1)), "U")
    c = store.create(
        make_request(
            email="c@x.io", created_at=T0 + timedelta(minutes=2), ttl=timedelta(minutes=30)
        ),
        actor="U",
    )
    claimed = store.transition(
        Transition(
            b.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action=Action.APPROVE,
            item=0,
            now=T0 + timedelta(minutes=10),
        )
    )
    assert claimed is not None
    b = claimed
    assert [r.id for r in store.list_requests()] == [a.id, b.id, c.id]
    assert store.list_requests(frozenset({State.EXECUTING})) == [b]
    assert [r.id for r in store.list_requests(OPEN_STATES)] == [a.id, b.id, c.id]
    assert store.list_requests(frozenset()) == []
    due = store.list_requests(PENDING, expires_before=T0 + timedelta(minutes=45))
    assert [r.id for r in due] == [c.id]
    # Strictly before: a request expiring exactly then is not yet due.
    assert store.list_requests(PENDING, expires_before=a.expires_at) == [c]
    assert [r.id for r in store.list_requests(expires_before=T0 + timedelta(days=2))] == [
        a.id,
        b.id,
        c.id,
    ]
    # updated_before is strict too.
    assert store.list_requests(EXECUTING, updated_before=b.updated_at) == []
    stale = store.list_requests(EXECUTING, updated_before=b.updated_at + timedelta(microseconds=1))
    assert stale == [b]
    assert [r.id for r in store.list_requests(updated_before=T0 + timedelta(minutes=3))] == [
        a.id,
        c.id,
    ]
    # created_since includes that very moment.
    assert [r.id for r in store.list_requests(created_since=b.created_at)] == [b.id, c.id]
    assert store.list_requests(created_since=T0 + timedelta(days=1)) == []
    assert store.list_requests(
        PENDING, created_since=T0, expires_before=T0 + timedelta(hours=2)
    ) == [a, c]


# ---------------------------------------------------------------------------------------------
# With the domain


def test_approvals_service_approves_and_rejects_through_the_store(store: BaseSQLStore) -> None:
    """The store is the service's RequestRepository: submit, approve once (the second approval
    is refused), reject another, and a late one is expired when someone tries to approve it."""
    clock = [T0]
    approvals = Approvals(
        store, StubProvider(), Roles(), Delivery(), ApprovalPolicy(), clock=lambda: clock[0]
    )
    request = approvals.submit("carol@Example.COM", "ticket 7", requester="U_REQ")
    assert request.email == "carol@example.com"
    done = approvals.approve(request.id, approver="U_APP")
    assert done.state is State.SUCCEEDED and done.decided_by == "U_APP"
    with pytest.raises(Refused) as refused:
        approvals.approve(request.id, approver="U_APP2")
    assert refused.value.code is Refusal.ALREADY_DECIDED
    other = approvals.submit("dave@example.com", "ticket 8", requester="U_REQ")
    rejected = approvals.reject(other.id, actor="U_APP", note="no")
    assert rejected.state is State.REJECTED and rejected.decision_note == "no"
    late = approvals.submit("erin@example.com", "ticket 9", requester="U_REQ")
    clock[0] = T0 + timedelta(days=2)
    with pytest.raises(Refused) as refused:
        approvals.approve(late.id, approver="U_APP")
    assert refused.value.code is Refusal.EXPIRED
    got = store.get(late.id)
    assert got is not None and got.state is State.EXPIRED


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
