"""The durable store: round trips, the compare-and-set transition, races, durability, URLs."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.approvals import (
    OPEN_STATES,
    ApprovalPolicy,
    Approvals,
    Refused,
    State,
    VerificationRequest,
    new_request_id,
)
from bot.store import (
    SCHEMA_VERSION,
    SQLiteStore,
    StoreConfigError,
    StoreError,
    open_store,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
PENDING = frozenset({State.PENDING})


def make_request(
    *,
    email: str = "alice@example.com",
    reason: str = "ticket #42",
    requester: str = "U_REQ",
    created_at: datetime = T0,
    ttl: timedelta = timedelta(days=1),
    request_id: str | None = None,
) -> VerificationRequest:
    return VerificationRequest(
        id=request_id or new_request_id(),
        email=email,
        domain=email.rpartition("@")[2],
        reason=reason,
        requester=requester,
        state=State.PENDING,
        created_at=created_at,
        expires_at=created_at + ttl,
        updated_at=created_at,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    try:
        yield s
    finally:
        s.close()


def approve(store: SQLiteStore, request_id: str, actor: str = "U_APP", **kw: Any) -> Any:
    return store.transition(
        request_id, PENDING, State.EXECUTING, actor=actor, action="approve", now=T0, **kw
    )


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize(
    "reason",
    [
        "'; DROP TABLE requests; --",
        "He said \"hi\" and 'bye' \\ back",
        "Ünïcödé ✓ 漢字 עברית 🙂👩🏽‍💻 \u200b zero-width, tab\tand\nnewline",
        "Robert'); DELETE FROM audit_log WHERE ('1'='1",
    ],
)
def test_create_get_round_trip_keeps_untrusted_text_exactly(
    store: SQLiteStore, reason: str
) -> None:
    """Whatever a person typed comes back byte for byte, and SQL in it is never executed."""
    request = make_request(email="o'brien+ünï@bücher.example", reason=reason, requester="U'1")
    created = store.create(request, actor="U'1")
    assert created == request
    assert store.get(request.id) == request
    # The tables are still there and hold exactly this one request.
    assert store.list_requests() == [request]
    assert len(store.audit_log(request.id)) == 1


def test_get_returns_aware_utc_datetimes_and_none_for_unknown_id(store: SQLiteStore) -> None:
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


def test_create_appends_create_audit_entry_in_same_transaction(store: SQLiteStore) -> None:
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


def test_create_refuses_a_request_that_is_not_pending(store: SQLiteStore) -> None:
    """Only pending requests may be created; anything else is a programming error."""
    request = make_request()
    executing = VerificationRequest(**{**request.__dict__, "state": State.EXECUTING})
    with pytest.raises(ValueError, match="pending"):
        store.create(executing, actor="U_REQ")
    assert store.get(request.id) is None


def test_create_refuses_a_duplicate_id_and_writes_nothing(store: SQLiteStore) -> None:
    """A second create with the same id raises StoreError and leaves one audit entry."""
    request = make_request()
    store.create(request, actor="U_REQ")
    with pytest.raises(StoreError, match="already exists"):
        store.create(make_request(request_id=request.id, reason="other"), actor="U_X")
    assert store.get(request.id) == request
    assert len(store.audit_log(request.id)) == 1


def test_create_rejects_naive_datetimes(store: SQLiteStore) -> None:
    """A naive datetime would be ambiguous in storage: refused as a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.create(make_request(created_at=datetime(2025, 1, 1)), actor="U_REQ")


def test_lone_surrogates_are_stored_as_replacement_characters(store: SQLiteStore) -> None:
    """JSON from Slack can carry a lone surrogate, which is not encodable text: it is stored as
    U+FFFD instead of failing the request, in columns and JSON alike."""
    request = make_request(reason="bad \ud800 half")
    created = store.create(request, actor="U_REQ")
    assert created.reason == "bad \ufffd half"
    [entry] = store.audit_log(request.id)
    assert entry.details["reason"] == "bad \ufffd half"


def test_set_message_records_channel_and_ts(store: SQLiteStore) -> None:
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


def test_legal_transition_updates_state_and_appends_audit(store: SQLiteStore) -> None:
    """A legal transition updates state, updated_at and the given columns, and appends an
    entry with actor, action, from/to state, time and details."""
    request = store.create(make_request(), actor="U_REQ")
    later = T0 + timedelta(minutes=5)
    claimed = store.transition(
        request.id,
        PENDING,
        State.EXECUTING,
        actor="U_APP",
        action="approve",
        now=later,
        details={"note": "looks fine ✓", "n": 1},
        decided_by="U_APP",
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

    outcome = {"requestId": "abc-123", "clearedDomains": ["example.com"], "nested": {"x": None}}
    done = store.transition(
        request.id,
        frozenset({State.EXECUTING}),
        State.SUCCEEDED,
        actor="U_APP",
        action="provider_success",
        now=later + timedelta(seconds=2),
        details=outcome,
        outcome=outcome,
    )
    assert done is not None
    assert done.state is State.SUCCEEDED
    assert done.outcome == outcome
    # Not given this time, so kept from the approval.
    assert done.decided_by == "U_APP"
    assert [e.action for e in store.audit_log(request.id)] == [
        "create",
        "approve",
        "provider_success",
    ]


def test_transition_from_one_of_several_states_records_the_actual_one(
    store: SQLiteStore,
) -> None:
    """With several from_states, the audit's from_state is the state the request really had."""
    request = store.create(make_request(), actor="U_REQ")
    rejected = store.transition(
        request.id,
        frozenset({State.PENDING}),
        State.REJECTED,
        actor="U_APP",
        action="reject",
        now=T0,
        decided_by="U_APP",
        decision_note="not our customer",
    )
    assert rejected is not None and rejected.decision_note == "not our customer"
    assert store.audit_log(request.id)[-1].from_state is State.PENDING

    other = store.create(make_request(), actor="U_REQ")
    approve(store, other.id)
    store.transition(
        other.id, frozenset({State.EXECUTING}), State.UNKNOWN, actor="U_APP", action="x", now=T0
    )
    retried = store.transition(
        other.id,
        frozenset({State.UNKNOWN}),
        State.EXECUTING,
        actor="U_APP2",
        action="retry",
        now=T0,
        decided_by="U_APP2",
    )
    assert retried is not None and retried.decided_by == "U_APP2"
    assert store.audit_log(other.id)[-1].from_state is State.UNKNOWN


def test_transition_from_wrong_state_returns_none_and_appends_nothing(
    store: SQLiteStore,
) -> None:
    """A request not in from_states is left alone: None, same row, no audit entry."""
    request = store.create(make_request(), actor="U_REQ")
    approve(store, request.id)
    before = store.get(request.id)
    entries = store.audit_log(request.id)
    assert approve(store, request.id, actor="U_LATE") is None
    assert (
        store.transition(request.id, PENDING, State.REJECTED, actor="U_X", action="reject", now=T0)
        is None
    )
    assert store.get(request.id) == before
    assert store.audit_log(request.id) == entries


def test_transition_of_unknown_request_returns_none(store: SQLiteStore) -> None:
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
    store: SQLiteStore, from_states: frozenset[State], to_state: State
) -> None:
    """A transition TRANSITIONS does not allow is a programming error: ValueError, no write."""
    request = store.create(make_request(), actor="U_REQ")
    with pytest.raises(ValueError):
        store.transition(request.id, from_states, to_state, actor="U", action="x", now=T0)
    assert store.get(request.id) == request
    assert len(store.audit_log(request.id)) == 1


def test_transition_rejects_naive_now(store: SQLiteStore) -> None:
    """`now` must be timezone-aware, like every timestamp the store keeps."""
    request = store.create(make_request(), actor="U_REQ")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.transition(
            request.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action="approve",
            now=datetime(2025, 3, 1),
        )
    assert store.get(request.id) == request


def test_unexpired_only_refuses_an_expired_request(store: SQLiteStore) -> None:
    """With unexpired_only, a request at or past expires_at is not claimed (matching
    VerificationRequest.is_expired), while one just before it is."""
    expired = store.create(make_request(ttl=timedelta(hours=1)), actor="U_REQ")
    at_expiry = expired.expires_at
    assert (
        store.transition(
            expired.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action="approve",
            now=at_expiry,
            unexpired_only=True,
        )
        is None
    )
    assert (
        store.transition(
            expired.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action="approve",
            now=at_expiry + timedelta(days=3),
            unexpired_only=True,
        )
        is None
    )
    assert store.get(expired.id) == expired
    assert len(store.audit_log(expired.id)) == 1

    fresh = store.create(make_request(ttl=timedelta(hours=1)), actor="U_REQ")
    claimed = store.transition(
        fresh.id,
        PENDING,
        State.EXECUTING,
        actor="U",
        action="approve",
        now=fresh.expires_at - timedelta(microseconds=1),
        unexpired_only=True,
    )
    assert claimed is not None and claimed.state is State.EXECUTING
    # Without the flag an expired request can still be moved (the sweep marks it expired).
    swept = store.transition(
        expired.id,
        PENDING,
        State.EXPIRED,
        actor="sweeper",
        action="expire",
        now=at_expiry + timedelta(days=3),
    )
    assert swept is not None and swept.state is State.EXPIRED


# ---------------------------------------------------------------------------------------------
# Races


def test_fifty_threads_racing_to_claim_exactly_one_wins(store: SQLiteStore) -> None:
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
    db: str,
    request_ids: list[str],
    barrier: Any,
    results: Any,
    worker: str,
    threads: int,
) -> None:
    """Runs in a spawned process: `threads` threads each try to claim every request."""
    store = SQLiteStore(db)
    won: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        for rid in request_ids:
            try:
                barrier.wait(timeout=60)
                claimed = store.transition(
                    rid,
                    PENDING,
                    State.EXECUTING,
                    actor=f"{worker}-{t}",
                    action="approve",
                    now=datetime.now(UTC),
                    decided_by=f"{worker}-{t}",
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


def test_two_processes_racing_on_one_file_exactly_one_wins_each_time(db_path: Path) -> None:
    """Two processes (4 threads each) released together 40 times, once per request, on one
    SQLite file: every request is claimed exactly once and audited exactly once."""
    with SQLiteStore(db_path) as store:
        ids = [store.create(make_request(), actor="U_REQ").id for _ in range(40)]
    ctx = multiprocessing.get_context("spawn")
    procs_n, threads_n = 2, 4
    barrier = ctx.Barrier(procs_n * threads_n)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_race_worker, args=(str(db_path), ids, barrier, results, f"P{i}", threads_n)
        )
        for i in range(procs_n)
    ]
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
    assert [errors for _, _, errors in outcomes] == [[], []]
    wins = Counter(rid for _, won, _ in outcomes for rid in won)
    assert wins == Counter(dict.fromkeys(ids, 1))
    # Both processes won some: they really raced (40 coin flips all landing one way is ~1e-12).
    assert all(won for _, won, _ in outcomes)
    with SQLiteStore(db_path) as store:
        for rid in ids:
            entries = store.audit_log(rid)
            assert [e.action for e in entries] == ["create", "approve"]
            got = store.get(rid)
            assert got is not None and got.decided_by == entries[1].actor


# ---------------------------------------------------------------------------------------------
# Durability


def test_data_survives_close_and_reopen(db_path: Path) -> None:
    """Requests, their states and audit logs are all there after close and reopen."""
    with SQLiteStore(db_path) as store:
        request = store.create(make_request(reason="keep me ✓"), actor="U_REQ")
        store.set_message(request.id, "C1", "1.2")
        approve(store, request.id, decided_by="U_APP")
        before, log = store.get(request.id), store.audit_log(request.id)
    with SQLiteStore(db_path) as store:
        assert store.get(request.id) == before
        assert store.audit_log(request.id) == log
        assert before is not None and before.state is State.EXECUTING


_KILL_CHILD = """
import sys
from datetime import UTC, datetime, timedelta, timezone
from bot.approvals import State, VerificationRequest
from bot.store import open_store

store = open_store(sys.argv[1])
now = datetime.now(UTC)
store.create(
    VerificationRequest(
        id="killed-1", email="k@example.com", domain="example.com", reason="survive",
        requester="U_REQ", state=State.PENDING, created_at=now,
        expires_at=now + timedelta(days=1), updated_at=now,
    ),
    actor="U_REQ",
)
store.transition(
    "killed-1", frozenset({State.PENDING}), State.EXECUTING,
    actor="U_APP", action="approve", now=now, decided_by="U_APP",
)
print("ready", flush=True)
sys.stdin.read()  # wait here, connection open, until killed
"""


def test_committed_request_survives_kill_9(db_path: Path) -> None:
    """A request created and claimed in a process that is then SIGKILLed is in the file, with
    its audit log, when the file is reopened."""
    url = f"sqlite:///{db_path}"  # absolute path: four slashes in all
    with subprocess.Popen(  # noqa: S603 -- this interpreter on a constant snippet
        [sys.executable, "-c", _KILL_CHILD, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with open_store(url) as store:
        got = store.get("killed-1")
        assert got is not None
        assert got.state is State.EXECUTING and got.decided_by == "U_APP"
        assert [e.action for e in store.audit_log("killed-1")] == ["create", "approve"]


def test_sqlite_settings_wal_full_sync_busy_timeout_and_schema_version(
    store: SQLiteStore, db_path: Path
) -> None:
    """The file is in WAL mode with a schema_version row; the connection syncs FULL, waits
    5 s for a lock, and the documented indexes exist."""
    conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"requests_email_state", "requests_state_expires"} <= indexes


def test_reopening_a_newer_schema_refuses_with_store_error(db_path: Path) -> None:
    """A database written by a newer bot is not silently used by an older one."""
    SQLiteStore(db_path).close()
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    finally:
        conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(db_path)


def test_a_file_that_is_not_a_database_gives_store_error_naming_it(tmp_path: Path) -> None:
    """Pointing DATABASE_URL at some other file is explained, naming the path."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(StoreError, match="notes.txt"):
        SQLiteStore(path)


# ---------------------------------------------------------------------------------------------
# open_store and DATABASE_URL


def test_open_store_relative_url_is_relative_to_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///data/bot.db opens data/bot.db under the current directory."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///data/bot.db") as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "data" / "bot.db"
        store.create(make_request(), actor="U_REQ")
    assert (tmp_path / "data" / "bot.db").is_file()


def test_open_store_absolute_url(tmp_path: Path) -> None:
    """sqlite:////abs/path.db (four slashes) opens the absolute path."""
    path = tmp_path / "abs.db"
    url = "sqlite:///" + str(path)
    assert url.startswith("sqlite:////")
    with open_store(url) as store:
        assert store.path == path
    assert path.is_file()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:s3cr3t-pw@db.internal:5432/bot",
        "postgres://bot:s3cr3t-pw@db.internal/bot",
        "postgresql+psycopg://bot:s3cr3t-pw@db.internal/bot",
    ],
)
def test_open_store_postgres_is_not_yet_supported(url: str) -> None:
    """A PostgreSQL URL is recognised and refused with "a later version", and the password is
    not in the message."""
    with pytest.raises(StoreConfigError, match="later version") as info:
        open_store(url)
    message = str(info.value)
    assert "DATABASE_URL" in message
    assert "s3cr3t-pw" not in message and "db.internal" not in message


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
        open_store(url)
    message = str(info.value)
    assert "DATABASE_URL" in message
    assert "s3cr3t-pw" not in message
    assert "host" not in message and "root" not in message


def test_store_config_error_is_a_store_error() -> None:
    """Start-up code can catch StoreError for both a bad URL and an unopenable file."""
    assert issubclass(StoreConfigError, StoreError)


# ---------------------------------------------------------------------------------------------
# ping, close and errors


def test_ping_succeeds_on_a_healthy_store_and_writes_nothing(store: SQLiteStore) -> None:
    """ping on a writable store returns None and leaves the data as it was."""
    request = store.create(make_request(), actor="U_REQ")
    assert store.ping() is None
    assert store.list_requests() == [request]
    assert store._connection().execute("SELECT version FROM schema_version").fetchall() == [
        (SCHEMA_VERSION,)
    ]


def test_unwritable_location_raises_store_error_naming_the_path(tmp_path: Path) -> None:
    """A database whose parent is a regular file (root ignores chmod, so this is how a test
    makes a location unusable) raises StoreError naming the path, not a sqlite3 error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    url = f"sqlite:///{blocker}/bot.db"
    with pytest.raises(StoreError, match="not-a-dir/bot.db") as info:
        open_store(url).ping()
    assert not isinstance(info.value, StoreConfigError)
    with pytest.raises(StoreError, match="missing-dir"):
        SQLiteStore(tmp_path / "missing-dir" / "bot.db")


def test_ping_raises_store_error_while_another_process_holds_the_write_lock(
    db_path: Path,
) -> None:
    """When the write lock cannot be had within busy_timeout, ping (and writes) raise
    StoreError saying the database is locked; the store works again once it is released."""
    with SQLiteStore(db_path, busy_timeout_ms=50) as store:
        request = store.create(make_request(), actor="U_REQ")
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
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


def test_closed_store_raises_store_error_and_close_is_idempotent(db_path: Path) -> None:
    """After close, ping and every operation raise StoreError; closing twice is harmless."""
    store = SQLiteStore(db_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.ping()
    with pytest.raises(StoreError, match="closed"):
        store.get("x")


# ---------------------------------------------------------------------------------------------
# find_open and list_requests


def test_find_open_returns_newest_open_request_for_that_email(store: SQLiteStore) -> None:
    """find_open ignores other emails and final states, and prefers the newest open one."""
    assert store.find_open("alice@example.com") is None
    old = store.create(make_request(created_at=T0), actor="U")
    store.transition(old.id, PENDING, State.REJECTED, actor="U", action="reject", now=T0)
    store.create(make_request(email="bob@example.com"), actor="U")
    assert store.find_open("alice@example.com") is None

    first = store.create(make_request(created_at=T0 + timedelta(hours=1)), actor="U")
    approve(store, first.id)
    assert (found := store.find_open("alice@example.com")) is not None
    assert found.id == first.id and found.state is State.EXECUTING
    second = store.create(make_request(created_at=T0 + timedelta(hours=2)), actor="U")
    found = store.find_open("alice@example.com")
    assert found is not None and found.id == second.id
    assert store.find_open("ALICE@example.com") is None
    assert store.find_open("' OR 1=1 --") is None


def test_list_requests_filters_by_state_and_expiry_oldest_first(store: SQLiteStore) -> None:
    """list_requests returns all requests oldest first, or only those in the given states
    and/or expiring strictly before a time (what the expiry sweep asks for)."""
    a = store.create(make_request(created_at=T0, ttl=timedelta(hours=1)), actor="U")
    b = store.create(make_request(created_at=T0 + timedelta(minutes=1)), actor="U")
    c = store.create(
        make_request(created_at=T0 + timedelta(minutes=2), ttl=timedelta(minutes=30)), actor="U"
    )
    b = approve(store, b.id)
    assert b is not None
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


# ---------------------------------------------------------------------------------------------
# With the domain


def test_approvals_service_claims_and_rejects_through_sqlite_store(store: SQLiteStore) -> None:
    """SQLiteStore satisfies the Store protocol as Approvals uses it: submit, claim once,
    refuse the second claim, reject another."""
    clock = [T0]
    approvals = Approvals(store, provider=None, policy=ApprovalPolicy(), clock=lambda: clock[0])  # type: ignore[arg-type]
    request = approvals.submit("carol@Example.COM", "ticket 7", requester="U_REQ")
    assert request.email == "carol@example.com"
    claimed = approvals.claim(request.id, approver="U_APP")
    assert claimed.state is State.EXECUTING and claimed.decided_by == "U_APP"
    with pytest.raises(Refused, match="already executing"):
        approvals.claim(request.id, approver="U_APP2")
    other = approvals.submit("dave@example.com", "ticket 8", requester="U_REQ")
    rejected = approvals.reject(other.id, actor="U_APP", note="no")
    assert rejected.state is State.REJECTED and rejected.decision_note == "no"
    late = approvals.submit("erin@example.com", "ticket 9", requester="U_REQ")
    clock[0] = T0 + timedelta(days=2)
    with pytest.raises(Refused, match="expired"):
        approvals.claim(late.id, approver="U_APP")
    got = store.get(late.id)
    assert got is not None and got.state is State.EXPIRED
