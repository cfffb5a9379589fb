"""The service's core: its ports and policy, and the steps every part of it shares.

The service (bot/domain/service.py, ``Approvals``) is built in layers, each a module of one
concern: this core, the queries (queries.py), execution of an approved request (execution.py),
the approval itself (approval.py) and the sweeps nobody clicks (sweeps.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.model import (
    Action,
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
    ) -> None:
        self.requests = requests
        self.provider = provider
        self.roles = roles
        self.delivery = delivery
        self.policy = policy
        self.clock = clock

    def get(self, request_id: str) -> VerificationRequest:
        request = self.requests.get(request_id)
        if request is None:
            raise Refused(Refusal.UNKNOWN_REQUEST)
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
