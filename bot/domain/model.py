"""The request model: its states and legal transitions, and the audit's actions.

States::

    pending -> executing -> succeeded | failed | unknown
    unknown -> executing            (Retry, by an approver)
    unknown -> resolved             (an approver closes it, having checked the provider)
    pending -> rejected | expired | cancelled   (cancelled: by the requester)

A pending request may also record something without moving: an approval that is not yet the
last one the quorum needs (APPROVALS_REQUIRED), or a reminder to the approvers. A request in
any state may record a reading of the provider's per-domain view (bot/domain/views.py).

Claims: each move to ``executing`` (Approve's last approval, Retry) is a claim with a fresh
``claim_id`` and a lease (``lease_until``): until then, and no longer, its holder may call the
provider (it renews the lease before each further attempt). The outcome's write is fenced on
the claim: it lands only while the request is still ``executing`` under that claim. The sweep
takes a claim whose lease ran out (``executing -> unknown``); an answer that arrives for a claim
no longer current is recorded as a ``late_answer`` against its own claim, never on another.

``unknown`` means the provider call may or may not have reached the provider (a timeout, a
connection broken after sending, a crash mid-call). Every transition is appended to the audit
log, in the same transaction as the state change, with actor, time, action and details.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from bot.domain.outcomes import Outcome
    from bot.domain.views import DomainReading


class State(StrEnum):
    PENDING = "pending"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    RESOLVED = "resolved"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.EXECUTING, State.REJECTED, State.EXPIRED, State.CANCELLED}),
    State.EXECUTING: frozenset({State.SUCCEEDED, State.FAILED, State.UNKNOWN}),
    State.UNKNOWN: frozenset({State.EXECUTING, State.RESOLVED}),
    State.SUCCEEDED: frozenset(),
    State.FAILED: frozenset(),
    State.REJECTED: frozenset(),
    State.EXPIRED: frozenset(),
    State.CANCELLED: frozenset(),
    State.RESOLVED: frozenset(),
}

OPEN_STATES = frozenset({State.PENDING, State.EXECUTING, State.UNKNOWN})
FINAL_STATES = frozenset(
    {
        State.SUCCEEDED,
        State.FAILED,
        State.REJECTED,
        State.EXPIRED,
        State.CANCELLED,
        State.RESOLVED,
    }
)
# The states that say what a decision or a provider call came to (final, or unknown).
DESCRIBED_STATES = frozenset(
    {
        State.SUCCEEDED,
        State.FAILED,
        State.UNKNOWN,
        State.REJECTED,
        State.EXPIRED,
        State.CANCELLED,
        State.RESOLVED,
    }
)


def can_transition(src: State, dst: State) -> bool:
    return dst in TRANSITIONS[src]


class Action(StrEnum):
    """What a transition in the audit log was: its ``action`` column."""

    CREATE = "create"  # asked for: -> pending
    APPROVAL = "approval"  # one approver's approval, the quorum not reached yet: stays pending
    APPROVE = "approve"  # the approval that reaches the quorum claims it: pending -> executing
    RETRY = "retry"  # claimed again after an unknown outcome: unknown -> executing
    REJECT = "reject"  # pending -> rejected
    EXPIRE = "expire"  # REQUEST_TTL passed: pending -> expired
    PROVIDER_SUCCESS = "provider_success"  # executing -> succeeded
    PROVIDER_ERROR = "provider_error"  # executing -> failed | unknown
    INTERRUPTED = "interrupted"  # the process stopped mid-call: executing -> unknown
    POST_FAILED = "post_failed"  # Slack would never take the message: pending -> expired
    CANCEL = "cancel"  # withdrawn by the requester: pending -> cancelled
    REMIND = "remind"  # the approvers were reminded: stays pending
    RESOLVE = "resolve"  # an approver closed an unknown outcome, having checked: -> resolved
    LOOKUP = "lookup"  # the provider's view read when the request was made: any state stays
    CHECK = "check"  # the provider's view read again by an approver (Check provider)
    # Slack would not take a notice, for good or for a week: the outbox gave up on it (any state
    # stays; the details name the notice and Slack's error).
    DELIVERY_GIVEN_UP = "delivery_given_up"
    # The provider's view read right after a call's outcome was recorded (outside the claim).
    READBACK = "readback"
    # The provider's answer to a claim that was no longer current when it came (its lease ran
    # out and the sweep took it, perhaps a Retry claimed it since): recorded against its own
    # claim (``details["claim_id"]``), the request left as it is.
    LATE_ANSWER = "late_answer"
    # A request still waiting when its rule's ``escalate_after`` passed: its ``escalate_to``
    # may approve it too from now on (stays pending; recorded once).
    ESCALATE = "escalate"
    # A resend the provider says it cannot do (the domain is not listed, or its view reads
    # ``canResend: false``): closed before anyone approves it, with the provider's reason.
    NOT_RESENDABLE = "not_resendable"
    # A bulk request's runner claims its next queued item: the item pending -> executing.
    RUN = "run"
    # The provider answered a bulk item's call with its rate limit (429, after the client's own
    # waits): it did nothing, so the item goes back to the queue (executing -> pending, fenced).
    THROTTLED = "throttled"
    # Cancel during a bulk request's run: its items not started yet are cancelled (the request
    # then ends as its items make it, once those running end).
    STOP = "stop"
    # A bulk request's last running item ended: the change that ended it moved the request out
    # of executing; this records (from and to its new state) that the run is over, with the
    # items' counts. Written by the store with that change (never on its own).
    FINISH = "finish"
    # A running bulk request's progress shown (queued by its runner at most every
    # BULK_PROGRESS_EVERY seconds): no change and no audit entry, only what Slack is told.
    PROGRESS = "progress"


# The actions whose details are the provider's answer (or its absence): one per provider call.
PROVIDER_ACTIONS = frozenset({Action.PROVIDER_SUCCESS, Action.PROVIDER_ERROR, Action.INTERRUPTED})
# The actions that are someone's (or the clock's) decision about the request.
DECISION_ACTIONS = frozenset(
    {
        Action.APPROVE,
        Action.RETRY,
        Action.REJECT,
        Action.EXPIRE,
        Action.POST_FAILED,
        Action.CANCEL,
        Action.RESOLVE,
        Action.NOT_RESENDABLE,
        Action.STOP,
    }
)
# The actions that move one item of a request (its execution): the claim, its outcome, a Retry,
# the sweep taking a claim whose lease ran out, an unknown outcome closed as resolved.
EXECUTION_ACTIONS = frozenset(
    {
        Action.APPROVE,
        Action.RETRY,
        Action.PROVIDER_SUCCESS,
        Action.PROVIDER_ERROR,
        Action.INTERRUPTED,
        Action.RESOLVE,
        Action.RUN,
        Action.THROTTLED,
    }
)
# Execution actions that, on a bulk request, may also be the request's own (no item named): the
# quorum's approval starts the run (its items wait in the queue), a Retry queues its unknown
# items again, Resolved closes them all.
BATCH_ACTIONS = frozenset({Action.APPROVE, Action.RETRY, Action.RESOLVE})
# The actions that record something about a pending request without moving it.
STAYING_ACTIONS = frozenset({Action.APPROVAL, Action.REMIND, Action.ESCALATE})
# The actions that record a reading of the provider's view, in whatever state the request is.
VIEW_ACTIONS = frozenset({Action.LOOKUP, Action.CHECK, Action.READBACK})
# The actions that only record something in the audit log, in whatever state the request is:
# a late answer (Approvals.record_late) and a notice the outbox gave up on.
RECORD_ONLY_ACTIONS = frozenset(
    {Action.LATE_ANSWER, Action.DELIVERY_GIVEN_UP, Action.FINISH, Action.PROGRESS}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


REQUEST_ID_RE = re.compile(r"^[0-9a-f]{16}$")


def new_request_id() -> str:
    """A short, URL- and button-safe, unguessable id (16 hex digits)."""
    return secrets.token_hex(8)


def new_claim_id() -> str:
    """A fresh token naming one claim of a request (one move to ``executing``)."""
    return secrets.token_hex(8)


def is_request_id(value: object) -> TypeGuard[str]:
    """True for a string shaped as the bot's request ids: the one check of ids that arrive in
    button values and modal metadata (untrusted, like everything Slack sends)."""
    return isinstance(value, str) and REQUEST_ID_RE.match(value) is not None


@dataclass(frozen=True)
class Approval:
    """One approver's Approve, counted towards APPROVALS_REQUIRED."""

    approver: str
    at: datetime


class Operation(StrEnum):
    """What a request asks the provider to do to each of its items."""

    CONFIRM = "confirm"  # clear the stuck verification (the provider's confirm endpoint)
    RESEND = "resend"  # send the verification email again (the provider's v2 resend action)


@dataclass(frozen=True)
class RuleTerms:
    """What the rule a request was made under decides for it, stored with the request (so a
    change of the policy file never changes a waiting request): who may approve, how many must,
    reminders and escalation. ``name`` and ``policy_hash`` say where it came from: the rule's
    name (``default`` for the policy's ``[default]``) and the first 12 hex digits of the
    SHA-256 of the policy file's bytes ("" without POLICY_FILE: the settings decided)."""

    name: str
    policy_hash: str
    # Slack user IDs (U…/W…), user-group IDs (S…) or ``*`` (every full member).
    approvers: tuple[str, ...]
    # Distinct approvals needed; 0: approved by the rule itself (runs at once, audited).
    approvals_required: int
    # Seconds between reminders while the request waits; 0: none.
    remind_every: float = 0.0
    # Seconds a request may wait before ``escalate_to`` may approve it too (None: never).
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] = ()
    # What the reason had to match (shown in the form), if anything.
    reason_pattern: str | None = None
    # A bulk request's strictest terms: an approver must also be among each of these (the
    # approvers of every other rule its emails fall under).
    also_approvers: tuple[tuple[str, ...], ...] = ()

    @property
    def by_rule(self) -> bool:
        """Approved by the rule itself: nobody is asked."""
        return self.approvals_required == 0


def rule_to_dict(rule: RuleTerms) -> dict[str, Any]:
    """The JSON-able form of a request's rule, as stored and audited."""
    return {
        "name": rule.name,
        "policy_hash": rule.policy_hash,
        "approvers": list(rule.approvers),
        "approvals_required": rule.approvals_required,
        "remind_every": rule.remind_every,
        "escalate_after": rule.escalate_after,
        "escalate_to": list(rule.escalate_to),
        "reason_pattern": rule.reason_pattern,
    } | ({"also_approvers": [list(a) for a in rule.also_approvers]} if rule.also_approvers else {})


def rule_from_dict(data: dict[str, Any]) -> RuleTerms:
    """The rule ``rule_to_dict`` wrote. Raises ValueError for a form it never writes."""
    name, required = data.get("name"), data.get("approvals_required")
    if not isinstance(name, str) or not isinstance(required, int) or isinstance(required, bool):
        raise ValueError(f"not a stored rule: {sorted(data)!r}")
    after = data.get("escalate_after")
    pattern = data.get("reason_pattern")
    return RuleTerms(
        name=name,
        policy_hash=str(data.get("policy_hash") or ""),
        approvers=tuple(str(a) for a in data.get("approvers") or ()),
        approvals_required=required,
        remind_every=float(data.get("remind_every") or 0.0),
        escalate_after=float(after) if isinstance(after, int | float) else None,
        escalate_to=tuple(str(a) for a in data.get("escalate_to") or ()),
        reason_pattern=pattern if isinstance(pattern, str) else None,
        also_approvers=tuple(
            tuple(str(a) for a in ids)
            for ids in data.get("also_approvers") or ()
            if isinstance(ids, list)
        ),
    )


@dataclass(frozen=True)
class WorkflowRun:
    """The Workflow Builder step run a request was made by (its ``function_execution_id``,
    Fx…, and its workflow's run, Wx…): the step completes with the request's outcome."""

    execution_id: str
    workflow_execution_id: str | None = None


# The fields of a request that belong to one of its items (its execution), not to the request.
ITEM_FIELDS = frozenset(
    {"email", "domain", "outcome", "view", "readback", "claim_id", "lease_until"}
)


@dataclass(frozen=True)
class Item:
    """One email of a request, and its execution: its state (the request's while it waits for
    approval or was closed without a call), the claim that may call the provider for it (with
    its lease), what the call came to, and the provider's view of its domain."""

    email: str
    domain: str
    state: State = State.PENDING
    # What the provider call came to (or why there was none): see bot.domain.outcomes.
    outcome: Outcome | None = None
    # The provider's view of the domain when the request was made (None: not read yet).
    view: DomainReading | None = None
    # The provider's view read last after the call (right after it, or by Check provider).
    readback: DomainReading | None = None
    # The current (or last) claim: its token, and until when its holder may call the provider.
    claim_id: str | None = None
    lease_until: datetime | None = None
    # Its place in the request (0 for the first).
    position: int = 0


# Of a request's items that differ, the state that names the request: the first one present.
_PRECEDENCE = (
    State.EXECUTING,
    State.UNKNOWN,
    State.FAILED,
    State.CANCELLED,
    State.RESOLVED,
    State.SUCCEEDED,
)


def request_state(states: Iterable[State], *, approved: bool = False) -> State:
    """What the states of a request's items make of the request: a one-item request (or one
    whose items all agree) is in its items' state; of items that differ, executing while any
    is running or (``approved``: a bulk request's run) still queued, then unknown while any
    outcome is, then failed if any failed, cancelled if any was stopped before it ran, resolved
    if any was closed as resolved, else succeeded."""
    distinct = set(states)
    if approved and State.PENDING in distinct:
        return State.EXECUTING
    if len(distinct) == 1:
        return distinct.pop()
    for state in _PRECEDENCE:
        if state in distinct:
            return state
    raise ValueError(f"items in {sorted(s.value for s in distinct)} make no request state")


@dataclass(frozen=True)
class VerificationRequest:
    """A request: one operation on one or more items (emails), and its approval (who asked and
    why, the quorum, who decided, expiry, where Slack shows it). Execution belongs to each item
    (:class:`Item`); the request's state is its approval's until it is approved, then what its
    items' states make of it (:func:`request_state`)."""

    id: str
    reason: str
    requester: str
    state: State
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    items: tuple[Item, ...]
    operation: Operation = Operation.CONFIRM
    channel: str | None = None
    message_ts: str | None = None
    # Who approved or rejected it (the last one, for a retried request).
    decided_by: str | None = None
    # The rejecter's optional reason.
    decision_note: str | None = None
    # The distinct approvals counted so far, oldest first (the last one claims the request).
    approvals: tuple[Approval, ...] = ()
    # Approvals that no longer count: their approver had lost the role when the quorum would
    # have completed (shown, so everyone sees whose approval was dropped).
    withdrawn: tuple[Approval, ...] = ()
    # Bumped by every change: what an optimistic compare-and-set compares.
    version: int = 0
    # The rule it was made under (None: made before rules, or in a test: the settings decide).
    rule: RuleTerms | None = None
    # When its rule's escalation was recorded (Action.ESCALATE): its escalate_to may approve.
    escalated_at: datetime | None = None
    # A bulk request (/verify-email bulk): once approved its items are run by the batch runner,
    # at the provider's pace, and Slack is told of its progress, not of each item.
    bulk: bool = False
    # When its run started (the quorum's approval), and when its progress was last shown.
    started_at: datetime | None = None
    progress_at: datetime | None = None
    # Made by a Workflow Builder step (None: by a person, with the command or the form).
    workflow: WorkflowRun | None = None

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("a request has at least one item")

    @property
    def item(self) -> Item:
        """The request's item, for what is shown and done for a one-email request; ValueError
        for a request of several (a bulk request's items are each their own)."""
        if len(self.items) != 1:
            raise ValueError(f"request {self.id} has {len(self.items)} items, not one")
        return self.items[0]

    @property
    def email(self) -> str:
        return self.item.email

    @property
    def domain(self) -> str:
        return self.item.domain

    @property
    def outcome(self) -> Outcome | None:
        return self.item.outcome

    @property
    def view(self) -> DomainReading | None:
        return self.item.view

    @property
    def readback(self) -> DomainReading | None:
        return self.item.readback

    @property
    def claim_id(self) -> str | None:
        return self.item.claim_id

    @property
    def lease_until(self) -> datetime | None:
        return self.item.lease_until

    def with_item(self, **changes: Any) -> VerificationRequest:
        """The request with its (one) item changed: ``changes`` are Item fields."""
        return replace(self, items=(replace(self.item, **changes),))

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.approver for a in self.approvals)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def is_open(self, now: datetime) -> bool:
        """Still waiting for a decision or a result: what "one open request per email" means.
        A pending request past its expiry is not open any more, whether or not it is marked."""
        return self.state in OPEN_STATES and not (
            self.state is State.PENDING and self.is_expired(now)
        )


def one_item_request(
    *, email: str, domain: str, state: State = State.PENDING, **fields: Any
) -> VerificationRequest:
    """A request for one email: ``fields`` are the request's, or its item's (ITEM_FIELDS)."""
    item_fields = {k: fields.pop(k) for k in list(fields) if k in ITEM_FIELDS}
    item = Item(email=email, domain=domain, state=state, **item_fields)
    return VerificationRequest(state=state, items=(item,), **fields)


# How far back the history beside a request, and /verify-email status, look.
HISTORY_DAYS = 30
# How many earlier requests the history beside a request counts; beyond that it says "more".
HISTORY_SHOWN = 20


@dataclass(frozen=True)
class History:
    """Earlier requests for the same email or the same domain, newest first (the request it
    is shown beside excluded), over the last ``days``: the newest HISTORY_SHOWN of them, and
    ``more`` when there were others before those."""

    email: str
    domain: str
    days: int
    requests: tuple[VerificationRequest, ...] = ()
    more: bool = False

    @property
    def cleared(self) -> tuple[VerificationRequest, ...]:
        return tuple(r for r in self.requests if r.state is State.SUCCEEDED)


@dataclass(frozen=True)
class AuditEntry:
    request_id: str
    at: datetime
    actor: str
    action: str  # an Action's value (kept as text: the log is read back as it was written)
    from_state: State | None
    to_state: State
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # the log's own sequence number, once stored


class OpenRequestExists(Exception):
    """An open request (pending, executing or unknown) already exists for this email."""

    def __init__(self, existing: VerificationRequest) -> None:
        super().__init__(f"request {existing.id} for this email is still {existing.state.value}")
        self.existing = existing


class StepAlreadyAsked(Exception):
    """A request was already made by this Workflow Builder step run (its event came again)."""

    def __init__(self, existing: VerificationRequest) -> None:
        super().__init__(f"request {existing.id} was made by this step run already")
        self.existing = existing


@dataclass(frozen=True)
class StoreFigures:
    """What the store can say of its contents at a glance (the store-derived metrics)."""

    created: int
    by_state: dict[State, int]
    oldest_pending: datetime | None
    outbox_waiting: int
    oldest_outbox: datetime | None
    # Outbox entries given up on, ever, by kind.
    given_up: dict[str, int] = field(default_factory=dict)
    # Requests by operation (its value) and state.
    by_operation: dict[tuple[str, State], int] = field(default_factory=dict)
