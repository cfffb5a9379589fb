"""The reads for the sweeps, the audit export, the Home tab and the metrics; and who opened
the Home tab."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.inputs import domain_variants
from bot.domain.model import AuditEntry, State, StoreFigures, VerificationRequest
from bot.store.core import StoreCore
from bot.store.rows import _AUDIT_COLUMNS, _SELECT_REQUEST, _check_aware, _text, email_keys
from bot.store.schema import UNDONE


class QueryMethods(StoreCore):
    """Reading requests, the audit log and the Home tab's viewers (a mixin of
    :class:`~bot.store.sql.BaseSQLStore`)."""

    # -- queries for the sweeps and the audit export --------------------------------------------

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
            return self._requests_from_rows(cur, cur.fetchall())

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
            return self._requests_from_rows(cur, cur.fetchall())

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
            _SELECT_REQUEST + f" WHERE id IN (SELECT request_id FROM items WHERE {where}) "  # noqa: S608 -- constants
            "AND created_at >= ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        with self._read() as cur:
            cur.execute(self._sql(sql), (*params, self._time_to_db(since), int(limit)))
            return self._requests_from_rows(cur, cur.fetchall())

    def metric_figures(self) -> StoreFigures:
        """Counts for the store-derived metrics (bot/metrics.py): requests by operation and
        state, the oldest pending one, and the outbox's backlog. Read-only."""
        with self._probe_read() as cur:
            cur.execute("SELECT operation, state, COUNT(*) FROM requests GROUP BY operation, state")
            by_operation = {(str(row[0]), State(row[1])): int(row[2]) for row in cur.fetchall()}
            by_state: dict[State, int] = {}
            for (_, state), count in by_operation.items():
                by_state[state] = by_state.get(state, 0) + count
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
            by_operation=by_operation,
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
