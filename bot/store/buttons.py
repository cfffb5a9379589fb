"""Messages posted with buttons, remembered until they are rewritten without them."""

from __future__ import annotations

from datetime import datetime

from bot.domain.ports import PostedButtons
from bot.store.core import StoreCore
from bot.store.rows import _BUTTONS_COLUMNS, _check_aware, _text


class ButtonMethods(StoreCore):
    """The posted_buttons table (a mixin of :class:`~bot.store.sql.BaseSQLStore`)."""

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
