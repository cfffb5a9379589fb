"""What executing an item records besides its moves: readings of the provider's view, lease
renewals and late answers (a mixin of :class:`~bot.store.sql.BaseSQLStore`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.domain.model import (
    VIEW_ACTIONS,
    Action,
    State,
    VerificationRequest,
)
from bot.domain.views import DomainReading, view_to_dict
from bot.store.core import StoreCore
from bot.store.requests import _RELEASE_HELD
from bot.store.rows import (
    _check_aware,
    _json,
    _text,
)

# A reading of the provider's view is not a change of the request: neither its state, nor
# updated_at (which the sweeps compare), nor its version.
_SET_VIEW = "UPDATE items SET provider_view = ? WHERE request_id = ? AND position = ?"

_SET_READBACK = "UPDATE items SET readback = ? WHERE request_id = ? AND position = ?"

# A lease is renewed only by its claim's holder, while it runs.
_RENEW_LEASE = (
    "UPDATE items SET lease_until = ? "
    "WHERE request_id = ? AND state = ? AND claim_id = ? AND lease_until >= ?"
)


class ExecutionRecords(StoreCore):
    """Readings, lease renewals and late answers: recorded, never a move of the request."""

    def record_view(
        self,
        request_id: str,
        reading: DomainReading,
        *,
        action: Action,
        actor: str,
        now: datetime,
        states: frozenset[State] | None = None,
        item: int = 0,
    ) -> VerificationRequest | None:
        """Store a reading of the provider's view with the request's ``item``, whatever its
        state: as its ``view`` (``Action.LOOKUP``, when it was made: a lookup that is shown also
        makes due now what ``create`` held for it) or its ``readback`` (``Action.CHECK``,
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
                cur.execute(self._sql(sql), (reading_json, request_id, int(item)))
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
            if action is Action.READBACK or (action is Action.LOOKUP and shown):
                # The outcome's notices (a new request's) were held for this reading: due now.
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
