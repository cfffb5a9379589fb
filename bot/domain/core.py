"""The service's core: its ports and policy, and the steps every part of it shares.

The service (bot/domain/service.py, ``Approvals``) is built in layers, each a module of one
concern: this core, the queries (queries.py), execution of an approved request (execution.py),
the approval itself (approval.py) and the sweeps nobody clicks (sweeps.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.domain.model import (
    Action,
    Operation,
    RuleTerms,
    State,
    VerificationRequest,
    utcnow,
)
from bot.domain.ports import Delivery, Provider, RequestRepository, Roles, Transition
from bot.domain.refusals import Refusal, Refused
from bot.domain.views import DomainReading, ViewFailure

log = logging.getLogger(__name__)


PENDING = frozenset({State.PENDING})
EXECUTING = frozenset({State.EXECUTING})
UNKNOWN = frozenset({State.UNKNOWN})


@dataclass(frozen=True)
class ApprovalPolicy:
    allow_self_approval: bool = False
    ttl: timedelta = timedelta(days=1)
    # Distinct approvers needed before the provider is called (APPROVALS_REQUIRED).
    approvals_required: int = 1
    # Seconds between reminders while a request is pending (REMIND_EVERY); 0: none.
    remind_every: float = 0.0
    # How long a claim may call the provider before the sweep may take it: one attempt's
    # deadline plus a grace (bot/services.py derives it from the provider client).
    lease: timedelta = timedelta(seconds=60)
    # The language of the email a resend sends (RESEND_LANGUAGE: en or sv).
    resend_language: str = "en"
    # Bulk requests: the most emails of one (BULK_MAX); the distinct approvals one needs at
    # least, without a policy file (a policy's [bulk] approvals_required decides with one).
    bulk_max: int = 1000
    bulk_approvals_required: int = 2
    # The batch runner: provider calls a second and at once (BULK_RATE, BULK_CONCURRENCY),
    # seconds between progress updates (BULK_PROGRESS_EVERY).
    bulk_rate: float = 5.0
    bulk_concurrency: int = 4
    bulk_progress_every: float = 5.0


class Decided(Protocol):
    """What the rules decide for one request to be made (bot/domain/policy.py's Decision)."""

    @property
    def allowed(self) -> bool: ...

    @property
    def terms(self) -> RuleTerms: ...


class RuleBook(Protocol):
    """The approval rules (bot/domain/policy.py's Policy): which rule decides a request."""

    def decide(
        self,
        *,
        domain: str,
        operation: Operation,
        requester: str,
        is_among: Callable[[str, Sequence[str]], bool],
    ) -> Decided: ...

    def approver_ids(self) -> tuple[str, ...]:
        """Every ID any rule names as approvers or escalate_to (who may decide something)."""
        ...

    @property
    def bulk_approvals_required(self) -> int:
        """The distinct approvals a bulk request needs at least (the policy's [bulk])."""
        ...


# The Home tab's bounds: most requests of each list read (at least as many as it shows), most
# pending requests looked through for an approver's queue, and where its counts stop.
HOME_LISTED = 20
HOME_PENDING_SCAN = 200
HOME_COUNT_CAP = 100

# How long what is told of an outcome waits for its read-back at most: longer than a reading
# can take (bot/provider/: VIEW_CALLS calls of twice VIEW_TIMEOUT). Recording the reading makes
# it due at once; if this process stops first, it goes out after this.
READBACK_HOLD = timedelta(seconds=30)

# Seconds a new request's message waits for the provider's view of its domain: posted with it
# as soon as the lookup is recorded (one post, no update adding it), or without it after this
# (the lookup's own update adds it then). The submit's ack never waits for either.
LOOKUP_WAIT = 1.0
LOOKUP_HOLD = timedelta(seconds=LOOKUP_WAIT)

# Seconds a provider call may take before the request message says "calling the provider…"
# (a quicker call goes straight to its outcome: one update of the message, not two).
INTERIM_AFTER = 2.0
INTERIM_HOLD = timedelta(seconds=INTERIM_AFTER)

# Lost optimistic races in a row before a click gives up (each loss means someone else changed
# the request meanwhile; the next read sees it, so a loop this long takes a storm of clicks).
MAX_RACE_RETRIES = 20


class ServiceCore:
    """The ports, the policy and the clock, and the steps the decisions share."""

    def __init__(
        self,
        requests: RequestRepository,
        provider: Provider,
        roles: Roles,
        delivery: Delivery,
        policy: ApprovalPolicy,
        clock: Callable[[], datetime] = utcnow,
        rules: RuleBook | None = None,
    ) -> None:
        """``rules`` decide each new request's approvers, quorum, reminders and escalation
        (stored with it); without them the settings decide (``policy``, the Roles' approvers)
        and a request carries no rule."""
        self.requests = requests
        self.provider = provider
        self.roles = roles
        self.delivery = delivery
        self.policy = policy
        self.clock = clock
        self.rules = rules
        # Called when bulk items were queued (a run approved, a Retry): the wiring wakes this
        # process's batch runners (bot/services.py); every other replica's find them in turn.
        self.on_queued: Callable[[], None] = lambda: None

    def get(self, request_id: str) -> VerificationRequest:
        request = self.requests.get(request_id)
        if request is None:
            raise Refused(Refusal.UNKNOWN_REQUEST)
        return request

    def required(self, request: VerificationRequest) -> int:
        """The distinct approvals the request needs: its rule's, else APPROVALS_REQUIRED (for
        a bulk request, at least the bulk requests' own minimum)."""
        if request.rule is not None:
            return request.rule.approvals_required
        if request.bulk:
            return max(self.policy.approvals_required, self.policy.bulk_approvals_required)
        return self.policy.approvals_required

    def remind_every(self, request: VerificationRequest) -> float:
        """Seconds between the request's reminders (0: none): its rule's, else REMIND_EVERY."""
        if request.rule is not None:
            return request.rule.remind_every
        return self.policy.remind_every

    def approvers_of(self, request: VerificationRequest) -> tuple[str, ...] | None:
        """Who may decide the request (IDs, as for APPROVERS): its rule's approvers, and its
        escalate_to once it was escalated; None when the settings' APPROVERS decide."""
        rule = request.rule
        if rule is None:
            return None
        return rule.approvers + (rule.escalate_to if request.escalated_at is not None else ())

    def may_decide(self, request: VerificationRequest, user: str) -> bool:
        """Whether ``user`` is one of the request's approvers (approve, reject, retry,
        resolve, check): the rule's it was made under, else APPROVERS."""
        approvers = self.approvers_of(request)
        if approvers is None:
            return self.roles.is_approver(user)
        also = request.rule.also_approvers if request.rule is not None else ()
        return self.roles.is_among(user, approvers) and all(
            self.roles.is_among(user, ids) for ids in also
        )

    def is_an_approver(self, user: str) -> bool:
        """Whether ``user`` may decide some request: one of the rules' approvers (or their
        escalate_to), else of APPROVERS. What a request needs is ``may_decide``'s."""
        if self.roles.is_approver(user):
            return True
        return self.rules is not None and self.roles.is_among(user, self.rules.approver_ids())

    def _decider(self, request_id: str, user: str) -> VerificationRequest:
        """The request, if ``user`` may decide it; raises Refused (NOT_AN_APPROVER) if not."""
        request = self.get(request_id)
        if not self.may_decide(request, user):
            raise Refused(self._outsider(user, Refusal.NOT_AN_APPROVER))
        return request

    def _expire_if_due(
        self, request: VerificationRequest, actor: str
    ) -> VerificationRequest | None:
        """Mark a pending request past its expiry as expired; return it, or None if not due."""
        now = self.clock()
        if request.state is not State.PENDING or not request.is_expired(now):
            return None
        return self.requests.transition(
            Transition(
                request.id,
                PENDING,
                State.EXPIRED,
                actor=actor,
                action=Action.EXPIRE,
                now=now,
                details={"expires_at": request.expires_at.isoformat()},
            )
        )

    def _expire_and_refuse(
        self, request: VerificationRequest, actor: str, code: Refusal
    ) -> Refused:
        """The refusal for a request found past its expiry, which is marked expired first."""
        if self._expire_if_due(request, actor=actor) is not None:
            self.delivery.deliver(request.id)
        return Refused(code, self.requests.get(request.id) or request)

    def _outsider(self, user: str, code: Refusal) -> Refusal:
        """The refusal for ``user`` without the role: NOT_A_MEMBER when ``*`` or a group would
        have given it, but they are not a full member of the workspace (or Slack could not
        say); ``code`` otherwise."""
        return Refusal.NOT_A_MEMBER if self.roles.excluded(user) else code

    def _read_view(self, request: VerificationRequest) -> DomainReading:
        """The provider's view of the request's domain now: a reading, or why there is none.
        Reuses the domain's id from an earlier reading, so a read-back is a single call."""
        known = next(
            (r.domain_id for r in (request.readback, request.view) if r and r.domain_id), None
        )
        try:
            return self.provider.view(request.domain, known)
        except ViewFailure as failure:
            return failure.unavailable
