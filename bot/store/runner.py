"""The batch runners' shared work: the next queued item of a running bulk request, claimed
once, at the provider's pace and within BULK_CONCURRENCY, whichever replica asks.

One row of the ``pace`` table holds the next moment a runner may call the provider. Every claim
locks it first (SQLite: the transaction's write lock; PostgreSQL: the row's lock), so the
checks that follow (the slot, how many items are running, the next queued item) and the claim
itself are one step across every replica: no two claims share a slot or exceed the concurrency.
The item's claim is the same compare-and-set, lease and fence as a single request's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.model import Action, State
from bot.domain.ports import Claimed, Hold, Transition
from bot.store.core import _Cursor
from bot.store.requests import RequestMethods, _validate_transition
from bot.store.rows import _check_aware, _text

# The one row of the pace table (the provider's calls are paced as one, whoever makes them).
_PACE_ROW = "provider"
_ENSURE_PACE = "INSERT INTO pace (name, next_slot) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
_RUNNING = (
    "SELECT COUNT(*) FROM items i JOIN requests r ON r.id = i.request_id "
    "WHERE i.state = ? AND r.bulk = 1 AND i.lease_until >= ?"
)
# The oldest running batch's first queued item.
_NEXT_ITEM = (
    "SELECT i.request_id, i.position, i.email FROM items i JOIN requests r ON r.id = i.request_id "
    "WHERE i.state = ? AND r.state = ? AND r.bulk = 1 "
    "ORDER BY r.started_at, r.id, i.position LIMIT 1"
)
# When every slot is busy, how soon to ask again at most (a finishing item frees one).
_BUSY_POLL = 0.25
# With nothing queued anywhere, how soon to look again (an approval on this replica wakes its
# runners at once; another replica's is found by then).
_IDLE_POLL = 2.0


class RunnerMethods(RequestMethods):
    """The batch runners' claims and pace (a mixin of :class:`~bot.store.sql.BaseSQLStore`)."""

    def claim_next_item(
        self,
        *,
        now: datetime,
        claim_id: str,
        lease_until: datetime,
        interval: float,
        concurrency: int,
    ) -> Claimed | Hold:
        _check_aware(now, "now")
        _check_aware(lease_until, "lease_until")
        with self._read() as cur:
            # Nothing queued anywhere (the usual case): said without taking the write lock.
            cur.execute(self._sql(_NEXT_ITEM), (State.PENDING.value, State.EXECUTING.value))
            if cur.fetchone() is None:
                return Hold(_IDLE_POLL, idle=True)
        with self._write() as cur:
            next_slot = self._lock_pace(cur, now)
            if next_slot > now:
                return Hold((next_slot - now).total_seconds())
            cur.execute(self._sql(_RUNNING), (State.EXECUTING.value, self._time_to_db(now)))
            row = cur.fetchone()
            if row is not None and int(row[0]) >= concurrency:
                return Hold(min(_BUSY_POLL, max(interval, 0.01)))
            cur.execute(self._sql(_NEXT_ITEM), (State.PENDING.value, State.EXECUTING.value))
            found = cur.fetchone()
            if found is None:
                return Hold(_IDLE_POLL, idle=True)
            request_id, position, email = str(found[0]), int(found[1]), str(found[2])
            change = Transition(
                request_id,
                frozenset({State.PENDING}),
                State.EXECUTING,
                actor="bot",
                action=Action.RUN,
                now=now,
                details={"email": email},
                claim_id=claim_id,
                lease_until=lease_until,
                item=position,
            )
            _validate_transition(change.from_states, change.to_state, change.action, change.item)
            claimed = self._apply(cur, change)
            if claimed is None:  # cannot happen under the pace's lock: looked again next time
                return Hold(0.0)
            slot = max(next_slot, now) + timedelta(seconds=interval)
            cur.execute(
                self._sql("UPDATE pace SET next_slot = ? WHERE name = ?"),
                (self._time_to_db(slot), _PACE_ROW),
            )
            return Claimed(claimed, position)

    def hold_pace(self, until: datetime) -> None:
        _check_aware(until, "until")
        with self._write() as cur:
            self._lock_pace(cur, until)
            cur.execute(
                self._sql("UPDATE pace SET next_slot = ? WHERE name = ? AND next_slot < ?"),
                (self._time_to_db(until), _PACE_ROW, self._time_to_db(until)),
            )

    def take_slot(self, now: datetime, interval: float) -> None:
        _check_aware(now, "now")
        with self._write() as cur:
            next_slot = self._lock_pace(cur, now)
            slot = max(next_slot, now) + timedelta(seconds=interval)
            cur.execute(
                self._sql("UPDATE pace SET next_slot = ? WHERE name = ?"),
                (self._time_to_db(slot), _PACE_ROW),
            )

    def show_progress(self, request_id: str, *, now: datetime, every: float) -> bool:
        _check_aware(now, "now")
        at = self._time_to_db(now)
        with self._write() as cur:
            if self._lock_request(cur, _text(request_id)) != State.EXECUTING.value:
                return False
            cur.execute(
                self._sql(
                    "UPDATE requests SET progress_at = ? WHERE id = ? AND bulk = 1 "
                    "AND (progress_at IS NULL OR progress_at <= ?)"
                ),
                (at, _text(request_id), self._time_to_db(now - timedelta(seconds=every))),
            )
            if cur.rowcount != 1:
                return False
            self._insert_outbox(cur, _text(request_id), self._told(Action.PROGRESS, True), at, None)
            return True

    def _lock_pace(self, cur: _Cursor, now: datetime) -> datetime:
        """The pace row, locked for this transaction (made at ``now`` the first time)."""
        cur.execute(self._sql(_ENSURE_PACE), (_PACE_ROW, self._time_to_db(now)))
        cur.execute(
            self._sql("SELECT next_slot FROM pace WHERE name = ?" + self._FOR_UPDATE),  # noqa: S608 -- constant clause
            (_PACE_ROW,),
        )
        row = cur.fetchone()
        return now if row is None else self._time_from_db(row[0])
