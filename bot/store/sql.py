"""The store, written once in portable SQL: :class:`BaseSQLStore`.

* every statement here is portable SQL (``?`` placeholders, which the psycopg subclass turns
  into ``%s`` in :meth:`BaseSQLStore._sql`), and every value is bound as a parameter, never
  formatted into the SQL text;
* the row <-> model mapping, the validation and the semantics live here;
* what is a backend's own (connections, locking, error translation, its schema's dialect) lives
  in the subclass (bot/store/sqlite.py, bot/store/postgres.py).

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
``create`` turns the conflict into :class:`~bot.domain.model.OpenRequestExists`.

The outbox: rows of (request, notice, lane, audit entry) to deliver to Slack, in order per
request and lane. A claimer leases the head of each lane (its oldest entry neither delivered nor
buried), delivers it, then completes, retries (later, with a count and the error) or buries it
(gives up; a buried entry counts as done, so the queue moves on). Delivered and buried rows are
kept for inspection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, Self

from bot.domain.inputs import domain_variants, other_forms
from bot.domain.model import (
    RECORD_ONLY_ACTIONS,
    STAYING_ACTIONS,
    TRANSITIONS,
    VIEW_ACTIONS,
    Action,
    Approval,
    AuditEntry,
    OpenRequestExists,
    State,
    StoreFigures,
    VerificationRequest,
)
from bot.domain.outcomes import outcome_from_dict, outcome_to_dict
from bot.domain.ports import Announce, OutboxEntry, PostedButtons, Transition
from bot.domain.views import DomainReading, view_from_dict, view_to_dict
from bot.store.errors import StoreError
from bot.store.schema import OPEN_VALUES, UNDONE

# Stored error texts are for a person reading the database; Slack's errors are short anyway.
MAX_ERROR_CHARS = 500

_REQUEST_COLUMNS = (
    "id, email, domain, reason, requester, state, created_at, expires_at, updated_at, "
    "channel, message_ts, decided_by, decision_note, outcome, approvals, version, "
    "provider_view, readback, claim_id, lease_until"
)
_AUDIT_COLUMNS = "request_id, at, actor, action, from_state, to_state, details"
_OUTBOX_COLUMNS = (
    "id, request_id, kind, lane, attempts, created_at, next_attempt_at, last_error, audit_id, "
    "lease_owner"
)
_BUTTONS_COLUMNS = "id, request_id, surface, channel, ts, audit_id, posted_at"

_SELECT_REQUEST = f"SELECT {_REQUEST_COLUMNS} FROM requests"  # noqa: S608 -- constant column list

_INSERT_REQUEST = (
    f"INSERT INTO requests ({_REQUEST_COLUMNS}, email_key) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The compare-and-set. COALESCE keeps a column's value when the caller passes None, so one
# constant statement serves every transition. The state in the WHERE clause is the one read
# (and, on PostgreSQL, row-locked) in the same transaction, so the audit's from_state is exactly
# what was replaced.
_CAS = (
    "UPDATE requests SET state = ?, updated_at = ?, version = version + 1, "
    "decided_by = COALESCE(?, decided_by), "
    "decision_note = COALESCE(?, decision_note), "
    "outcome = COALESCE(?, outcome), "
    "approvals = COALESCE(?, approvals), "
    "readback = COALESCE(?, readback), "
    "claim_id = COALESCE(?, claim_id), "
    "lease_until = COALESCE(?, lease_until) "
    "WHERE id = ? AND state = ?"
)
# A reading of the provider's view is not a change of the request: neither its state, nor
# updated_at (which the sweeps compare), nor its version.
_SET_VIEW = "UPDATE requests SET provider_view = ? WHERE id = ?"
_SET_READBACK = "UPDATE requests SET readback = ? WHERE id = ?"
_CAS_UNEXPIRED = " AND expires_at > ?"
_CAS_UPDATED_BEFORE = " AND updated_at < ?"
_CAS_VERSION = " AND version = ?"
# The fence (the request's current claim is the caller's) and the sweep's test (its lease ran
# out). NULL equals nothing: a request without a claim or lease never matches either.
_CAS_FENCE = " AND claim_id = ?"
_CAS_LEASE_EXPIRED = " AND lease_until < ?"
# The entries an outcome held for its read-back (never tried yet, due later): due now.
_RELEASE_HELD = (
    "UPDATE outbox SET next_attempt_at = ? "  # noqa: S608 -- constant fragment
    f"WHERE request_id = ? AND {UNDONE} AND attempts = 0 AND next_attempt_at > ?"
)
# A lease is renewed only by its claim's holder, while it runs.
_RENEW_LEASE = (
    "UPDATE requests SET lease_until = ? "
    "WHERE id = ? AND state = ? AND claim_id = ? AND lease_until >= ?"
)

_INSERT_AUDIT = (
    f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_OUTBOX = (
    "INSERT INTO outbox (request_id, kind, lane, audit_id, created_at, next_attempt_at, "
    "attempts) VALUES (?, ?, ?, ?, ?, ?, 0)"
)

# The head of each request's queues that is due and not leased. A request has two queues
# (lanes, stored with each entry): direct messages and everything in the channel, so a DM that
# Slack keeps refusing never holds up the channel's record. FIFO per lane: no undone entry of
# the same request and lane has a smaller id. Ids follow commit order within a request, because
# every insert of a request's entries happens while that request's row is locked (see
# _lock_request).
_CLAIMABLE = (
    f"SELECT o.{_OUTBOX_COLUMNS.replace(', ', ', o.')} FROM outbox o "  # noqa: S608 -- constants
    "WHERE o.delivered_at IS NULL AND o.dead_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND p.id < o.id "
    "AND p.lane = o.lane AND p.delivered_at IS NULL AND p.dead_at IS NULL) "
    "AND o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?)"
)

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


def _approvals_json(approvals: Sequence[Approval], withdrawn: Sequence[Approval] = ()) -> str:
    """The approvals column: those counted, then (``"counts": false``) those that no longer
    count because their approver lost the role."""
    return _json_list(
        [{"by": a.approver, "at": a.at.astimezone(UTC).isoformat()} for a in approvals]
        + [
            {"by": a.approver, "at": a.at.astimezone(UTC).isoformat(), "counts": False}
            for a in withdrawn
        ]
    )


def _json_list(value: list[Any]) -> str:
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _approvals_from_json(text: str | None, *, counted: bool = True) -> tuple[Approval, ...]:
    """The approvals that count (``counted``), or those that no longer do."""
    items = json.loads(text) if text else []
    return tuple(
        Approval(str(a["by"]), datetime.fromisoformat(a["at"]).astimezone(UTC))
        for a in items
        if a.get("counts", True) is counted
    )


def _reading(text: str | None) -> DomainReading | None:
    return None if text is None else view_from_dict(json.loads(text))


def email_key(email: str) -> str:
    """What two emails are compared by for "one open request per email": lower-cased."""
    return _text(email).lower()


def email_keys(email: str) -> tuple[str, ...]:
    """The keys a request for ``email`` may be stored under: its own, and that of the email
    with its domain in its other IDNA form. New rows hold the normalised (Unicode) form
    (bot/domain/inputs.py); rows written before addresses were normalised hold whichever form
    was typed, and are found all the same."""
    return tuple(dict.fromkeys(email_key(e) for e in (email, *other_forms(email))))


def _error_text(error: str) -> str:
    error = _text(str(error))
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    return error


def _check_aware(dt: datetime, name: str) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got a naive one")


def _validate_transition(
    from_states: frozenset[State], to_state: State, action: Action | None = None
) -> None:
    if not from_states:
        raise ValueError("transition needs at least one from_state")
    to_state = State(to_state)
    if action is not None and Action(action) in VIEW_ACTIONS:
        raise ValueError(f"{Action(action).value} is recorded with record_view")
    if action is not None and Action(action) in RECORD_ONLY_ACTIONS:
        raise ValueError(f"{Action(action).value} is recorded only, never as a transition")
    if action is not None and Action(action) in STAYING_ACTIONS:
        # Recorded without moving: only a pending request, which stays pending.
        if from_states != {State.PENDING} or to_state is not State.PENDING:
            raise ValueError(f"{Action(action).value} keeps a pending request pending")
        return
    illegal = sorted(s.value for s in map(State, from_states) if to_state not in TRANSITIONS[s])
    if illegal:
        raise ValueError(f"illegal transition {','.join(illegal)} -> {to_state.value}")


def _entries(entries: object) -> list[tuple[str, str]]:
    """Outbox entries to queue, checked: each a (kind, queue) pair of non-empty texts."""
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        raise TypeError("entries must be a sequence of (kind, queue) pairs, not one string")
    checked = []
    for entry in entries:
        if not (isinstance(entry, tuple) and len(entry) == 2 and all(entry)):
            raise ValueError(f"an outbox entry is a (kind, queue) pair, not {entry!r}")
        kind, queue = entry
        if not (isinstance(kind, str) and isinstance(queue, str)):
            raise ValueError(f"an outbox entry is a (kind, queue) pair of texts, not {entry!r}")
        checked.append((kind, queue))
    return checked


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

    # What the edge tells Slack of each change (bot/slack/notices.py), queued in the outbox in
    # the change's own transaction. None: nothing is queued (the command line's reads, which
    # change nothing, open the store without it).
    announce: Announce | None = None

    # -- hooks ---------------------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _probe_read(self) -> AbstractContextManager[_Cursor]:
        """A cursor for the health and metrics reads (``metric_figures``): by default the
        ordinary read; a store with a process-wide lock gives them a connection of their own,
        so a scrape never holds up an acknowledgement, nor waits behind a slow write."""
        return self._read()

    def _unique_violation(self, error: BaseException) -> str | None:
        """``"id"`` for a duplicate request id, ``"open_email"`` for a second open request for
        one email, None for anything else."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raise StoreError unless the database can be written now: takes the write lock,
        writes a row in a transaction and rolls it back."""

        class _Rollback(Exception):
            pass

        with suppress(_Rollback), self._write() as cur:
            cur.execute("UPDATE schema_version SET version = version")
            raise _Rollback

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
            approvals,
            version,
            view,
            readback,
            claim_id,
            lease_until,
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
            outcome=None if outcome is None else outcome_from_dict(json.loads(outcome)),
            approvals=_approvals_from_json(approvals),
            withdrawn=_approvals_from_json(approvals, counted=False),
            version=int(version),
            view=_reading(view),
            readback=_reading(readback),
            claim_id=claim_id,
            lease_until=None if lease_until is None else self._time_from_db(lease_until),
        )

    def _audit_from_row(self, row: Sequence[Any]) -> AuditEntry:
        id_, request_id, at, actor, action, from_state, to_state, details = row
        return AuditEntry(
            id=int(id_),
            request_id=request_id,
            at=self._time_from_db(at),
            actor=actor,
            action=action,
            from_state=None if from_state is None else State(from_state),
            to_state=State(to_state),
            details=json.loads(details) if details else {},
        )

    def _outbox_from_row(self, row: Sequence[Any]) -> OutboxEntry:
        (
            id_,
            request_id,
            kind,
            lane,
            attempts,
            created_at,
            next_attempt_at,
            last_error,
            audit_id,
            lease_owner,
        ) = row
        return OutboxEntry(
            id=int(id_),
            request_id=request_id,
            kind=kind,
            queue=lane,
            attempts=int(attempts),
            created_at=self._time_from_db(created_at),
            next_attempt_at=self._time_from_db(next_attempt_at),
            last_error=last_error,
            audit_id=None if audit_id is None else int(audit_id),
            # Undone and leased: a claim that failed to finish (read before this claim's lease).
            tried=int(attempts) > 0 or lease_owner is not None,
        )

    def _fetch_request(self, cur: _Cursor, request_id: str) -> VerificationRequest | None:
        cur.execute(self._sql(_SELECT_REQUEST + " WHERE id = ?"), (_text(request_id),))
        row = cur.fetchone()
        return None if row is None else self._request_from_row(row)

    def _fetch_open(self, cur: _Cursor, email: str) -> VerificationRequest | None:
        keys = email_keys(email)
        placeholders = ", ".join("?" * len(OPEN_VALUES))
        cur.execute(
            self._sql(
                _SELECT_REQUEST + f" WHERE email_key IN ({', '.join('?' * len(keys))}) "
                f"AND state IN ({placeholders}) ORDER BY created_at DESC, id DESC LIMIT 1"
            ),
            (*keys, *OPEN_VALUES),
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

    def _insert_audit(self, cur: _Cursor, row: tuple[Any, ...]) -> int:
        """Append one audit entry; returns its id (SQLite's lastrowid; PostgreSQL overrides)."""
        cur.execute(self._sql(_INSERT_AUDIT), row)
        row_id = getattr(cur, "lastrowid", None)
        if not isinstance(row_id, int):
            raise StoreError("the database did not say which audit entry it wrote")
        return row_id

    def _insert_outbox(
        self,
        cur: _Cursor,
        request_id: str,
        entries: Sequence[tuple[str, str]],
        at: Any,
        audit_id: int | None,
        due: Any = None,
    ) -> None:
        """Queue ``entries`` ((kind, queue) pairs) for the request, linked to ``audit_id``."""
        for kind, queue in _entries(entries):
            cur.execute(
                self._sql(_INSERT_OUTBOX),
                (request_id, _text(kind), _text(queue), audit_id, at, at if due is None else due),
            )

    def _told(self, action: Action) -> Sequence[tuple[str, str]]:
        """What the edge tells Slack of a change of ``action``: its outbox entries."""
        return () if self.announce is None else self.announce(Action(action))

    # -- requests ------------------------------------------------------------------------------

    def create(self, request: VerificationRequest, actor: str) -> VerificationRequest:
        """Insert a pending request, its "create" audit entry and what the edge tells of it
        (due at once, linked to that audit entry), in one transaction.

        Raises OpenRequestExists (writing nothing) when a request for the same email, compared
        case-insensitively, is pending, executing or unknown; expiry is not looked at here (the
        caller expires a stale pending one first). Atomic across processes and replicas: the
        partial unique index decides. Raises StoreError for a duplicate id.
        """
        if request.state is not State.PENDING:
            raise ValueError(f"a new request must be pending, not {request.state.value}")
        queued = self._told(Action.CREATE)
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
            None if request.outcome is None else _json(outcome_to_dict(request.outcome)),
            _approvals_json(request.approvals),
            0,
            None if request.view is None else _json(view_to_dict(request.view)),
            None if request.readback is None else _json(view_to_dict(request.readback)),
            _opt_text(request.claim_id),
            None if request.lease_until is None else self._time_to_db(request.lease_until),
            key,
        )
        audit = (
            _text(request.id),
            created_at,
            _text(actor),
            Action.CREATE.value,
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
                    existing = self._fetch_open(cur, request.email)
                    if existing is not None:
                        raise OpenRequestExists(existing)
                    cur.execute(self._sql(_INSERT_REQUEST), row)
                    audit_id = self._insert_audit(cur, audit)
                    self._insert_outbox(cur, row[0], queued, created_at, audit_id)
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

    def transition(self, change: Transition) -> VerificationRequest | None:
        """Atomically carry out ``change``: move the request from one of its ``from_states`` to
        its ``to_state``.

        Returns the updated request, or None (writing nothing) when the request does not
        exist, is in none of ``from_states``, (``unexpired_only``) has ``expires_at <= now``,
        or (``updated_before``) changed at or after that time. ``decided_by``,
        ``decision_note`` and ``outcome`` are written when not None. The winner's audit entry
        and what the edge tells of its action (due at ``now``, or at ``held_until``, linked to
        that audit entry) are written in the same transaction. Raises ValueError for a
        transition TRANSITIONS does not allow, whatever the stored state.
        """
        _validate_transition(change.from_states, change.to_state, change.action)
        _check_aware(change.now, "now")
        queued = self._told(change.action)
        request_id = _text(change.request_id)  # ids arrive in button values: never trusted
        to_state = State(change.to_state)
        at = self._time_to_db(change.now)
        audit_details = _json(change.audit_details)
        outcome = change.outcome
        outcome_json = None if outcome is None else _json(outcome_to_dict(outcome))
        with self._write() as cur:
            # SQLite: the write lock is held from the transaction's start; PostgreSQL: the row
            # is locked by this read. Either way the update below sees this state; it re-checks
            # it anyway (it is the CAS).
            state = self._lock_request(cur, request_id)
            if state is None or State(state) not in change.from_states:
                return None
            current = State(state)
            params: tuple[Any, ...] = (
                to_state.value,
                at,
                _opt_text(change.decided_by),
                _opt_text(change.decision_note),
                outcome_json,
                None
                if change.approvals is None
                else _approvals_json(change.approvals, change.withdrawn),
                None if change.readback is None else _json(view_to_dict(change.readback)),
                _opt_text(change.claim_id),
                None if change.lease_until is None else self._time_to_db(change.lease_until),
                request_id,
                current.value,
            )
            sql = _CAS
            if change.unexpired_only:
                sql += _CAS_UNEXPIRED
                params = (*params, at)
            if change.updated_before is not None:
                _check_aware(change.updated_before, "updated_before")
                sql += _CAS_UPDATED_BEFORE
                params = (*params, self._time_to_db(change.updated_before))
            if change.expected_version is not None:
                sql += _CAS_VERSION
                params = (*params, int(change.expected_version))
            if change.fence is not None:
                sql += _CAS_FENCE
                params = (*params, _text(change.fence))
            if change.lease_expired_by is not None:
                sql += _CAS_LEASE_EXPIRED
                params = (*params, self._time_to_db(change.lease_expired_by))
            cur.execute(self._sql(sql), params)
            if cur.rowcount != 1:
                return None
            audit_id = self._insert_audit(
                cur,
                (
                    request_id,
                    at,
                    _text(change.actor),
                    _text(Action(change.action).value),
                    current.value,
                    to_state.value,
                    audit_details,
                ),
            )
            due = None if change.held_until is None else self._time_to_db(change.held_until)
            if change.fence is not None and due is None:
                # An outcome told at once (no read-back to wait for): what its claim held
                # ("calling the provider…") is due now too, so it never holds the lane up.
                cur.execute(self._sql(_RELEASE_HELD), (at, request_id, at))
            self._insert_outbox(cur, request_id, queued, at, audit_id, due)
            return self._fetch_request(cur, request_id)

    def record_view(
        self,
        request_id: str,
        reading: DomainReading,
        *,
        action: Action,
        actor: str,
        now: datetime,
        states: frozenset[State] | None = None,
    ) -> VerificationRequest | None:
        """Store a reading of the provider's view with the request, whatever its state: as its
        ``view`` (``Action.LOOKUP``, when it was made) or its ``readback`` (``Action.CHECK``,
        ``Action.READBACK``: the latter also makes due now what the call's outcome held for it,
        see ``Transition.held_until``).

        In one transaction: the column, an audit entry (from and to the current state, the
        reading in its details) and what the edge tells of the action. Neither the state, nor
        ``updated_at``, nor ``version`` changes. None when the request does not exist.

        With ``states``, checked under the row's lock: a request in none of them gets only the
        audit entry (``"shown": false`` beside the reading), neither the column nor the telling;
        the request returned is then in a state outside ``states``.
        """
        if Action(action) not in VIEW_ACTIONS:
            raise ValueError(f"{Action(action).value} does not record a reading")
        _check_aware(now, "now")
        queued = self._told(action)
        request_id = _text(request_id)
        at = self._time_to_db(now)
        reading_json = _json(view_to_dict(reading))
        sql = _SET_VIEW if action is Action.LOOKUP else _SET_READBACK
        allowed = None if states is None else {State(s).value for s in states}
        with self._write() as cur:
            state = self._lock_request(cur, request_id)
            if state is None:
                return None
            shown = allowed is None or state in allowed
            details: dict[str, Any] = {"reading": view_to_dict(reading)}
            if shown:
                cur.execute(self._sql(sql), (reading_json, request_id))
            else:
                details["shown"] = False
            audit_id = self._insert_audit(
                cur,
                (
                    request_id,
                    at,
                    _text(actor),
                    Action(action).value,
                    state,
                    state,
                    _json(details),
                ),
            )
            if shown:
                self._insert_outbox(cur, request_id, queued, at, audit_id)
            if action is Action.READBACK:
                # The outcome's notices were held for this reading: due now.
                cur.execute(self._sql(_RELEASE_HELD), (at, request_id, at))
            return self._fetch_request(cur, request_id)

    def renew_lease(
        self, request_id: str, claim_id: str, *, until: datetime, now: datetime
    ) -> bool:
        """Extend the lease of claim ``claim_id`` to ``until``: only while the request is
        executing under that claim and its lease runs at ``now`` (a lease that ran out is lost,
        swept or not). True when it did. Neither the audit log, nor ``updated_at``, nor
        ``version`` changes: a renewal is no change of the request."""
        _check_aware(until, "until")
        _check_aware(now, "now")
        with self._write() as cur:
            cur.execute(
                self._sql(_RENEW_LEASE),
                (
                    self._time_to_db(until),
                    _text(request_id),
                    State.EXECUTING.value,
                    _text(claim_id),
                    self._time_to_db(now),
                ),
            )
            return cur.rowcount == 1

    def record_late(
        self,
        request_id: str,
        *,
        claim_id: str | None,
        actor: str,
        now: datetime,
        details: Mapping[str, Any],
    ) -> VerificationRequest | None:
        """Append a ``late_answer`` audit entry (the claim it answers, ``claim_id``, in its
        details beside ``details``), from and to the request's current state, which does not
        change. The request, or None when there is no such request."""
        _check_aware(now, "now")
        request_id = _text(request_id)
        entry = dict(details) | {"claim_id": claim_id}
        with self._write() as cur:
            state = self._lock_request(cur, request_id)
            if state is None:
                return None
            self._insert_audit(
                cur,
                (
                    request_id,
                    self._time_to_db(now),
                    _text(actor),
                    Action.LATE_ANSWER.value,
                    state,
                    state,
                    _json(entry),
                ),
            )
            return self._fetch_request(cur, request_id)

    def audit_log(self, request_id: str) -> list[AuditEntry]:
        """The request's audit entries, oldest first."""
        with self._read() as cur:
            cur.execute(
                self._sql(
                    f"SELECT id, {_AUDIT_COLUMNS} FROM audit_log "  # noqa: S608 -- constant column list
                    "WHERE request_id = ? ORDER BY id"
                ),
                (_text(request_id),),
            )
            return [self._audit_from_row(r) for r in cur.fetchall()]

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        """One audit entry by its id (the one an outbox entry names), or None."""
        with self._read() as cur:
            cur.execute(
                self._sql(f"SELECT id, {_AUDIT_COLUMNS} FROM audit_log WHERE id = ?"),  # noqa: S608 -- constant column list
                (int(entry_id),),
            )
            row = cur.fetchone()
            return None if row is None else self._audit_from_row(row)

    # -- queries for the sweeps, the audit export and "one open request per email" -------------

    def find_open(self, email: str) -> VerificationRequest | None:
        """The newest request for ``email`` (compared case-insensitively) in an open state
        (pending, executing, unknown); there is at most one.

        A pending one may be past its expiry if the sweep has not run: check ``is_expired``.
        """
        with self._read() as cur:
            return self._fetch_open(cur, email)

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

    def _home_where(
        self,
        states: frozenset[State] | None,
        requester: str | None,
        created_since: datetime | None,
        not_states: frozenset[State] | None = None,
    ) -> tuple[str, list[Any]]:
        """The WHERE clause (constant fragments, bound values) of the Home tab's queries."""
        where: list[str] = []
        params: list[Any] = []
        for states_, word in ((states, "IN"), (not_states, "NOT IN")):
            if states_ is not None:
                ordered = sorted(State(s).value for s in states_) or [""]
                where.append(f"state {word} (" + ", ".join("?" * len(ordered)) + ")")
                params.extend(ordered)
        if requester is not None:
            where.append("requester = ?")
            params.append(_text(requester))
        if created_since is not None:
            where.append("created_at >= ?")
            params.append(self._time_to_db(created_since))
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def newest_requests(
        self,
        *,
        limit: int,
        states: frozenset[State] | None = None,
        requester: str | None = None,
        created_since: datetime | None = None,
        not_states: frozenset[State] | None = None,
    ) -> list[VerificationRequest]:
        """At most ``limit`` requests, newest first (by ``created_at``), in ``states`` and in
        none of ``not_states``, by ``requester``, created at or after ``created_since`` (each
        when given). Read through the indexes on (requester, created_at), (created_at) and
        (state, …), so the cost is the rows returned, not the store's history: ask for final
        states as "not open" (``not_states``), which walks the (created_at) index newest
        first, rather than naming them, which would read every final request to sort them."""
        where, params = self._home_where(states, requester, created_since, not_states)
        sql = _SELECT_REQUEST + where + " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._read() as cur:
            cur.execute(self._sql(sql), (*params, int(limit)))
            return [self._request_from_row(r) for r in cur.fetchall()]

    def count_requests(
        self,
        *,
        cap: int,
        states: frozenset[State] | None = None,
        requester: str | None = None,
        created_since: datetime | None = None,
        not_states: frozenset[State] | None = None,
    ) -> int:
        """How many requests match (as ``newest_requests``), counting at most ``cap``: a
        count that reaches ``cap`` means "``cap`` or more"."""
        where, params = self._home_where(states, requester, created_since, not_states)
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM requests{where} LIMIT ?) AS capped"  # noqa: S608 -- constants
        with self._read() as cur:
            cur.execute(self._sql(sql), (*params, int(cap)))
            return int(cur.fetchone()[0])

    def requests_about(
        self, email: str, domain: str | None = None, *, since: datetime, limit: int = 20
    ) -> list[VerificationRequest]:
        """Requests for ``email`` (compared case-insensitively) or, when given, for
        ``domain``, created at or after ``since``: newest first, at most ``limit``."""
        _check_aware(since, "since")
        params = list(email_keys(email))
        where = f"email_key IN ({', '.join('?' * len(params))})"
        if domain:
            domains = list(dict.fromkeys(_text(d.lower()) for d in domain_variants(domain)))
            where = f"({where} OR domain IN ({', '.join('?' * len(domains))}))"
            params.extend(domains)
        sql = (
            _SELECT_REQUEST + f" WHERE {where} AND created_at >= ? "  # noqa: S608 -- constants
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        with self._read() as cur:
            cur.execute(self._sql(sql), (*params, self._time_to_db(since), int(limit)))
            return [self._request_from_row(r) for r in cur.fetchall()]

    def metric_figures(self) -> StoreFigures:
        """Counts for the store-derived metrics (bot/metrics.py): requests by state, the
        oldest pending one, and the outbox's backlog. Read-only."""
        with self._probe_read() as cur:
            cur.execute("SELECT state, COUNT(*) FROM requests GROUP BY state")
            by_state = {State(row[0]): int(row[1]) for row in cur.fetchall()}
            cur.execute(
                self._sql("SELECT MIN(created_at) FROM requests WHERE state = ?"),
                (State.PENDING.value,),
            )
            oldest_pending = cur.fetchone()[0]
            cur.execute(f"SELECT COUNT(*), MIN(created_at) FROM outbox WHERE {UNDONE}")  # noqa: S608 -- constant
            waiting, oldest_outbox = cur.fetchone()
            cur.execute("SELECT kind, COUNT(*) FROM outbox WHERE dead_at IS NOT NULL GROUP BY kind")
            given_up = {str(row[0]): int(row[1]) for row in cur.fetchall()}
        return StoreFigures(
            created=sum(by_state.values()),
            by_state=by_state,
            oldest_pending=None if oldest_pending is None else self._time_from_db(oldest_pending),
            outbox_waiting=int(waiting),
            oldest_outbox=None if oldest_outbox is None else self._time_from_db(oldest_outbox),
            given_up=given_up,
        )

    # -- the Home tab --------------------------------------------------------------------------

    def saw_home(self, user_id: str, *, now: datetime) -> None:
        """Remember that ``user_id`` opened the app's Home tab (at ``now``)."""
        _check_aware(now, "now")
        at = self._time_to_db(now)
        with self._write() as cur:
            cur.execute(
                self._sql("UPDATE home_viewers SET opened_at = ? WHERE user_id = ?"),
                (at, _text(user_id)),
            )
            if cur.rowcount == 0:
                cur.execute(
                    self._sql(
                        "INSERT INTO home_viewers (user_id, opened_at) SELECT ?, ? "
                        "WHERE NOT EXISTS (SELECT 1 FROM home_viewers WHERE user_id = ?)"
                    ),
                    (_text(user_id), at, _text(user_id)),
                )

    def home_viewers(self, *, since: datetime) -> list[str]:
        """Who opened the Home tab at or after ``since``."""
        with self._read() as cur:
            cur.execute(
                self._sql("SELECT user_id FROM home_viewers WHERE opened_at >= ? ORDER BY user_id"),
                (self._time_to_db(since),),
            )
            return [str(r[0]) for r in cur.fetchall()]

    # -- the outbox ----------------------------------------------------------------------------

    def enqueue(
        self, request_id: str, entries: Sequence[tuple[str, str]], *, now: datetime
    ) -> None:
        """Append ``entries`` ((kind, queue) pairs) to the request's queues, due at ``now``,
        linked to no change (they describe the request as it stands when delivered).

        Raises KeyError for an unknown request.
        """
        queued = _entries(entries)
        _check_aware(now, "now")
        request_id = _text(request_id)
        if not queued:
            return
        with self._write() as cur:
            if self._lock_request(cur, request_id) is None:
                raise KeyError(request_id)
            self._insert_outbox(cur, request_id, queued, self._time_to_db(now), None)

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
                    f"WHERE id = ? AND lease_owner = ? AND {UNDONE}"
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
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {UNDONE}"  # noqa: S608 -- constants
        params: list[Any] = []
        if request_id is not None:
            sql += " AND request_id = ?"
            params.append(_text(request_id))
        with self._read() as cur:
            cur.execute(self._sql(sql + " ORDER BY id"), params)
            return [self._outbox_from_row(r) for r in cur.fetchall()]

    def give_up_outbox(
        self, entry_id: int, owner: str, *, error: str, now: datetime, details: dict[str, Any]
    ) -> bool:
        """Bury the entry (as ``bury_outbox``) and, in the same transaction, append a
        ``delivery_given_up`` audit entry to its request (its state unchanged) with ``details``
        and Slack's ``error``. Only if ``owner`` holds the lease: False (nothing written) when
        it does not."""
        _check_aware(now, "now")
        at = self._time_to_db(now)
        with self._write() as cur:
            cur.execute(
                self._sql(
                    f"SELECT request_id FROM outbox WHERE id = ? AND lease_owner = ? AND {UNDONE}"  # noqa: S608 -- constant
                ),
                (int(entry_id), _text(owner)),
            )
            row = cur.fetchone()
            if row is None:
                return False
            request_id = str(row[0])
            state = self._lock_request(cur, request_id)
            if state is None:  # pragma: no cover - requests are never deleted
                raise StoreError(f"request {request_id!r} of outbox entry {entry_id} is gone")
            cur.execute(
                self._sql(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, dead_at = ?, "
                    "lease_until = NULL WHERE id = ?"
                ),
                (_error_text(error), at, int(entry_id)),
            )
            self._insert_audit(
                cur,
                (
                    request_id,
                    at,
                    "bot",
                    Action.DELIVERY_GIVEN_UP.value,
                    state,
                    state,
                    _json(dict(details) | {"error": _error_text(error)}),
                ),
            )
        return True

    # -- messages with buttons ------------------------------------------------------------------

    def record_buttons(
        self,
        request_id: str,
        surface: str,
        channel: str,
        ts: str,
        *,
        audit_id: int | None,
        now: datetime,
    ) -> None:
        """Remember a message posted with buttons that stop acting once the request moves on."""
        _check_aware(now, "now")
        with self._write() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO posted_buttons (request_id, surface, channel, ts, audit_id, "
                    "posted_at) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (
                    _text(request_id),
                    _text(surface),
                    _text(channel),
                    _text(ts),
                    audit_id,
                    self._time_to_db(now),
                ),
            )

    def live_buttons(self, request_id: str) -> list[PostedButtons]:
        """The request's messages whose buttons have not been rewritten away, oldest first."""
        with self._read() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {_BUTTONS_COLUMNS} FROM posted_buttons "  # noqa: S608 -- constant
                    "WHERE request_id = ? AND settled_at IS NULL ORDER BY id"
                ),
                (_text(request_id),),
            )
            return [
                PostedButtons(
                    id=int(r[0]),
                    request_id=r[1],
                    surface=r[2],
                    channel=r[3],
                    ts=r[4],
                    audit_id=None if r[5] is None else int(r[5]),
                    posted_at=self._time_from_db(r[6]),
                )
                for r in cur.fetchall()
            ]

    def settle_buttons(self, buttons_id: int, *, now: datetime) -> None:
        """Mark a button-bearing message as rewritten without its buttons."""
        _check_aware(now, "now")
        with self._write() as cur:
            cur.execute(
                self._sql("UPDATE posted_buttons SET settled_at = ? WHERE id = ?"),
                (self._time_to_db(now), int(buttons_id)),
            )
