"""The outbox queue: enqueue, claim (a lease on the head of each lane), then complete, retry,
bury or give up; and the entries still to deliver.

How the queue behaves is described in bot/store/sql.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.domain.model import Action
from bot.domain.ports import OutboxEntry
from bot.store.core import StoreCore
from bot.store.errors import StoreError
from bot.store.rows import _OUTBOX_COLUMNS, _check_aware, _entries, _error_text, _json, _text
from bot.store.schema import UNDONE

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


class OutboxMethods(StoreCore):
    """The outbox queue (a mixin of :class:`~bot.store.sql.BaseSQLStore`)."""

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
