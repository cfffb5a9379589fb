"""Durable requests, their append-only audit log and their Slack outbox.

``open_store(DATABASE_URL)`` builds the store the bot uses: :class:`SQLiteStore` for
``sqlite:`` URLs (the embedded default), ``bot.store_postgres.PostgresStore`` for
``postgresql://`` and ``postgres://`` (with the ``postgres`` extra installed). Both are one
implementation, :class:`BaseSQLStore`:

* every statement in it is portable SQL (``?`` placeholders, which the psycopg subclass turns
  into ``%s`` in :meth:`BaseSQLStore._sql`), and every value is bound as a parameter, never
  formatted into the SQL text;
* the row <-> model mapping, the validation and the semantics live in :class:`BaseSQLStore`;
* what is a backend's own (DDL, connections, locking, error translation) lives in the subclass.

Timestamps: SQLite keeps ISO-8601 UTC text of fixed width (``2024-05-01T12:00:00.000000+00:00``),
so comparing them as text orders them in time; PostgreSQL keeps ``timestamptz``. They come back
as aware UTC datetimes. JSON columns (``outcome``, ``details``) are text on both, so they come
back exactly as they went in. Text that cannot be stored (a lone surrogate, which is not
Unicode; NUL, which PostgreSQL text cannot hold) is stored as U+FFFD, on both backends alike.

A state change, its audit entry and its outbox entries are written in one transaction.
``transition`` is a compare-and-set: of any number of concurrent callers (threads, processes or
replicas) asking for the same change, exactly one wins; the others get ``None`` and write
nothing.

One open request per email: ``email_key`` is the email lower-cased (by Python, so both backends
agree), and a partial UNIQUE index on it over the open states (pending, executing, unknown)
makes a second open request for the same address impossible, across processes and replicas;
``create`` turns the conflict into :class:`~bot.approvals.OpenRequestExists`.

The outbox: rows of (request, kind) to deliver to Slack, in order per request. A claimer leases
the head of each request's queue (its oldest entry neither delivered nor buried), delivers it,
then completes, retries (later, with a count and the error) or buries it (gives up; a buried
entry counts as done, so the queue moves on). Delivered and buried rows are kept for
inspection.

Schema version 2 (version 1 had no ``email_key`` and no outbox). A version-1 SQLite file is
migrated in place at start; see :meth:`SQLiteStore._migrate` for what happens when its data
already holds two open requests for one email.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self
from urllib.parse import unquote

from bot.approvals import (
    OPEN_STATES,
    TRANSITIONS,
    AuditEntry,
    OpenRequestExists,
    OutboxEntry,
    State,
    VerificationRequest,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

# Stored error texts are for a person reading the database; Slack's errors are short anyway.
MAX_ERROR_CHARS = 500


class StoreError(Exception):
    """The store cannot do what was asked; the message is safe to log and names nothing secret."""


class StoreConfigError(StoreError):
    """DATABASE_URL is not one the bot can use; the message never repeats the URL."""


# ---------------------------------------------------------------------------------------------
# DATABASE_URL

_URL_FORMS = "sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://…"
_SQLITE_FORMS = "sqlite:///relative.db or sqlite:////absolute/path.db"
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


def is_postgres_url(database_url: str) -> bool:
    """True when DATABASE_URL names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    scheme, sep, _ = (database_url or "").strip().partition("://")
    return bool(sep) and scheme.lower() in _POSTGRES_SCHEMES


def open_store(database_url: str, *, busy_timeout_ms: int = 5000) -> BaseSQLStore:
    """Open the store DATABASE_URL names, creating or migrating its schema.

    ``sqlite:///bot.db`` is relative to the current directory, ``sqlite:////var/lib/bot.db``
    is absolute; ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) needs the
    ``postgres`` extra. Raises StoreConfigError for a URL it cannot use (never echoing it: it
    may hold a password), and StoreError when the database cannot be opened.
    """
    if is_postgres_url(database_url):
        try:
            from bot.store_postgres import PostgresStore
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] not in {"psycopg", "psycopg_pool"}:
                raise
            raise StoreConfigError(
                "DATABASE_URL names a PostgreSQL database, but the PostgreSQL driver is not "
                "installed: pip install 'verify-email-bot[postgres]'"
            ) from None
        return PostgresStore(database_url)
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
            f"DATABASE_URL names a PostgreSQL database, not a SQLite file ({_SQLITE_FORMS})."
        )
    if scheme != "sqlite":
        raise StoreConfigError(
            f"DATABASE_URL uses a database this bot does not support; expected {_URL_FORMS}."
        )
    if not rest.startswith("/"):
        # sqlite://host/... : a host makes no sense for a file.
        raise StoreConfigError(
            "DATABASE_URL: a sqlite URL has three slashes before a relative path "
            f"and four before an absolute one: {_SQLITE_FORMS}."
        )
    if "?" in rest or "#" in rest:
        raise StoreConfigError(
            f"DATABASE_URL: a sqlite URL takes no ?options or #fragment; expected {_SQLITE_FORMS}."
        )
    raw_path = unquote(rest[1:])
    if not raw_path or raw_path.endswith("/"):
        raise StoreConfigError(f"DATABASE_URL names no database file; expected {_SQLITE_FORMS}.")
    if raw_path == ":memory:" or raw_path.startswith("file:"):
        raise StoreConfigError(
            "DATABASE_URL: requests must survive a restart, so an in-memory or URI-form SQLite "
            f"database is not supported; expected {_SQLITE_FORMS}."
        )
    if "\x00" in raw_path:
        raise StoreConfigError(f"DATABASE_URL is not a usable file path; expected {_SQLITE_FORMS}.")
    # Resolved now, so a later chdir cannot move the database and error messages are exact.
    return Path(os.path.abspath(raw_path))


# ---------------------------------------------------------------------------------------------
# Mapping between the model and rows: shared by every SQL store.

_REQUEST_COLUMNS = (
    "id, email, domain, reason, requester, state, created_at, expires_at, updated_at, "
    "channel, message_ts, decided_by, decision_note, outcome"
)
_AUDIT_COLUMNS = "request_id, at, actor, action, from_state, to_state, details"
_OUTBOX_COLUMNS = "id, request_id, kind, attempts, created_at, next_attempt_at, last_error"

_SELECT_REQUEST = f"SELECT {_REQUEST_COLUMNS} FROM requests"  # noqa: S608 -- constant column list

_INSERT_REQUEST = (
    f"INSERT INTO requests ({_REQUEST_COLUMNS}, email_key) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The compare-and-set. COALESCE keeps a column's value when the caller passes None, so one
# constant statement serves every transition. The state in the WHERE clause is the one read
# (and, on PostgreSQL, row-locked) in the same transaction, so the audit's from_state is exactly
# what was replaced.
_CAS = (
    "UPDATE requests SET state = ?, updated_at = ?, "
    "decided_by = COALESCE(?, decided_by), "
    "decision_note = COALESCE(?, decision_note), "
    "outcome = COALESCE(?, outcome) "
    "WHERE id = ? AND state = ?"
)
_CAS_UNEXPIRED = " AND expires_at > ?"
_CAS_UPDATED_BEFORE = " AND updated_at < ?"

_INSERT_AUDIT = (
    f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_OUTBOX = (
    "INSERT INTO outbox (request_id, kind, created_at, next_attempt_at, attempts) "
    "VALUES (?, ?, ?, ?, 0)"
)

# An entry still to do: neither delivered nor buried. (``dead_at`` is the "dead" flag, with the
# time it was given up.)
_UNDONE = "delivered_at IS NULL AND dead_at IS NULL"

# The head of each request's queues that is due and not leased. A request has two queues
# (lanes): direct messages (kinds starting "dm") and everything in the channel, so a DM that
# Slack keeps refusing never holds up the channel's record. FIFO per lane: no undone entry of
# the same request and lane has a smaller id. Ids follow commit order within a request, because
# every insert of a request's entries happens while that request's row is locked (see
# _lock_request).
_CLAIMABLE = (
    f"SELECT o.{_OUTBOX_COLUMNS.replace(', ', ', o.')} FROM outbox o "  # noqa: S608 -- constants
    "WHERE o.delivered_at IS NULL AND o.dead_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND p.id < o.id "
    "AND (substr(p.kind, 1, 2) = 'dm') = (substr(o.kind, 1, 2) = 'dm') "
    "AND p.delivered_at IS NULL AND p.dead_at IS NULL) "
    "AND o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?)"
)

_OPEN_VALUES = tuple(sorted(s.value for s in OPEN_STATES))

# Lone surrogates are not Unicode text and cannot be encoded as UTF-8, yet JSON from Slack can
# carry them ("\ud800"); PostgreSQL text cannot hold NUL. Both are stored as U+FFFD rather than
# failing the whole request (on every backend, so they behave the same).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _text(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value)


def _opt_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _json(value: dict[str, Any]) -> str:
    # json.dumps writes NUL as the escape \u0000, so only the surrogates need replacing here.
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def email_key(email: str) -> str:
    """What two emails are compared by for "one open request per email": lower-cased."""
    return _text(email).lower()


def _error_text(error: str) -> str:
    error = _text(str(error))
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    return error


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


def _kinds(kinds: Sequence[str]) -> list[str]:
    if isinstance(kinds, str):
        raise TypeError("outbox kinds must be a sequence of strings, not one string")
    out: list[str] = []
    for kind in kinds:
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"an outbox kind must be a non-empty string, not {kind!r}")
        out.append(_text(kind))
    return out


class _Cursor(Protocol):
    """The part of a DB-API cursor the shared code uses (sqlite3 and psycopg 3 both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class BaseSQLStore:
    """The Store, written once against a DB-API cursor; subclasses supply the connection.

    A subclass implements :meth:`_write` (a cursor inside one transaction, committed on success
    and rolled back on error) and :meth:`_read`, sets the locking clauses its SQL dialect has
    (``_FOR_UPDATE``, ``_CLAIM_LOCK``), tells unique violations apart
    (:meth:`_unique_violation`), and may override the ``_time_*`` and :meth:`_sql` hooks.

    Concurrency relies on each backend's own guarantees: SQLite runs every write transaction
    under its single write lock (``BEGIN IMMEDIATE``), so a read followed by a write inside it
    cannot interleave with another writer; PostgreSQL (READ COMMITTED) locks the request's row
    (``SELECT … FOR NO KEY UPDATE``) before it reads the state it will compare-and-set, skips
    outbox rows another claimer holds (``FOR UPDATE SKIP LOCKED``), and relies on the partial
    unique index for "one open request per email".
    """

    # Appended to a SELECT of one request row that the transaction will change.
    _FOR_UPDATE: ClassVar[str] = ""
    # Appended to the outbox claim's SELECT.
    _CLAIM_LOCK: ClassVar[str] = ""
    # The driver's integrity error classes (unique and foreign-key violations).
    _INTEGRITY_ERRORS: ClassVar[tuple[type[BaseException], ...]] = ()

    # -- hooks ---------------------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _unique_violation(self, error: BaseException) -> str | None:
        """``"id"`` for a duplicate request id, ``"open_email"`` for a second open request for
        one email, None for anything else."""
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

    def _outbox_from_row(self, row: Sequence[Any]) -> OutboxEntry:
        id_, request_id, kind, attempts, created_at, next_attempt_at, last_error = row
        return OutboxEntry(
            id=int(id_),
            request_id=request_id,
            kind=kind,
            attempts=int(attempts),
            created_at=self._time_from_db(created_at),
            next_attempt_at=self._time_from_db(next_attempt_at),
            last_error=last_error,
        )

    def _fetch_request(self, cur: _Cursor, request_id: str) -> VerificationRequest | None:
        cur.execute(self._sql(_SELECT_REQUEST + " WHERE id = ?"), (_text(request_id),))
        row = cur.fetchone()
        return None if row is None else self._request_from_row(row)

    def _fetch_open(self, cur: _Cursor, key: str) -> VerificationRequest | None:
        placeholders = ", ".join("?" * len(_OPEN_VALUES))
        cur.execute(
            self._sql(
                _SELECT_REQUEST + f" WHERE email_key = ? AND state IN ({placeholders}) "
                "ORDER BY created_at DESC, id DESC LIMIT 1"
            ),
            (key, *_OPEN_VALUES),
        )
        row = cur.fetchone()
        return None if row is None else self._request_from_row(row)

    def _lock_request(self, cur: _Cursor, request_id: str) -> str | None:
        """Lock the request's row for this transaction; its state, or None if it does not exist.

        Every insert of outbox entries happens under this lock (or the CAS's own row lock, or
        in the transaction that creates the request), so a request's entries are committed in
        id order, which the FIFO claim relies on.
        """
        cur.execute(
            self._sql("SELECT state FROM requests WHERE id = ?" + self._FOR_UPDATE),  # noqa: S608 -- constant clause
            (request_id,),
        )
        row = cur.fetchone()
        return None if row is None else str(row[0])

    def _insert_outbox(self, cur: _Cursor, request_id: str, kinds: Sequence[str], at: Any) -> None:
        for kind in kinds:
            cur.execute(self._sql(_INSERT_OUTBOX), (request_id, kind, at, at))

    # -- requests ------------------------------------------------------------------------------

    def create(
        self, request: VerificationRequest, actor: str, *, outbox: Sequence[str] = ()
    ) -> VerificationRequest:
        """Insert a pending request, its "create" audit entry and its ``outbox`` entries (due
        at once), in one transaction.

        Raises OpenRequestExists (writing nothing) when a request for the same email, compared
        case-insensitively, is pending, executing or unknown; expiry is not looked at here (the
        caller expires a stale pending one first). Atomic across processes and replicas: the
        partial unique index decides. Raises StoreError for a duplicate id.
        """
        if request.state is not State.PENDING:
            raise ValueError(f"a new request must be pending, not {request.state.value}")
        kinds = _kinds(outbox)
        key = email_key(request.email)
        created_at = self._time_to_db(request.created_at)
        row = (
            _text(request.id),
            _text(request.email),
            _text(request.domain),
            _text(request.reason),
            _text(request.requester),
            request.state.value,
            created_at,
            self._time_to_db(request.expires_at),
            self._time_to_db(request.updated_at),
            _opt_text(request.channel),
            _opt_text(request.message_ts),
            _opt_text(request.decided_by),
            _opt_text(request.decision_note),
            None if request.outcome is None else _json(request.outcome),
            key,
        )
        audit = (
            _text(request.id),
            created_at,
            _text(actor),
            "create",
            None,
            State.PENDING.value,
            _json({"email": request.email, "domain": request.domain, "reason": request.reason}),
        )

        def duplicate_id() -> StoreError:
            return StoreError(f"a request with id {request.id!r} already exists")

        # A conflict with an open request that is closed by the time we look for it is retried;
        # twice in a row would take a request created and closed within milliseconds, twice.
        for _ in range(3):
            try:
                with self._write() as cur:
                    cur.execute(self._sql("SELECT 1 FROM requests WHERE id = ?"), (row[0],))
                    if cur.fetchone() is not None:
                        raise duplicate_id()
                    existing = self._fetch_open(cur, key)
                    if existing is not None:
                        raise OpenRequestExists(existing)
                    cur.execute(self._sql(_INSERT_REQUEST), row)
                    cur.execute(self._sql(_INSERT_AUDIT), audit)
                    self._insert_outbox(cur, row[0], kinds, created_at)
                    stored = self._fetch_request(cur, row[0])
            except self._INTEGRITY_ERRORS as e:
                # Another process committed between our check and our insert.
                which = self._unique_violation(e)
                if which == "id":
                    raise duplicate_id() from None
                if which != "open_email":
                    raise
                existing = self.find_open(request.email)
                if existing is not None:
                    raise OpenRequestExists(existing) from None
                continue
            if stored is None:  # cannot happen: inserted in this very transaction
                raise StoreError(f"request {request.id!r} vanished while being created")
            return stored
        raise StoreError(
            f"could not create request {request.id!r}: another request for the same email "
            "kept being opened and closed at the same moment"
        )

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
        updated_before: datetime | None = None,
        outbox: Sequence[str] = (),
    ) -> VerificationRequest | None:
        """Atomically move the request from one of ``from_states`` to ``to_state``.

        Returns the updated request, or None (writing nothing) when the request does not
        exist, is in none of ``from_states``, (``unexpired_only``) has ``expires_at <= now``,
        or (``updated_before``) changed at or after that time.
        ``decided_by``, ``decision_note`` and ``outcome`` are written when not None. The
        winner's audit entry and one outbox entry per ``outbox`` kind (due at ``now``) are
        written in the same transaction. Raises ValueError for a transition TRANSITIONS does
        not allow, whatever the stored state.
        """
        _validate_transition(from_states, to_state)
        _check_aware(now, "now")
        kinds = _kinds(outbox)
        request_id = _text(request_id)  # ids arrive in button values: bound, never trusted
        to_state = State(to_state)
        at = self._time_to_db(now)
        audit_details = _json(details or {})
        outcome_json = None if outcome is None else _json(outcome)
        with self._write() as cur:
            # SQLite: the write lock is held from the transaction's start; PostgreSQL: the row
            # is locked by this read. Either way the update below sees this state; it re-checks
            # it anyway (it is the CAS).
            state = self._lock_request(cur, request_id)
            if state is None or State(state) not in from_states:
                return None
            current = State(state)
            params: tuple[Any, ...] = (
                to_state.value,
                at,
                _opt_text(decided_by),
                _opt_text(decision_note),
                outcome_json,
                request_id,
                current.value,
            )
            sql = _CAS
            if unexpired_only:
                sql += _CAS_UNEXPIRED
                params = (*params, at)
            if updated_before is not None:
                _check_aware(updated_before, "updated_before")
                sql += _CAS_UPDATED_BEFORE
                params = (*params, self._time_to_db(updated_before))
            cur.execute(self._sql(sql), params)
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
            self._insert_outbox(cur, request_id, kinds, at)
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

    # -- queries for the sweeps, the audit export and "one open request per email" -------------

    def find_open(self, email: str) -> VerificationRequest | None:
        """The newest request for ``email`` (compared case-insensitively) in an open state
        (pending, executing, unknown); there is at most one.

        A pending one may be past its expiry if the sweep has not run: check ``is_expired``.
        """
        with self._read() as cur:
            return self._fetch_open(cur, email_key(email))

    def list_requests(
        self,
        states: frozenset[State] | None = None,
        *,
        expires_before: datetime | None = None,
        updated_before: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[VerificationRequest]:
        """Requests oldest first (by ``created_at``): those in ``states`` (all when None), with
        ``expires_at < expires_before``, ``updated_at < updated_before`` and
        ``created_at >= created_since``, for each that is given."""
        # The SQL is assembled only from the constant fragments below and "?" placeholders;
        # every value is bound.
        where: list[str] = []
        params: list[Any] = []
        if states is not None:
            if not states:
                return []
            ordered = sorted(State(s).value for s in states)
            where.append("state IN (" + ", ".join("?" * len(ordered)) + ")")
            params.extend(ordered)
        for column, op, value in (
            ("expires_at", "<", expires_before),
            ("updated_at", "<", updated_before),
            ("created_at", ">=", created_since),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(self._time_to_db(value))
        sql = _SELECT_REQUEST
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        with self._read() as cur:
            cur.execute(self._sql(sql), params)
            return [self._request_from_row(r) for r in cur.fetchall()]

    # -- the outbox ----------------------------------------------------------------------------

    def enqueue(self, request_id: str, kinds: Sequence[str], *, now: datetime) -> None:
        """Append one outbox entry per kind to the request's queue, due at ``now``.

        Raises KeyError for an unknown request.
        """
        kinds = _kinds(kinds)
        _check_aware(now, "now")
        request_id = _text(request_id)
        if not kinds:
            return
        with self._write() as cur:
            if self._lock_request(cur, request_id) is None:
                raise KeyError(request_id)
            self._insert_outbox(cur, request_id, kinds, self._time_to_db(now))

    def claim_outbox(
        self,
        *,
        now: datetime,
        owner: str,
        lease_seconds: float,
        limit: int = 50,
        request_id: str | None = None,
    ) -> list[OutboxEntry]:
        """Lease and return the heads of the requests' queues that are due, oldest first.

        An entry is returned only when every earlier entry of its request is delivered or
        buried (strict FIFO per request), when ``next_attempt_at <= now``, and when no lease on
        it is running (``lease_until`` unset or ``<= now``: an expired lease may be taken
        over). It is then leased to ``owner`` until ``now + lease_seconds``. At most ``limit``
        entries; with ``request_id``, only that request's head. Two claimers, in any threads or
        processes, never get the same entry while its lease runs.
        """
        _check_aware(now, "now")
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        at = self._time_to_db(now)
        until = self._time_to_db(now + timedelta(seconds=lease_seconds))
        sql = _CLAIMABLE
        params: list[Any] = [at, at]
        if request_id is not None:
            sql += " AND o.request_id = ?"
            params.append(_text(request_id))
        sql += " ORDER BY o.id LIMIT ?" + self._CLAIM_LOCK
        params.append(int(limit))
        with self._write() as cur:
            cur.execute(self._sql(sql), params)
            entries = [self._outbox_from_row(r) for r in cur.fetchall()]
            if entries:
                ids = [e.id for e in entries]
                cur.execute(
                    self._sql(
                        "UPDATE outbox SET lease_owner = ?, lease_until = ? "  # noqa: S608 -- placeholders only
                        "WHERE id IN (" + ", ".join("?" * len(ids)) + ")"
                    ),
                    (_text(owner), until, *ids),
                )
        return entries

    def _finish_leased(
        self, entry_id: int, owner: str, assignments: str, values: tuple[Any, ...]
    ) -> None:
        # Only while `owner` holds the lease: one that expired and was taken over (or that a
        # retry released) is not ours any more, and the entry is left to its new holder.
        with self._write() as cur:
            cur.execute(
                self._sql(
                    f"UPDATE outbox SET {assignments} "  # noqa: S608 -- constant fragments
                    f"WHERE id = ? AND lease_owner = ? AND {_UNDONE}"
                ),
                (*values, int(entry_id), _text(owner)),
            )

    def complete_outbox(self, entry_id: int, owner: str, *, now: datetime) -> None:
        """Mark the entry delivered, if ``owner`` still holds its lease; else do nothing."""
        _check_aware(now, "now")
        self._finish_leased(entry_id, owner, "delivered_at = ?", (self._time_to_db(now),))

    def retry_outbox(
        self, entry_id: int, owner: str, *, error: str, next_attempt_at: datetime
    ) -> None:
        """Count a failed attempt, keep its error, release the lease and make the entry due
        again at ``next_attempt_at``; only if ``owner`` holds the lease."""
        _check_aware(next_attempt_at, "next_attempt_at")
        self._finish_leased(
            entry_id,
            owner,
            "attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
            "lease_owner = NULL, lease_until = NULL",
            (_error_text(error), self._time_to_db(next_attempt_at)),
        )

    def bury_outbox(self, entry_id: int, owner: str, *, error: str, now: datetime) -> None:
        """Give up on the entry: it is dead (kept, with its error, for inspection) and counts as
        done, so the request's next entry becomes its head; only if ``owner`` holds the lease."""
        _check_aware(now, "now")
        self._finish_leased(
            entry_id,
            owner,
            "attempts = attempts + 1, last_error = ?, dead_at = ?, lease_until = NULL",
            (_error_text(error), self._time_to_db(now)),
        )

    def outbox_entries(self, request_id: str | None = None) -> list[OutboxEntry]:
        """Entries neither delivered nor buried (of one request, or all), oldest first."""
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {_UNDONE}"  # noqa: S608 -- constants
        params: list[Any] = []
        if request_id is not None:
            sql += " AND request_id = ?"
            params.append(_text(request_id))
        with self._read() as cur:
            cur.execute(self._sql(sql + " ORDER BY id"), params)
            return [self._outbox_from_row(r) for r in cur.fetchall()]


# ---------------------------------------------------------------------------------------------
# SQLite

_OPEN_IN = "state IN (" + ", ".join(f"'{v}'" for v in _OPEN_VALUES) + ")"

# The partial unique index behind "one open request per email".
_SQLITE_OPEN_EMAIL_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS requests_open_email ON requests (email_key) "
    f"WHERE {_OPEN_IN}"
)

_SQLITE_OUTBOX = (
    """
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id      TEXT NOT NULL REFERENCES requests (id),
        kind            TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        lease_owner     TEXT,
        lease_until     TEXT,
        delivered_at    TEXT,
        dead_at         TEXT
    )
    """,
    # The claim: each request's undone entries in id order (the FIFO head), and what is due.
    f"CREATE INDEX outbox_undone ON outbox (request_id, id) WHERE {_UNDONE}",
    f"CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE {_UNDONE}",
)

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
        outcome       TEXT,
        email_key     TEXT NOT NULL
    )
    """,
    "CREATE INDEX requests_email_key ON requests (email_key, state)",
    "CREATE INDEX requests_state_expires ON requests (state, expires_at)",
    "CREATE INDEX requests_created ON requests (created_at)",
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
    *_SQLITE_OUTBOX,
)

# Version 1 -> 2: email_key (backfilled by Python, whose lower() is the one create uses), the
# outbox, and indexes for the new queries. The unique index follows in _ensure_open_email_index.
_SQLITE_V1_TO_V2 = (
    "ALTER TABLE requests ADD COLUMN email_key TEXT NOT NULL DEFAULT ''",
    "DROP INDEX IF EXISTS requests_email_state",
    "CREATE INDEX requests_email_key ON requests (email_key, state)",
    "CREATE INDEX requests_created ON requests (created_at)",
    *_SQLITE_OUTBOX,
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

    _INTEGRITY_ERRORS = (sqlite3.IntegrityError,)

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
                mode = self._set_wal(conn)
                if str(mode).lower() != "wal":
                    log.warning("SQLite at %s refused WAL mode; using %s", self.path, mode)
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> str:
        """Switch the file to WAL mode, waiting up to busy_timeout for the lock it needs.

        SQLite does not call its busy handler for a journal-mode change, so when several
        processes open a new file at once, some get "database is locked" at once: retried here.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

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
                raise  # IntegrityError, ProgrammingError…: handled by the caller, or our bug
            # "file is not a database", "database disk image is malformed"
            raise StoreError(f"SQLite database {self.path}: {e}") from e

    def _unique_violation(self, error: BaseException) -> str | None:
        message = str(error)
        if "requests.email_key" in message:
            return "open_email"
        if "requests.id" in message:
            return "id"
        return None

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
        """Create the schema, or bring an older one up to SCHEMA_VERSION, in one transaction.

        Version 1 -> 2 keeps every row as it is. If the old data already holds two or more
        open requests for one email (version 1 did not forbid it), the unique index cannot be
        built: the store starts anyway, logs a warning naming those requests, and still refuses
        a *new* open request for such an email (``create`` checks inside its write transaction,
        which SQLite's single write lock makes atomic). The index is tried again at every start
        and is there as soon as those requests have been closed (they expire within
        REQUEST_TTL).
        """
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
            if version == 1:
                log.info("Migrating SQLite database %s from schema version 1 to 2", self.path)
                for statement in _SQLITE_V1_TO_V2:
                    cur.execute(statement)
                cur.execute("SELECT id, email FROM requests")
                for request_id, email in cur.fetchall():
                    cur.execute(
                        "UPDATE requests SET email_key = ? WHERE id = ?",
                        (email_key(email), request_id),
                    )
                cur.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            self._ensure_open_email_index(cur)

    def _ensure_open_email_index(self, cur: sqlite3.Cursor) -> None:
        cur.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'requests_open_email'"
        )
        if cur.fetchone() is not None:
            return
        try:
            cur.execute(_SQLITE_OPEN_EMAIL_INDEX)
        except sqlite3.IntegrityError:
            # Only this statement failed; the transaction (and the migration) goes on.
            cur.execute(
                f"SELECT id FROM requests WHERE {_OPEN_IN} AND email_key IN ("  # noqa: S608 -- constants
                f"SELECT email_key FROM requests WHERE {_OPEN_IN} "
                "GROUP BY email_key HAVING COUNT(*) > 1) ORDER BY email_key, created_at"
            )
            ids = [r[0] for r in cur.fetchall()]
            log.warning(
                "SQLite database %s holds more than one open request for the same email "
                "(requests %s, from before one open request per email was enforced). They are "
                "kept as they are; new requests for those emails are refused until they close.",
                self.path,
                ", ".join(ids),
            )

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
