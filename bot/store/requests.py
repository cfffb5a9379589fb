"""The writes of a request: create, transition (the compare-and-set), readings of the
provider's view, lease renewals, late answers and where the request was posted; and the reads
of one request (``get``, ``find_open``).

The rules these keep (one transaction per change, the compare-and-set, one open request per
email) are described in bot/store/sql.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.model import (
    BATCH_ACTIONS,
    EXECUTION_ACTIONS,
    RECORD_ONLY_ACTIONS,
    STAYING_ACTIONS,
    TRANSITIONS,
    VIEW_ACTIONS,
    Action,
    OpenRequestExists,
    Operation,
    State,
    StepAlreadyAsked,
    VerificationRequest,
    request_state,
    rule_to_dict,
)
from bot.domain.outcomes import outcome_to_dict
from bot.domain.ports import Transition
from bot.domain.views import view_to_dict
from bot.store.core import StoreCore, _Cursor
from bot.store.errors import StoreError
from bot.store.rows import (
    _ITEM_COLUMNS,
    _REQUEST_COLUMNS,
    _approvals_json,
    _check_aware,
    _json,
    _opt_text,
    _text,
    email_key,
)
from bot.store.schema import UNDONE

_INSERT_REQUEST = (
    f"INSERT INTO requests ({_REQUEST_COLUMNS}) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ITEM = (
    f"INSERT INTO items ({_ITEM_COLUMNS}, email_key) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The compare-and-set. COALESCE keeps a column's value when the caller passes None, so one
# constant statement serves every transition. The state in the WHERE clause is the one read
# (and, on PostgreSQL, row-locked) in the same transaction, so the audit's from_state is exactly
# what was replaced.
_CAS = (
    "UPDATE requests SET state = ?, updated_at = ?, version = version + 1, "
    "decided_by = COALESCE(?, decided_by), "
    "decision_note = COALESCE(?, decision_note), "
    "approvals = COALESCE(?, approvals), "
    "escalated_at = COALESCE(?, escalated_at), "
    "started_at = COALESCE(?, started_at) "
    "WHERE id = ? AND state = ?"
)
# The item a change executes: its own compare-and-set (on its state, and on its claim and lease
# with the fence and the sweep's test), in the same transaction as the request's.
_ITEM_CAS = (
    "UPDATE items SET state = ?, "
    "outcome = COALESCE(?, outcome), "
    "readback = COALESCE(?, readback), "
    "claim_id = COALESCE(?, claim_id), "
    "lease_until = COALESCE(?, lease_until) "
    "WHERE request_id = ? AND position = ? AND state = ?"
)
# A pending request closed without a call (rejected, expired, cancelled, never posted): its
# items waiting for approval close with it, and stop holding their emails.
_CLOSE_ITEMS = (
    "UPDATE items SET state = ?, outcome = COALESCE(?, outcome) WHERE request_id = ? AND state = ?"
)
_ITEM_STATES = "SELECT state FROM items WHERE request_id = ? ORDER BY position"
# A bulk request's items moved together by a change of the request: Retry queues its unknown
# items again, Resolved closes them (the items' claims stay as they were, fenced as ever).
_MOVE_ITEMS = "UPDATE items SET state = ? WHERE request_id = ? AND state = ?"
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


class _Lost(Exception):
    """A compare-and-set found the request changed after its item's: nothing is written."""


def _validate_transition(
    from_states: frozenset[State],
    to_state: State,
    action: Action | None = None,
    item: int | None = None,
) -> None:
    if not from_states:
        raise ValueError("transition needs at least one from_state")
    # A batch's own Approve, Retry and Resolved name no item: they move its items together.
    if (
        action is not None
        and (Action(action) in EXECUTION_ACTIONS) != (item is not None)
        and not (item is None and Action(action) in BATCH_ACTIONS)
    ):
        raise ValueError(
            f"{Action(action).value} "
            + ("moves an item: name it" if item is None else "is the request's, not an item's")
        )
    to_state = State(to_state)
    if action is not None and Action(action) is Action.THROTTLED:
        # Back to the queue: the provider answered with its rate limit and did nothing.
        if from_states != {State.EXECUTING} or to_state is not State.PENDING:
            raise ValueError("throttled puts an executing item back in the queue")
        return
    if action is not None and Action(action) is Action.STOP:
        if from_states != {State.EXECUTING} or to_state is not State.CANCELLED:
            raise ValueError("stop cancels a running batch's queued items")
        return
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


def _created_details(request: VerificationRequest) -> dict[str, Any]:
    """What the "create" audit entry records: the email and its domain (each item's, for a
    request of several) and the reason."""
    rule = (
        {}
        if request.rule is None
        else {"rule": request.rule.name, "policy_hash": request.rule.policy_hash}
    )
    if request.workflow is not None:
        rule |= {"step_execution_id": request.workflow.execution_id}
    if len(request.items) == 1:
        return {
            "email": request.email,
            "domain": request.domain,
            "operation": Operation(request.operation).value,
            "reason": request.reason,
        } | rule
    return {
        "emails": [item.email for item in request.items],
        "operation": Operation(request.operation).value,
        "reason": request.reason,
    } | rule


class RequestMethods(StoreCore):
    """Creating and changing requests (a mixin of :class:`~bot.store.sql.BaseSQLStore`)."""

    # -- requests ------------------------------------------------------------------------------

    def create(
        self, request: VerificationRequest, actor: str, *, held_until: datetime | None = None
    ) -> VerificationRequest:
        """Insert a pending request, its "create" audit entry and what the edge tells of it
        (due at once, or at ``held_until``, linked to that audit entry), in one transaction.
        Recording the request's lookup (``record_view`` with ``Action.LOOKUP``) makes what is
        held due at once.

        Raises OpenRequestExists (writing nothing) when a request for the same email, compared
        case-insensitively, is pending, executing or unknown; expiry is not looked at here (the
        caller expires a stale pending one first). Atomic across processes and replicas: the
        partial unique index decides. Raises StoreError for a duplicate id.
        """
        if request.state is not State.PENDING:
            raise ValueError(f"a new request must be pending, not {request.state.value}")
        queued = self._told(Action.CREATE, request.bulk)
        created_at = self._time_to_db(request.created_at)
        if held_until is not None:
            _check_aware(held_until, "held_until")
        due = None if held_until is None else self._time_to_db(held_until)
        row = (
            _text(request.id),
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
            _approvals_json(request.approvals),
            0,
            Operation(request.operation).value,
            None if request.rule is None else _json(rule_to_dict(request.rule)),
            None if request.escalated_at is None else self._time_to_db(request.escalated_at),
            1 if request.bulk else 0,
            None if request.started_at is None else self._time_to_db(request.started_at),
            None,
            None if request.workflow is None else _text(request.workflow.execution_id),
            None
            if request.workflow is None or request.workflow.workflow_execution_id is None
            else _text(request.workflow.workflow_execution_id),
        )
        item_rows = [
            (
                row[0],
                position,
                _text(item.email),
                _text(item.domain),
                State.PENDING.value,
                None if item.outcome is None else _json(outcome_to_dict(item.outcome)),
                None if item.view is None else _json(view_to_dict(item.view)),
                None if item.readback is None else _json(view_to_dict(item.readback)),
                _opt_text(item.claim_id),
                None if item.lease_until is None else self._time_to_db(item.lease_until),
                email_key(item.email),
            )
            for position, item in enumerate(request.items)
        ]
        audit = (
            _text(request.id),
            created_at,
            _text(actor),
            Action.CREATE.value,
            None,
            State.PENDING.value,
            _json(_created_details(request)),
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
                    if request.workflow is not None:
                        made = self._fetch_by_step(cur, request.workflow.execution_id)
                        if made is not None:
                            raise StepAlreadyAsked(made)
                    for item in request.items:
                        existing = self._fetch_open(cur, item.email)
                        if existing is not None:
                            raise OpenRequestExists(existing)
                    cur.execute(self._sql(_INSERT_REQUEST), row)
                    for item_row in item_rows:
                        cur.execute(self._sql(_INSERT_ITEM), item_row)
                    audit_id = self._insert_audit(cur, audit)
                    self._insert_outbox(cur, row[0], queued, created_at, audit_id, due)
                    stored = self._fetch_request(cur, row[0])
            except self._INTEGRITY_ERRORS as e:
                # Another process committed between our check and our insert.
                which = self._unique_violation(e)
                if which == "id":
                    raise duplicate_id() from None
                if which == "step" and request.workflow is not None:
                    made = self.find_by_step(request.workflow.execution_id)
                    if made is not None:
                        raise StepAlreadyAsked(made) from None
                if which != "open_email":
                    raise
                for item in request.items:
                    existing = self.find_open(item.email)
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

    def find_by_step(self, execution_id: str) -> VerificationRequest | None:
        """The request made by the Workflow Builder step run ``execution_id`` (Fx…), if any."""
        with self._read() as cur:
            return self._fetch_by_step(cur, execution_id)

    def _fetch_by_step(self, cur: _Cursor, execution_id: str) -> VerificationRequest | None:
        cur.execute(
            self._sql("SELECT id FROM requests WHERE step_execution_id = ?"),
            (_text(execution_id),),
        )
        row = cur.fetchone()
        return None if row is None else self._fetch_request(cur, str(row[0]))

    def find_open(self, email: str) -> VerificationRequest | None:
        """The newest request for ``email`` (compared case-insensitively) in an open state
        (pending, executing, unknown); there is at most one.

        A pending one may be past its expiry if the sweep has not run: check ``is_expired``.
        """
        with self._read() as cur:
            return self._fetch_open(cur, email)

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
        _validate_transition(change.from_states, change.to_state, change.action, change.item)
        _check_aware(change.now, "now")
        try:
            with self._write() as cur:
                return self._apply(cur, change)
        except _Lost:
            return None

    def _apply(self, cur: _Cursor, change: Transition) -> VerificationRequest | None:
        """``transition``'s work inside its transaction (the batch runner's claim shares it).
        Raises _Lost when the request's compare-and-set failed after its items moved."""
        request_id = _text(change.request_id)  # ids arrive in button values: never trusted
        at = self._time_to_db(change.now)
        outcome = change.outcome
        outcome_json = None if outcome is None else _json(outcome_to_dict(outcome))
        # SQLite: the write lock is held from the transaction's start; PostgreSQL: the row is
        # locked by this read. Either way the updates below see this state; they re-check it
        # anyway (they are the CAS).
        state = self._lock_request(cur, request_id)
        if state is None:
            return None
        current = State(state)
        bulk = self._is_bulk(cur, request_id)
        if change.item is None:
            if current not in change.from_states:
                return None
            new_state = self._move_batch(cur, request_id, current, change, outcome_json, bulk)
        else:
            if not self._move_item(cur, request_id, change):
                return None
            cur.execute(self._sql(_ITEM_STATES), (request_id,))
            new_state = request_state((State(r[0]) for r in cur.fetchall()), approved=bulk)
        started = bulk and current is State.PENDING and new_state is State.EXECUTING
        if not self._move_request(cur, request_id, current, new_state, change, started=started):
            raise _Lost  # the request changed: undo whatever moved above
        audit_id = self._insert_audit(
            cur,
            (
                request_id,
                at,
                _text(change.actor),
                _text(Action(change.action).value),
                current.value,
                new_state.value,
                _json(change.audit_details),
            ),
        )
        due = None if change.held_until is None else self._time_to_db(change.held_until)
        if change.fence is not None and due is None:
            # An outcome told at once (no read-back to wait for): what its claim held
            # ("calling the provider…") is due now too, so it never holds the lane up.
            cur.execute(self._sql(_RELEASE_HELD), (at, request_id, at))
        self._insert_outbox(cur, request_id, self._told(change.action, bulk), at, audit_id, due)
        if bulk and current is State.EXECUTING and new_state is not State.EXECUTING:
            # The run's last queued or running item ended: how the whole run ended is recorded
            # (and told) once, with the change that ended it (which moved the request).
            finish_id = self._insert_audit(
                cur,
                (
                    request_id,
                    at,
                    "bot",
                    Action.FINISH.value,
                    new_state.value,
                    new_state.value,
                    _json(self._item_counts(cur, request_id)),
                ),
            )
            self._insert_outbox(
                cur, request_id, self._told(Action.FINISH, bulk), at, finish_id, None
            )
        # A bulk request's item change: the request with that item alone.
        return self._fetch_request(
            cur, request_id, only_item=change.item if bulk and change.item is not None else None
        )

    def _is_bulk(self, cur: _Cursor, request_id: str) -> bool:
        cur.execute(self._sql("SELECT bulk FROM requests WHERE id = ?"), (request_id,))
        row = cur.fetchone()
        return row is not None and bool(row[0])

    def _item_counts(self, cur: _Cursor, request_id: str) -> dict[str, int]:
        """How many of the request's items are in each state (the finish entry's details)."""
        cur.execute(
            self._sql("SELECT state, COUNT(*) FROM items WHERE request_id = ? GROUP BY state"),
            (request_id,),
        )
        return {str(state): int(count) for state, count in sorted(cur.fetchall())}

    def _move_batch(
        self,
        cur: _Cursor,
        request_id: str,
        current: State,
        change: Transition,
        outcome_json: str | None,
        bulk: bool,
    ) -> State:
        """A change of the request's own (no item named): what it does to its items, and the
        state the request moves to. A pending request closed without a call closes its waiting
        items with it; a bulk request's approval leaves its items queued, its Retry queues its
        unknown items again, its Resolved closes them, and a stop (Cancel during the run)
        cancels those still queued; then the request is what its items make of it."""
        to_state = State(change.to_state)
        if bulk and to_state is State.EXECUTING and current is State.UNKNOWN:
            cur.execute(
                self._sql(_MOVE_ITEMS),
                (State.PENDING.value, request_id, State.UNKNOWN.value),
            )
        elif bulk and to_state is State.RESOLVED:
            cur.execute(
                self._sql(_MOVE_ITEMS),
                (State.RESOLVED.value, request_id, State.UNKNOWN.value),
            )
        elif to_state not in (State.PENDING, State.EXECUTING):
            # A pending request closed without a call, or a run stopped: so are its waiting
            # items.
            cur.execute(
                self._sql(_CLOSE_ITEMS),
                (to_state.value, outcome_json, request_id, State.PENDING.value),
            )
        if not bulk or to_state is State.PENDING or current is State.PENDING:
            return to_state
        cur.execute(self._sql(_ITEM_STATES), (request_id,))
        return request_state((State(r[0]) for r in cur.fetchall()), approved=True)

    def _move_request(
        self,
        cur: _Cursor,
        request_id: str,
        current: State,
        new_state: State,
        change: Transition,
        *,
        started: bool = False,
    ) -> bool:
        """The request's compare-and-set for ``change`` (``started``: a bulk request's run
        starts now): True when it matched."""
        at = self._time_to_db(change.now)
        params: tuple[Any, ...] = (
            new_state.value,
            at,
            _opt_text(change.decided_by),
            _opt_text(change.decision_note),
            None
            if change.approvals is None
            else _approvals_json(change.approvals, change.withdrawn),
            None if change.escalated_at is None else self._time_to_db(change.escalated_at),
            at if started else None,
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
        cur.execute(self._sql(sql), params)
        return bool(cur.rowcount == 1)

    def _move_item(self, cur: _Cursor, request_id: str, change: Transition) -> bool:
        """The compare-and-set of the item ``change`` executes (from one of ``from_states``,
        under the fence and the sweep's test): True when it matched."""
        assert change.item is not None
        cur.execute(
            self._sql("SELECT state FROM items WHERE request_id = ? AND position = ?"),
            (request_id, int(change.item)),
        )
        row = cur.fetchone()
        if row is None or State(row[0]) not in change.from_states:
            return False
        outcome = change.outcome
        params: tuple[Any, ...] = (
            State(change.to_state).value,
            None if outcome is None else _json(outcome_to_dict(outcome)),
            None if change.readback is None else _json(view_to_dict(change.readback)),
            _opt_text(change.claim_id),
            None if change.lease_until is None else self._time_to_db(change.lease_until),
            request_id,
            int(change.item),
            str(row[0]),
        )
        sql = _ITEM_CAS
        if change.fence is not None:
            sql += _CAS_FENCE
            params = (*params, _text(change.fence))
        if change.lease_expired_by is not None:
            sql += _CAS_LEASE_EXPIRED
            params = (*params, self._time_to_db(change.lease_expired_by))
        cur.execute(self._sql(sql), params)
        return bool(cur.rowcount == 1)
