"""The ports the domain works through, implemented at the edge (bot/services.py wires them).

* :class:`RequestRepository`: durable requests and their audit log (bot/store/), whose one
  write is a :class:`Transition` (a compare-and-set) and whose failures are :class:`StoreError`;
* :class:`Provider`: the provider's calls (confirm, resend) and its per-domain view
  (bot/provider/);
* :class:`Roles`: who is a requester or an approver (bot/slack/roles.py);
* :class:`Delivery`: sends what the outbox holds for a request (bot/slack/outbox.py).

What Slack is told of a change is not the domain's to choose: the store queues, with each
change, what the edge's table (:data:`Announce`, bot/slack/notices.py) names for its action, as
:class:`OutboxEntry` rows whose ``kind`` and ``queue`` are the edge's words, opaque here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.domain.model import Action, Approval, State, VerificationRequest
from bot.domain.outcomes import Cleared, Outcome, Resent, outcome_to_dict
from bot.domain.views import DomainReading, ProviderView, view_to_dict


class StoreError(Exception):
    """The store cannot do what was asked; the message is safe to log and names nothing secret."""


@dataclass(frozen=True)
class Transition:
    """One compare-and-set: move ``request_id`` from one of ``from_states`` to ``to_state``.

    The store writes it only if the request is in one of ``from_states`` (and, with
    ``unexpired_only``, not past its expiry; with ``updated_before``, unchanged since; with
    ``expected_version``, at exactly that version), and then, in the same transaction, the
    audit entry (``actor``, ``action``, ``details``) and what the edge tells of that action.
    ``decided_by``, ``decision_note``, ``outcome`` and ``approvals`` (the whole list) are
    stored when given; the outcome also goes into the audit details. A staying action
    (``STAYING_ACTIONS``) goes from pending to pending.

    An execution action (``EXECUTION_ACTIONS``) names its ``item``: ``from_states`` and
    ``to_state`` are then the item's, and the request moves to what its items make of it. A
    claim stores the item's ``claim_id`` and ``lease_until``; ``fence`` requires the item's
    current claim to be that one, and ``lease_expired_by`` its lease to have run out before
    that time.
    """

    request_id: str
    from_states: frozenset[State]
    to_state: State
    actor: str
    action: Action
    now: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    decided_by: str | None = None
    decision_note: str | None = None
    outcome: Outcome | None = None
    unexpired_only: bool = False
    updated_before: datetime | None = None
    expected_version: int | None = None
    approvals: tuple[Approval, ...] | None = None
    # Approvals that no longer count (their approver lost the role), stored with ``approvals``.
    withdrawn: tuple[Approval, ...] = ()
    # The provider's view read back right after the call, stored with its outcome.
    readback: DomainReading | None = None
    # A claim (a move to executing): its fresh token and until when it may call the provider,
    # both stored with the request.
    claim_id: str | None = None
    lease_until: datetime | None = None
    # The fence: written only while the request's current claim is this one.
    fence: str | None = None
    # The sweep: written only if the request's lease ran out before this time.
    lease_expired_by: datetime | None = None
    # The item (its position) this change executes: its state moves (from one of
    # ``from_states`` to ``to_state``), and the outcome, read-back, claim, lease, fence and the
    # sweep's test are its; the request moves to what its items make of it. None: a change of
    # the request's approval (its waiting items close with it when it closes).
    item: int | None = None
    # What is told of this change waits until then, if not due at once: an outcome waits for
    # its read-back (which makes it due as soon as it is recorded), so Slack is told both
    # together; a claim's "calling the provider…" waits for a quicker outcome to supersede it.
    held_until: datetime | None = None
    # An escalation (Action.ESCALATE): when it was recorded, stored with the request.
    escalated_at: datetime | None = None

    @property
    def audit_details(self) -> dict[str, Any]:
        """What the audit entry records: the outcome's serialised form, then ``details``."""
        base = outcome_to_dict(self.outcome) if self.outcome is not None else {}
        if self.readback is not None:
            base["readback"] = view_to_dict(self.readback)
        return base | dict(self.details)


class RequestRepository(Protocol):
    """Durable requests and their append-only audit log (bot/store/)."""

    def create(
        self, request: VerificationRequest, actor: str, *, held_until: datetime | None = None
    ) -> VerificationRequest:
        """Store a new pending request; raises OpenRequestExists if its email has one. What is
        told of it waits until ``held_until`` (if given) or until its lookup is recorded
        (``record_view`` with ``Action.LOOKUP``), whichever comes first."""
        ...

    def get(self, request_id: str) -> VerificationRequest | None: ...

    def transition(self, change: Transition) -> VerificationRequest | None:
        """The request as changed, or None when the compare-and-set did not match. A change of
        one item of a bulk request returns the request with that item alone in ``items``
        (each item keeps its ``position``): its other items are not read back."""
        ...

    def find_open(self, email: str) -> VerificationRequest | None: ...

    def find_by_step(self, execution_id: str) -> VerificationRequest | None:
        """The request made by the Workflow Builder step run ``execution_id``, if any."""
        ...

    def list_requests(
        self,
        states: frozenset[State] | None = None,
        *,
        expires_before: datetime | None = None,
        updated_before: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[VerificationRequest]: ...

    def requests_about(
        self, email: str, domain: str | None = None, *, since: datetime, limit: int = 20
    ) -> list[VerificationRequest]: ...

    def newest_requests(
        self,
        *,
        limit: int,
        states: frozenset[State] | None = None,
        requester: str | None = None,
        created_since: datetime | None = None,
        not_states: frozenset[State] | None = None,
    ) -> list[VerificationRequest]:
        """At most ``limit`` matching requests, newest first, read through an index."""
        ...

    def count_requests(
        self,
        *,
        cap: int,
        states: frozenset[State] | None = None,
        requester: str | None = None,
        created_since: datetime | None = None,
        not_states: frozenset[State] | None = None,
    ) -> int:
        """How many requests match, counting at most ``cap``."""
        ...

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
        """Store a reading of the provider's view with the request's ``item`` (``Action.LOOKUP``:
        as its ``view``; ``Action.CHECK``: as its ``readback``), audited, in any state; None when
        there is no such request. With ``states``, a request found (under its lock) in none of
        them gets only the audit entry, and is returned in that other state."""
        ...

    def renew_lease(
        self, request_id: str, claim_id: str, *, until: datetime, now: datetime
    ) -> bool:
        """Extend the lease of the request's claim ``claim_id`` to ``until``: only while the
        request is executing under that claim and its lease has not run out at ``now``. False
        when it did not (the claim was taken, or its lease ran out): then stop calling."""
        ...

    def record_late(
        self,
        request_id: str,
        *,
        claim_id: str | None,
        actor: str,
        now: datetime,
        details: Mapping[str, Any],
    ) -> VerificationRequest | None:
        """Append a ``late_answer`` audit entry against the claim ``claim_id`` (in its
        details), from and to the request's current state, which does not change. The request
        as it stands, or None when there is no such request."""
        ...

    def claim_next_item(
        self,
        *,
        now: datetime,
        claim_id: str,
        lease_until: datetime,
        interval: float,
        concurrency: int,
    ) -> Claimed | Hold:
        """The batch runner's claim, shared by every replica through the store: in one
        transaction, unless the provider's pace (the next free slot, ``interval`` seconds after
        the last one taken, or later when the provider asked) or ``concurrency`` items already
        running (live leases, across all bulk requests) say to wait, claim the next queued item
        of the oldest running bulk request (pending -> executing under ``claim_id`` until
        ``lease_until``, audited as ``run``) and take the slot."""
        ...

    def hold_pace(self, until: datetime) -> None:
        """No bulk item is claimed before ``until`` (the provider asked to slow down); a later
        hold already set stands."""
        ...

    def take_slot(self, now: datetime, interval: float) -> None:
        """A single request's call is made now, unpaced: the batch runners' next slot moves on
        by ``interval``, so that together they stay within the provider's pace."""
        ...

    def show_progress(self, request_id: str, *, now: datetime, every: float) -> bool:
        """Queue an update of a running bulk request's message (its progress), unless one was
        queued less than ``every`` seconds ago; True when queued."""
        ...


@dataclass(frozen=True)
class StepFailure:
    """A Workflow Builder step run whose request could not be made: the words it fails with,
    the attempts made at telling Slack (this one included), and since when."""

    execution_id: str
    error: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Claimed:
    """A bulk item the runner claimed: the request as the claim left it, and the item's place."""

    request: VerificationRequest
    position: int


@dataclass(frozen=True)
class Hold:
    """Nothing claimed: ask again in ``seconds`` (the pace, or every slot busy); ``idle`` when no
    bulk item is queued at all (then until something is approved)."""

    seconds: float
    idle: bool = False


class Provider(Protocol):
    def confirm(self, email: str, *, renew: Callable[[float], bool] | None = None) -> Cleared:
        """Clear the verification for ``email``; raises ProviderFailure. Each attempt ends by
        its deadline. Before each attempt after the first, ``renew(seconds)`` is asked to keep
        the claim for that long (the wait before it and the attempt); when it says no, no
        further attempt is made (the failure so far is raised)."""
        ...

    def resend(
        self,
        domain: str,
        *,
        language: str,
        domain_id: str | None = None,
        renew: Callable[[float], bool] | None = None,
    ) -> Resent:
        """Send ``domain``'s verification email again, in ``language`` (``en`` or ``sv``),
        through the provider's v2 resend action (the domain found by name unless its
        ``domain_id`` is known); raises ProviderFailure. Deadlines and ``renew`` as for
        ``confirm``."""
        ...

    def view(self, domain: str, domain_id: str | None = None) -> ProviderView:
        """The provider's email-verification view of ``domain`` (looked up by name unless its
        ``domain_id`` is known), bounded in time; raises ViewFailure."""
        ...


class Roles(Protocol):
    def is_requester(self, user_id: str) -> bool: ...

    def is_approver(self, user_id: str) -> bool: ...

    def is_among(self, user_id: str, ids: Sequence[str]) -> bool:
        """Whether ``user_id`` is one of ``ids`` (user IDs, user-group IDs, ``*``), as for
        APPROVERS: what a rule's ``approvers``, ``escalate_to`` and ``requesters`` mean."""
        ...

    def excluded(self, user_id: str) -> bool:
        """True when the last check found ``user_id`` not a full member of the workspace (or
        could not tell); asks nothing. Only chooses a refusal's words."""
        ...


class Delivery(Protocol):
    def deliver(self, request_id: str) -> None:
        """Send what is due for the request now (whatever cannot be sent is retried later)."""
        ...

    def deliver_alongside(self, request_id: str, after: float = 0.0) -> Callable[[], None]:
        """Deliver in the background once ``after`` seconds have passed or the returned function
        is called, whichever comes first; that function then waits until it is done."""
        ...


# The edge's table of what to tell Slack of a change: (kind, queue) pairs for an action, in the
# order they are delivered within each queue (bot/slack/notices.py).
# ``bulk``: the change is a bulk request's (bot/slack/notices.py's TOLD_BULK).
Announce = Callable[[Action, bool], Sequence[tuple[str, str]]]


@dataclass(frozen=True)
class OutboxEntry:
    """One thing to tell Slack about a request, stored with the change that caused it.

    ``kind`` names what to deliver and ``queue`` which of the request's queues it waits in (the
    edge's words, from :data:`Announce`); ``audit_id`` is the audit entry of the change that
    queued it: a late delivery describes that change, never a later one.
    """

    id: int
    request_id: str
    kind: str
    queue: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    audit_id: int | None = None
    # An earlier claim may have sent it already: an attempt failed (Slack's answer may have
    # been lost) or a lease ran out before its claimer finished (a crash mid-call).
    tried: bool = False


@dataclass(frozen=True)
class PostedButtons:
    """Where one button-bearing message is (``channel``, ``ts``; ``surface`` is the edge's
    name for what it is), which change it described (``audit_id``), and when it was posted;
    kept until it is rewritten without its buttons."""

    id: int
    request_id: str
    surface: str
    channel: str
    ts: str
    audit_id: int | None
    posted_at: datetime
