"""What the service answers without changing anything: safe before an acknowledgement."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.batch import is_batch
from bot.domain.core import (
    EXECUTING,
    HOME_COUNT_CAP,
    HOME_LISTED,
    HOME_PENDING_SCAN,
    PENDING,
    ServiceCore,
)
from bot.domain.inputs import InvalidInput, validate_email
from bot.domain.model import (
    HISTORY_DAYS,
    OPEN_STATES,
    State,
    VerificationRequest,
)
from bot.domain.refusals import Refusal, Refused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusReport:
    """What /verify-email status says about an email: its open request, its last outcomes."""

    email: str
    open: VerificationRequest | None
    recent: tuple[VerificationRequest, ...]
    days: int = HISTORY_DAYS


@dataclass(frozen=True)
class HomeData:
    """What one person's Home tab shows: the requests waiting for their approval (if they are
    an approver), their own requests, and the last decisions; newest first."""

    user: str
    is_approver: bool
    waiting: tuple[VerificationRequest, ...]
    mine: tuple[VerificationRequest, ...]
    decided: tuple[VerificationRequest, ...]
    required: int
    days: int = HISTORY_DAYS
    # How many of one's requests and of the decisions there are in ``days`` (``mine`` and
    # ``decided`` hold only the newest), counted up to HOME_COUNT_CAP ("that many or more").
    mine_count: int | None = None
    decided_count: int | None = None
    # More pending requests than HOME_PENDING_SCAN: ``waiting`` is from the newest of them.
    waiting_more: bool = False
    # When it was read: a running bulk request's time left is reckoned from it.
    now: datetime | None = None
    # Bulk requests running now (for an approver), newest first: a run lasts minutes.
    running: tuple[VerificationRequest, ...] = ()


class Queries(ServiceCore):
    """Read-only answers: an open request, a status, a Home tab, whether a request can be
    rejected or resolved."""

    def open_request_for(self, email: str) -> VerificationRequest | None:
        """The open request for this email, if any. One past its expiry does not count (the
        next write expires it); nothing is written here."""
        existing = self.requests.find_open(email)
        if existing is None or not existing.is_open(self.clock()):
            return None
        return existing

    def may_ask(self, requester: str, email: str | None) -> None:
        """Before the request form opens: raises Refused unless ``requester`` may ask, and
        (OPEN_REQUEST) when ``email`` has an open request (then no new one can be made)."""
        if not self.roles.is_requester(requester):
            raise Refused(self._outsider(requester, Refusal.NOT_A_REQUESTER))
        if email:
            self.askable(email)

    def askable(self, email: str) -> None:
        """Raises Refused (OPEN_REQUEST, with that request) when ``email`` has an open request.
        Read-only: the request form asks it before its ack."""
        existing = self.open_request_for(email)
        if existing is not None:
            raise Refused(Refusal.OPEN_REQUEST, existing)

    def status_of(self, user: str, email: str) -> StatusReport:
        """The open request for ``email`` and its last outcomes, for a requester or approver
        (or whoever may decide that open request: its stored rule may name someone today's
        rules do not). Raises Refused for anyone else, InvalidInput for an address that is
        not one."""
        if not (self.roles.is_requester(user) or self.is_an_approver(user)):
            try:
                waiting = self.open_request_for(validate_email(email))
            except InvalidInput:
                waiting = None
            if waiting is None or not self.may_decide(waiting, user):
                raise Refused(Refusal.NOT_A_REQUESTER)
        email = validate_email(email)
        since = self.clock() - timedelta(days=HISTORY_DAYS)
        recent = self.requests.requests_about(email, since=since, limit=5)
        return StatusReport(email, self.open_request_for(email), tuple(recent))

    def home_for(self, user: str) -> HomeData:
        """The queues one person's Home tab shows. Read-only, and bounded: each list is read
        newest first with a LIMIT through an index, and the counts stop at HOME_COUNT_CAP,
        so the cost does not grow with the store's history."""
        now = self.clock()
        is_approver = self.is_an_approver(user)
        waiting: list[VerificationRequest] = []
        since = now - timedelta(days=HISTORY_DAYS)
        pending = self.requests.newest_requests(states=PENDING, limit=HOME_PENDING_SCAN)
        # A waiting request's stored rule may name someone today's rules do not (the file
        # changed since): it waits for them all the same.
        if is_approver or self.rules is not None:
            for request in pending:
                if request.is_expired(now) or user in request.approvers:
                    continue
                if not self.may_decide(request, user):
                    continue  # another rule's approvers'
                if request.rule is not None and request.rule.by_rule:
                    continue  # its rule approves it: nobody is asked
                if request.requester == user and (
                    not self.policy.allow_self_approval or request.approvals
                ):
                    continue  # four eyes: not theirs to approve
                waiting.append(request)
        is_approver = is_approver or bool(waiting)
        mine = tuple(
            self.requests.newest_requests(requester=user, created_since=since, limit=HOME_LISTED)
        )
        mine_count = self.requests.count_requests(
            requester=user, created_since=since, cap=HOME_COUNT_CAP
        )
        decided: tuple[VerificationRequest, ...] = ()
        decided_count = 0
        running: tuple[VerificationRequest, ...] = ()
        if is_approver:
            running = tuple(
                r
                for r in self.requests.newest_requests(states=EXECUTING, limit=HOME_LISTED)
                if is_batch(r)
            )
            # Final states asked for as "not open": read newest first through (created_at).
            decided = tuple(
                self.requests.newest_requests(
                    not_states=OPEN_STATES, created_since=since, limit=HOME_LISTED
                )
            )
            decided_count = self.requests.count_requests(
                not_states=OPEN_STATES, created_since=since, cap=HOME_COUNT_CAP
            )
        return HomeData(
            user,
            is_approver,
            tuple(waiting),
            mine,
            decided,
            self.policy.approvals_required,
            mine_count=mine_count,
            decided_count=decided_count,
            waiting_more=len(pending) >= HOME_PENDING_SCAN,
            now=now,
            running=running,
        )

    def rejectable(self, request_id: str) -> VerificationRequest:
        """The request, if it can still be rejected; raises Refused. Read-only."""
        request = self.get(request_id)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise Refused(Refusal.EXPIRED_BEFORE_REJECT, request)
        if request.state is not State.PENDING:
            raise Refused(Refusal.ALREADY_DECIDED, request)
        return request

    def resolvable(self, request_id: str, actor: str | None = None) -> VerificationRequest:
        """The request, if it can be closed as resolved (by ``actor``); raises Refused.
        Read-only."""
        request = self.get(request_id)
        if actor is not None and request.requester == actor and not self.policy.allow_self_approval:
            raise Refused(Refusal.SELF_APPROVAL, request)  # four eyes, as for Retry
        if request.state is not State.UNKNOWN:
            raise Refused(Refusal.NOT_RESOLVABLE, request)
        return request
