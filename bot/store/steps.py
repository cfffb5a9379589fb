"""Workflow Builder step runs whose request could not be made: the words each fails with, kept
until Slack has taken them (bot/slack/step_failures.py sends them, at once and on every
maintenance round, on any replica; a claim is a compare-and-set on the row's next attempt).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.ports import StepFailure
from bot.store.core import StoreCore
from bot.store.rows import _check_aware, _text

_INSERT = (
    "INSERT INTO step_failures (execution_id, error, created_at, next_attempt_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (execution_id) DO NOTHING"
)
_DUE = (
    "SELECT execution_id, error, attempts, created_at FROM step_failures "
    "WHERE done_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
)
# The claim: this caller's attempt, held until ``lease`` from now (another replica's round does
# not send it meanwhile); the attempt counted.
_CLAIM = (
    "UPDATE step_failures SET next_attempt_at = ?, attempts = attempts + 1 "
    "WHERE execution_id = ? AND done_at IS NULL AND next_attempt_at <= ?"
)


class StepMethods(StoreCore):
    """The step failures' queue (a mixin of :class:`~bot.store.sql.BaseSQLStore`)."""

    def record_step_failure(self, execution_id: str, error: str, *, now: datetime) -> bool:
        """Keep ``error`` for the run ``execution_id``, due now; False when it was kept already
        (its event came twice: failed once)."""
        _check_aware(now, "now")
        at = self._time_to_db(now)
        with self._write() as cur:
            cur.execute(self._sql(_INSERT), (_text(execution_id), _text(error), at, at))
            return bool(cur.rowcount == 1)

    def claim_step_failures(
        self, *, now: datetime, lease_seconds: float, limit: int = 20
    ) -> list[StepFailure]:
        """The due failures this caller now holds for ``lease_seconds`` (oldest first)."""
        _check_aware(now, "now")
        at = self._time_to_db(now)
        held = self._time_to_db(now + timedelta(seconds=lease_seconds))
        claimed = []
        with self._write() as cur:
            cur.execute(self._sql(_DUE), (at, int(limit)))
            for execution_id, error, attempts, created_at in cur.fetchall():
                cur.execute(self._sql(_CLAIM), (held, execution_id, at))
                if cur.rowcount == 1:
                    claimed.append(
                        StepFailure(
                            str(execution_id),
                            str(error),
                            int(attempts) + 1,
                            self._time_from_db(created_at),
                        )
                    )
        return claimed

    def finish_step_failure(self, execution_id: str, *, now: datetime) -> None:
        """Slack took it (or the run had ended already, or it was given up on)."""
        _check_aware(now, "now")
        with self._write() as cur:
            cur.execute(
                self._sql("UPDATE step_failures SET done_at = ? WHERE execution_id = ?"),
                (self._time_to_db(now), _text(execution_id)),
            )

    def retry_step_failure(
        self, execution_id: str, *, error: str, next_attempt_at: datetime
    ) -> None:
        """Slack did not take it: try again at ``next_attempt_at``."""
        _check_aware(next_attempt_at, "next_attempt_at")
        with self._write() as cur:
            cur.execute(
                self._sql(
                    "UPDATE step_failures SET next_attempt_at = ?, last_error = ? "
                    "WHERE execution_id = ? AND done_at IS NULL"
                ),
                (self._time_to_db(next_attempt_at), _text(error)[:500], _text(execution_id)),
            )
