"""The store's durability and schema, on every backend: data surviving a reopen and a kill -9,
the SQLite settings and PostgreSQL types and indexes, the schema created once by stores
starting together, and the migration of older databases (or their refusal)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from stores import T0, Told, approve, make_request, says

from bot.domain.model import Action, State
from bot.slack.notices import Lane, Notice
from bot.store import BaseSQLStore, SQLiteStore, StoreError, open_store, sqlite_path_from_url
from bot.store.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "postgres"


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
store = open_store(
    sys.argv[1], announce=lambda a, bulk=False: [("show", "channel")] if a == "approve" else []
)
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
    assert SCHEMA_VERSION == 12
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
        # Made before rules: the settings decide it, as they did.
        assert old.rule is None and old.escalated_at is None
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
