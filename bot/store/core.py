"""What every part of :class:`~bot.store.sql.BaseSQLStore` stands on: :class:`StoreCore`.

The cursor protocol, the hooks a backend implements or overrides (bot/store/sqlite.py,
bot/store/postgres.py), the row <-> model mapping, and the few steps the parts share: reading,
finding the open request for an email, locking a request's row, appending an audit entry and
queueing outbox entries. The parts (requests.py, queries.py, outbox.py, buttons.py) are mixins
over this class, so each of them sees a backend's overrides and class attributes
(``_FOR_UPDATE``, ``_CLAIM_LOCK``, ``_INTEGRITY_ERRORS``) through ``self``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, Self

from bot.domain.model import (
    Action,
    AuditEntry,
    Item,
    Operation,
    State,
    VerificationRequest,
    WorkflowRun,
    rule_from_dict,
)
from bot.domain.outcomes import outcome_from_dict
from bot.domain.ports import Announce, OutboxEntry
from bot.store.errors import StoreError
from bot.store.rows import (
    _AUDIT_COLUMNS,
    _SELECT_ITEMS,
    _SELECT_REQUEST,
    _approvals_from_json,
    _check_aware,
    _entries,
    _reading,
    _text,
    email_keys,
)
from bot.store.schema import OPEN_VALUES

# Request ids per query when the items of many requests are read (within every backend's
# limit on parameters).
_ITEMS_PER_QUERY = 500

_INSERT_AUDIT = (
    f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_OUTBOX = (
    "INSERT INTO outbox (request_id, kind, lane, audit_id, created_at, next_attempt_at, "
    "attempts) VALUES (?, ?, ?, ?, ?, ?, 0)"
)


class _Cursor(Protocol):
    """The part of a DB-API cursor the shared code uses (sqlite3 and psycopg 3 both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class StoreCore:
    """The hooks, the mapping and the shared steps of the store; see :class:`BaseSQLStore`
    (bot/store/sql.py) for what a backend supplies."""

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

    def _request_from_row(self, row: Sequence[Any], items: Sequence[Item]) -> VerificationRequest:
        (
            id_,
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
            approvals,
            version,
            operation,
            rule,
            escalated_at,
            bulk,
            started_at,
            progress_at,
            step_execution_id,
            workflow_execution_id,
        ) = row
        return VerificationRequest(
            id=id_,
            reason=reason,
            requester=requester,
            state=State(state),
            created_at=self._time_from_db(created_at),
            expires_at=self._time_from_db(expires_at),
            updated_at=self._time_from_db(updated_at),
            items=tuple(items),
            operation=Operation(operation),
            channel=channel,
            message_ts=message_ts,
            decided_by=decided_by,
            decision_note=decision_note,
            approvals=_approvals_from_json(approvals),
            withdrawn=_approvals_from_json(approvals, counted=False),
            version=int(version),
            rule=None if rule is None else rule_from_dict(json.loads(rule)),
            escalated_at=None if escalated_at is None else self._time_from_db(escalated_at),
            bulk=bool(bulk),
            started_at=None if started_at is None else self._time_from_db(started_at),
            progress_at=None if progress_at is None else self._time_from_db(progress_at),
            workflow=None
            if step_execution_id is None
            else WorkflowRun(step_execution_id, workflow_execution_id),
        )

    def _item_from_row(self, row: Sequence[Any]) -> Item:
        (
            _request_id,
            position,
            email,
            domain,
            state,
            outcome,
            view,
            readback,
            claim_id,
            lease_until,
        ) = row
        return Item(
            email=email,
            domain=domain,
            state=State(state),
            outcome=None if outcome is None else outcome_from_dict(json.loads(outcome)),
            view=_reading(view),
            readback=_reading(readback),
            claim_id=claim_id,
            lease_until=None if lease_until is None else self._time_from_db(lease_until),
            position=int(position),
        )

    def _requests_from_rows(
        self, cur: _Cursor, rows: Sequence[Sequence[Any]]
    ) -> list[VerificationRequest]:
        """The requests of ``rows`` (request columns), each with its items (one more query)."""
        if not rows:
            return []
        ids = [str(row[0]) for row in rows]
        items: dict[str, list[Item]] = {request_id: [] for request_id in ids}
        for start in range(0, len(ids), _ITEMS_PER_QUERY):
            chunk = ids[start : start + _ITEMS_PER_QUERY]
            cur.execute(
                self._sql(
                    _SELECT_ITEMS + f" WHERE request_id IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY request_id, position"
                ),
                tuple(chunk),
            )
            for item_row in cur.fetchall():
                items[str(item_row[0])].append(self._item_from_row(item_row))
        return [self._request_from_row(row, items[str(row[0])]) for row in rows]

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

    def _told(self, action: Action, bulk: bool = False) -> Sequence[tuple[str, str]]:
        """What the edge tells Slack of a change of ``action`` (of a bulk request, with
        ``bulk``): its outbox entries."""
        return () if self.announce is None else self.announce(Action(action), bulk)

    def _fetch_request(
        self, cur: _Cursor, request_id: str, *, only_item: int | None = None
    ) -> VerificationRequest | None:
        """The request with its items; with ``only_item``, with that item alone (a bulk
        request's runner is not read a thousand items back for each call it makes)."""
        cur.execute(self._sql(_SELECT_REQUEST + " WHERE id = ?"), (_text(request_id),))
        row = cur.fetchone()
        if row is None:
            return None
        if only_item is None:
            return self._requests_from_rows(cur, [row])[0]
        cur.execute(
            self._sql(_SELECT_ITEMS + " WHERE request_id = ? AND position = ?"),
            (_text(request_id), int(only_item)),
        )
        return self._request_from_row(row, [self._item_from_row(r) for r in cur.fetchall()])

    def _fetch_open(self, cur: _Cursor, email: str) -> VerificationRequest | None:
        """The newest request with an open item for ``email`` (in any of its spellings)."""
        keys = email_keys(email)
        placeholders = ", ".join("?" * len(OPEN_VALUES))
        cur.execute(
            self._sql(
                _SELECT_REQUEST + " WHERE id IN (SELECT request_id FROM items "  # noqa: S608 -- constants and placeholders
                f"WHERE email_key IN ({', '.join('?' * len(keys))}) "
                f"AND state IN ({placeholders})) ORDER BY created_at DESC, id DESC LIMIT 1"
            ),
            (*keys, *OPEN_VALUES),
        )
        row = cur.fetchone()
        return None if row is None else self._requests_from_rows(cur, [row])[0]

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
