"""Durable requests and their append-only audit log.

``open_store(DATABASE_URL)`` builds the store the bot uses. Today that is :class:`SQLiteStore`;
a PostgreSQL store with the same interface comes later, so:

* every statement in :class:`BaseSQLStore` is portable SQL (``?`` placeholders, which a
  psycopg-based subclass turns into ``%s`` in :meth:`BaseSQLStore._sql`), and every value is
  bound as a parameter, never formatted into the SQL text;
* the row <-> model mapping and the validation live in :class:`BaseSQLStore`;
* what is SQLite's own (DDL, PRAGMAs, locking, error translation) lives in :class:`SQLiteStore`.

Timestamps are stored as ISO-8601 UTC text of fixed width
(``2024-05-01T12:00:00.000000+00:00``), so comparing them as text orders them in time; they
come back as aware UTC datetimes. JSON columns (``outcome``, ``details``) are text.

A state change and its audit entry are written in one transaction. ``transition`` is a
compare-and-set: of any number of concurrent callers (threads or processes) asking for the
same change, exactly one wins; the others get ``None`` and write nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import unquote

from bot.approvals import (
    OPEN_STATES,
    TRANSITIONS,
    AuditEntry,
    State,
    VerificationRequest,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class StoreError(Exception):
    """The store cannot do what was asked; the message is safe to log and names nothing secret."""


class StoreConfigError(StoreError):
    """DATABASE_URL is not one the bot can use; the message never repeats the URL."""


# ---------------------------------------------------------------------------------------------
# DATABASE_URL

_URL_FORMS = "sqlite:///relative.db or sqlite:////absolute/path.db"


def open_store(database_url: str, *, busy_timeout_ms: int = 5000) -> BaseSQLStore:
    """Open the store DATABASE_URL names, creating its schema if missing.

    ``sqlite:///bot.db`` is relative to the current directory, ``sqlite:////var/lib/bot.db``
    is absolute. ``postgresql://…`` is recognised but not supported yet. Raises
    StoreConfigError for a URL it cannot use (never echoing it: it may hold a password), and
    StoreError when the database cannot be opened.
    """
    return SQLiteStore(sqlite_path_from_url(database_url), busy_timeout_ms=busy_timeout_ms)


def sqlite_path_from_url(database_url: str) -> Path:
    """The absolute file path a ``sqlite:`` DATABASE_URL names; see :func:`open_store`."""
    url = (database_url or "").strip()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise StoreConfigError(f"DATABASE_URL is not a database URL; expected {_URL_FORMS}.")
    if scheme.split("+", 1)[0] in {"postgres", "postgresql"}:
        raise StoreConfigError(
            "DATABASE_URL names a PostgreSQL database; PostgreSQL support arrives in a later "
            f"version. Use {_URL_FORMS} for now."
        )
    if scheme != "sqlite":
        raise StoreConfigError(
            f"DATABASE_URL uses a database this bot does not support; expected {_URL_FORMS}."
        )
    if not rest.startswith("/"):
        # sqlite://host/... : a host makes no sense for a file.
        raise StoreConfigError(
            "DATABASE_URL: a sqlite URL has three slashes before a relative path "
            f"and four before an absolute one: {_URL_FORMS}."
        )
    if "?" in rest or "#" in rest:
        raise StoreConfigError(
            f"DATABASE_URL: a sqlite URL takes no ?options or #fragment; expected {_URL_FORMS}."
        )
    raw_path = unquote(rest[1:])
    if not raw_path or raw_path.endswith("/"):
        raise StoreConfigError(f"DATABASE_URL names no database file; expected {_URL_FORMS}.")
    if raw_path == ":memory:" or raw_path.startswith("file:"):
        raise StoreConfigError(
            "DATABASE_URL: requests must survive a restart, so an in-memory or URI-form SQLite "
            f"database is not supported; expected {_URL_FORMS}."
        )
    if "\x00" in raw_path:
        raise StoreConfigError(f"DATABASE_URL is not a usable file path; expected {_URL_FORMS}.")
    # Resolved now, so a later chdir cannot move the database and error messages are exact.
    return Path(os.path.abspath(raw_path))


# ---------------------------------------------------------------------------------------------
# Mapping between the model and rows: shared by every SQL store.

_REQUEST_COLUMNS = (
    "id, email, domain, reason, requester, state, created_at, expires_at, updated_at, "
    "channel, message_ts, decided_by, decision_note, outcome"
)
_AUDIT_COLUMNS = "request_id, at, actor, action, from_state, to_state, details"

_SELECT_REQUEST = f"SELECT {_REQUEST_COLUMNS} FROM requests"  # noqa: S608 -- constant column list

# The compare-and-set. COALESCE keeps a column's value when the caller passes None, so one
# constant statement serves every transition. The state in the WHERE clause is the one read
# in the same write transaction, so the audit's from_state is exactly what was replaced.
_CAS = (
    "UPDATE requests SET state = ?, updated_at = ?, "
    "decided_by = COALESCE(?, decided_by), "
    "decision_note = COALESCE(?, decision_note), "
    "outcome = COALESCE(?, outcome) "
    "WHERE id = ? AND state = ?"
)
_CAS_UNEXPIRED = _CAS + " AND expires_at > ?"

_INSERT_AUDIT = (
    f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# Lone surrogates are not Unicode text and cannot be encoded as UTF-8, yet JSON from Slack can
# carry them ("\ud800"). They are stored as U+FFFD rather than failing the whole request.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", value)


def _opt_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _json(value: dict[str, Any]) -> str:
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _check_aware(dt: datetime, name: str) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got a naive one")


def _validate_transition(from_states: frozenset[State], to_state: State) -> None:
    if not from_states:
        raise ValueError("transition needs at least one from_state")
    to_state = State(to_state)
    illegal = sorted(s.value for s in map(State, from_states) if to_state not in TRANSITIONS[s])
    if illegal:
        raise ValueError(f"illegal transition {','.join(illegal)} -> {to_state.value}")


class _Cursor(Protocol):
    """The part of a DB-API cursor the shared code uses (sqlite3 and psycopg 3 both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class BaseSQLStore:
    """The Store, written once against a DB-API cursor; subclasses supply the connection.

    A subclass implements :meth:`_write` (a cursor inside one write transaction that holds the
    write lock from its start, committed on success and rolled back on error) and
    :meth:`_read`, and may override the ``_time_*`` and :meth:`_sql` hooks.
    """

    # -- hooks ---------------------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def ping(self) -> None:
        """Raise StoreError unless the database is reachable and writable now."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _sql(self, sql: str) -> str:
        """The statement in this driver's placeholder style (``?`` as written here)."""
        return sql

    def _time_to_db(self, dt: datetime) -> Any:
        # Fixed width, always UTC: text comparison in SQL is time comparison.
        _check_aware(dt, "timestamp")
        return dt.astimezone(UTC).isoformat(timespec="microseconds")

    def _time_from_db(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromisoformat(value).astimezone(UTC)

    # -- mapping -------------------------------------------------------------------------------

    def _request_from_row(self, row: Sequence[Any]) -> VerificationRequest:
        (
            id_,
            email,
            domain,
            reason,
            requester,
            state,
            created_at,
            expires_at,
            updated_at,
            channel,
            message_ts,
            decided_by,
            decision_note,
            outcome,
        ) = row
        return VerificationRequest(
            id=id_,
            email=email,
            domain=domain,
            reason=reason,
            requester=requester,
            state=State(state),
            created_at=self._time_from_db(created_at),
            expires_at=self._time_from_db(expires_at),
            updated_at=self._time_from_db(updated_at),
            channel=channel,
            message_ts=message_ts,
            decided_by=decided_by,
            decision_note=decision_note,
            outcome=None if outcome is None else json.loads(outcome),
        )

    def _audit_from_row(self, row: Sequence[Any]) -> AuditEntry:
        request_id, at, actor, action, from_state, to_state, details = row
        return AuditEntry(
            request_id=request_id,
            at=self._time_from_db(at),
            actor=actor,
            action=action,
            from_state=None if from_state is None else State(from_state),
            to_state=State(to_state),
            details=json.loads(details) if details else {},
        )

    def _fetch_request(self, cur: _Cursor, request_id: str) -> VerificationRequest | None:
        cur.execute(self._sql(_SELECT_REQUEST + " WHERE id = ?"), (_text(request_id),))
        row = cur.fetchone()
        return None if row is None else self._request_from_row(row)

    # -- the Store protocol --------------------------------------------------------------------

    def create(self, request: VerificationRequest, actor: str) -> VerificationRequest:
        """Insert a pending request and its "create" audit entry, in one transaction."""
        if request.state is not State.PENDING:
            raise ValueError(f"a new request must be pending, not {request.state.value}")
        row = (
            request.id,
            _text(request.email),
            _text(request.domain),
            _text(request.reason),
            _text(request.requester),
            request.state.value,
            self._time_to_db(request.created_at),
            self._time_to_db(request.expires_at),
            self._time_to_db(request.updated_at),
            _opt_text(request.channel),
            _opt_text(request.message_ts),
            _opt_text(request.decided_by),
            _opt_text(request.decision_note),
            None if request.outcome is None else _json(request.outcome),
        )
        audit = (
            request.id,
            self._time_to_db(request.created_at),
            _text(actor),
            "create",
            None,
            State.PENDING.value,
            _json({"email": request.email, "domain": request.domain, "reason": request.reason}),
        )
        with self._write() as cur:
            cur.execute(self._sql("SELECT 1 FROM requests WHERE id = ?"), (request.id,))
            if cur.fetchone() is not None:
                raise StoreError(f"a request with id {request.id!r} already exists")
            cur.execute(
                self._sql(
                    f"INSERT INTO requests ({_REQUEST_COLUMNS}) "  # noqa: S608 -- constant column list
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                row,
            )
            cur.execute(self._sql(_INSERT_AUDIT), audit)
            stored = self._fetch_request(cur, request.id)
        if stored is None:  # cannot happen: inserted in this very transaction
            raise StoreError(f"request {request.id!r} vanished while being created")
        return stored

    def get(self, request_id: str) -> VerificationRequest | None:
        with self._read() as cur:
            return self._fetch_request(cur, request_id)

    def set_message(self, request_id: str, channel: str, message_ts: str) -> None:
        """Record where the request was posted. Raises KeyError for an unknown id.

        Not a state change: neither ``updated_at`` nor the audit log is touched.
        """
        with self._write() as cur:
            cur.execute(
                self._sql("UPDATE requests SET channel = ?, message_ts = ? WHERE id = ?"),
                (_text(channel), _text(message_ts), _text(request_id)),
            )
            if cur.rowcount != 1:
                raise KeyError(request_id)

    def transition(
        self,
        request_id: str,
        from_states: frozenset[State],
        to_state: State,
        *,
        actor: str,
        action: str,
        now: datetime,
        details: dict[str, Any] | None = None,
        decided_by: str | None = None,
        decision_note: str | None = None,
        outcome: dict[str, Any] | None = None,
        unexpired_only: bool = False,
    ) -> VerificationRequest | None:
        """Atomically move the request from one of ``from_states`` to ``to_state``.

        Returns the updated request, or None (writing nothing) when the request does not
        exist, is in none of ``from_states``, or (``unexpired_only``) has ``expires_at <= now``.
        ``decided_by``, ``decision_note`` and ``outcome`` are written when not None. Raises
        ValueError for a transition TRANSITIONS does not allow, whatever the stored state.
        """
        _validate_transition(from_states, to_state)
        _check_aware(now, "now")
        request_id = _text(request_id)  # ids arrive in button values: bound, never trusted
        to_state = State(to_state)
        at = self._time_to_db(now)
        audit_details = _json(details or {})
        outcome_json = None if outcome is None else _json(outcome)
        with self._write() as cur:
            # The write transaction holds the write lock, so this read and the update below
            # see the same row; the update re-checks the state anyway (it is the CAS).
            cur.execute(self._sql("SELECT state FROM requests WHERE id = ?"), (request_id,))
            row = cur.fetchone()
            if row is None or State(row[0]) not in from_states:
                return None
            current = State(row[0])
            params: tuple[Any, ...] = (
                to_state.value,
                at,
                _opt_text(decided_by),
                _opt_text(decision_note),
                outcome_json,
                request_id,
                current.value,
            )
            if unexpired_only:
                cur.execute(self._sql(_CAS_UNEXPIRED), (*params, at))
            else:
                cur.execute(self._sql(_CAS), params)
            if cur.rowcount != 1:
                return None
            cur.execute(
                self._sql(_INSERT_AUDIT),
                (
                    request_id,
                    at,
                    _text(actor),
                    _text(action),
                    current.value,
                    to_state.value,
                    audit_details,
                ),
            )
            return self._fetch_request(cur, request_id)

    def audit_log(self, request_id: str) -> list[AuditEntry]:
        """The request's audit entries, oldest first."""
        with self._read() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {_AUDIT_COLUMNS} FROM audit_log "  # noqa: S608 -- constant column list
                    "WHERE request_id = ? ORDER BY id"
                ),
                (_text(request_id),),
            )
            return [self._audit_from_row(r) for r in cur.fetchall()]

    # -- queries for the expiry sweep and "one open request per email" --------------------------

    def find_open(self, email: str) -> VerificationRequest | None:
        """The newest request for ``email`` in an open state (pending, executing, unknown).

        A pending one may be past its expiry if the sweep has not run: check ``is_expired``.
        The email is compared exactly (``validate_email`` already lower-cases the domain).
        """
        found = self._select(states=OPEN_STATES, email=email, newest_first=True, limit=1)
        return found[0] if found else None

    def list_requests(
        self,
        states: frozenset[State] | None = None,
        *,
        expires_before: datetime | None = None,
    ) -> list[VerificationRequest]:
        """Requests in ``states`` (all when None) with ``expires_at < expires_before`` (if
        given), oldest first."""
        return self._select(states=states, expires_before=expires_before)

    def _select(
        self,
        *,
        states: frozenset[State] | None = None,
        email: str | None = None,
        expires_before: datetime | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[VerificationRequest]:
        # The SQL is assembled only from the constant fragments below and "?" placeholders;
        # every value is bound.
        where: list[str] = []
        params: list[Any] = []
        if email is not None:
            where.append("email = ?")
            params.append(_text(email))
        if states is not None:
            if not states:
                return []
            ordered = sorted(State(s).value for s in states)
            where.append("state IN (" + ", ".join("?" * len(ordered)) + ")")
            params.extend(ordered)
        if expires_before is not None:
            where.append("expires_at < ?")
            params.append(self._time_to_db(expires_before))
        sql = _SELECT_REQUEST
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC" if newest_first else " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as cur:
            cur.execute(self._sql(sql), params)
            return [self._request_from_row(r) for r in cur.fetchall()]


# ---------------------------------------------------------------------------------------------
# SQLite

_SQLITE_SCHEMA = (
    """
    CREATE TABLE requests (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL,
        domain        TEXT NOT NULL,
        reason        TEXT NOT NULL,
        requester     TEXT NOT NULL,
        state         TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        expires_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        channel       TEXT,
        message_ts    TEXT,
        decided_by    TEXT,
        decision_note TEXT,
        outcome       TEXT
    )
    """,
    "CREATE INDEX requests_email_state ON requests (email, state)",
    "CREATE INDEX requests_state_expires ON requests (state, expires_at)",
    """
    CREATE TABLE audit_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL REFERENCES requests (id),
        at         TEXT NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        details    TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX audit_log_request ON audit_log (request_id, id)",
)


class SQLiteStore(BaseSQLStore):
    """The store on one SQLite file, safe for many threads and several processes.

    Connection: ONE connection per store, every use serialised by a lock. SQLite lets only one
    writer in at a time anyway, and our reads are single-row lookups of microseconds, so a
    connection per thread would buy little concurrency; it would cost a connection per Bolt
    worker thread (~64) that ``close()`` cannot reach from another thread (they would leak and
    warn). Across processes, correctness comes from SQLite's own locking: WAL mode, every write
    in ``BEGIN IMMEDIATE`` (the write lock is taken before the first read, so a read-then-update
    cannot interleave with another writer), and ``busy_timeout`` to wait for that lock rather
    than fail at once.

    Durability: ``synchronous=FULL``. NORMAL in WAL mode already survives a crash or ``kill -9``
    of the process, but may lose the last commits on power loss or an OS crash. Losing a
    committed ``executing`` claim could let a request be approved, and the provider called,
    twice; writes here are a handful per request, so the extra fsync per commit costs nothing
    that matters.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = self._connect()
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        parent = self.path.parent
        if not parent.is_dir():
            raise StoreError(
                f"cannot open the SQLite database {self.path}: "
                f"{parent} does not exist or is not a directory"
            )
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,  # sets SQLite's busy_timeout
                isolation_level=None,  # autocommit; transactions are explicit BEGIN IMMEDIATE
                check_same_thread=False,  # shared by threads; self._lock serialises every use
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the SQLite database {self.path}: {e}") from e
        try:
            with self._translate_errors():
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("SQLite at %s refused WAL mode; using %s", self.path, mode)
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store for {self.path} is closed")
        return self._conn

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Turn the SQLite errors a person can act on into StoreError naming the file."""
        try:
            yield
        except sqlite3.OperationalError as e:
            # locked (busy_timeout ran out), readonly, disk I/O error, disk full, cannot open…
            raise StoreError(f"SQLite database {self.path}: {e}") from e
        except sqlite3.DatabaseError as e:
            if type(e) is not sqlite3.DatabaseError:
                raise  # IntegrityError, ProgrammingError…: our bug, keep its traceback as is
            # "file is not a database", "database disk image is malformed"
            raise StoreError(f"SQLite database {self.path}: {e}") from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock, self._translate_errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.cursor()
            try:
                yield cur
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # If even ROLLBACK fails, the error that got us here is the one to report.
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        # Autocommit: each SELECT is its own consistent snapshot (WAL readers never block).
        with self._lock, self._translate_errors():
            cur = self._connection().cursor()
            try:
                yield cur
            finally:
                cur.close()

    def _migrate(self) -> None:
        with self._write() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite database {self.path} has schema version {version}, newer than this "
                    f"bot understands ({SCHEMA_VERSION}); upgrade the bot"
                )
            if version == 0:
                for statement in _SQLITE_SCHEMA:
                    cur.execute(statement)
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            # Later versions: `if version < 2: ...` steps here, then update schema_version.

    # -- health and lifetime -------------------------------------------------------------------

    def ping(self) -> None:
        """Raise StoreError unless the database can be written now: takes the write lock,
        writes a row and rolls it back."""

        class _Rollback(Exception):
            pass

        with suppress(_Rollback), self._write() as cur:
            cur.execute("UPDATE schema_version SET version = version")
            raise _Rollback

    def close(self) -> None:
        """Close the connection; idempotent. Later calls raise StoreError."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
