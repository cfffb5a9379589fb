"""The application service: one method per decision, and the narrow ports it works through.

Listeners parse what Slack sent, acknowledge it, call one method here and render the answer;
the maintenance loop calls the sweeps. Each method owns the whole sequence of its decision:
who may do it, the compare-and-set in the store (with the audit entry and Slack's notices in
the same transaction), the provider call, and handing the notices to delivery.

It works through the ports in bot/domain/ports.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.domain import correlation
from bot.domain.inputs import clean_note, domain_of, validate_email, validate_reason
from bot.domain.model import (
    CLOSED_NOTICES,
    CREATED_NOTICES,
    DECIDED_NOTICES,
    HISTORY_DAYS,
    OPEN_STATES,
    Action,
    Approval,
    Notice,
    OpenRequestExists,
    State,
    VerificationRequest,
    new_claim_id,
    new_request_id,
    utcnow,
)
from bot.domain.outcomes import (
    Interrupted,
    NotPosted,
    Outcome,
    ProviderFailure,
    outcome_to_dict,
)
from bot.domain.ports import Delivery, Provider, RequestRepository, Roles, Transition
from bot.domain.refusals import Refusal, Refused
from bot.domain.views import DomainReading, ProviderView, ViewFailure

log = logging.getLogger(__name__)

PENDING = frozenset({State.PENDING})
EXECUTING = frozenset({State.EXECUTING})
UNKNOWN = frozenset({State.UNKNOWN})


# ---------------------------------------------------------------------------------------------
# The service


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

# How long an outcome's notices wait for its read-back at most: longer than a reading can take
# (bot/provider/: VIEW_CALLS calls of twice VIEW_TIMEOUT). Recording the reading makes them due
# at once; if this process stops first, they go out after this.
READBACK_HOLD = timedelta(seconds=30)

# Seconds a provider call may take before the request message says "calling the provider…"
# (a quicker call goes straight to its outcome: one update of the message, not two).
INTERIM_AFTER = 2.0
INTERIM_HOLD = timedelta(seconds=INTERIM_AFTER)

# Lost optimistic races in a row before a click gives up (each loss means someone else changed
# the request meanwhile; the next read sees it, so a loop this long takes a storm of clicks).
MAX_RACE_RETRIES = 20


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


@dataclass(frozen=True)
class Retried:
    """A Retry: the request as it was before (its unknown outcome) and as it ended."""

    before: VerificationRequest
    after: VerificationRequest


class Approvals:
    """Creates requests and carries out every decision about them."""

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

    # -- queries (read-only: safe before an acknowledgement) ---------------------------------

    def get(self, request_id: str) -> VerificationRequest:
        request = self.requests.get(request_id)
        if request is None:
            raise Refused(Refusal.UNKNOWN_REQUEST)
        return request

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
        """The open request for ``email`` and its last outcomes, for a requester or approver.
        Raises Refused for anyone else, InvalidInput for an address that is not one."""
        if not (self.roles.is_requester(user) or self.roles.is_approver(user)):
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
        is_approver = self.roles.is_approver(user)
        waiting: list[VerificationRequest] = []
        since = now - timedelta(days=HISTORY_DAYS)
        pending = self.requests.newest_requests(states=PENDING, limit=HOME_PENDING_SCAN)
        if is_approver:
            for request in pending:
                if request.is_expired(now) or user in request.approvers:
                    continue
                if request.requester == user and (
                    not self.policy.allow_self_approval or request.approvals
                ):
                    continue  # four eyes: not theirs to approve
                waiting.append(request)
        mine = tuple(
            self.requests.newest_requests(requester=user, created_since=since, limit=HOME_LISTED)
        )
        mine_count = self.requests.count_requests(
            requester=user, created_since=since, cap=HOME_COUNT_CAP
        )
        decided: tuple[VerificationRequest, ...] = ()
        decided_count = 0
        if is_approver:
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
        )

    def rejectable(self, request_id: str) -> VerificationRequest:
        """The request, if it can still be rejected; raises Refused. Read-only."""
        request = self.get(request_id)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise Refused(Refusal.EXPIRED_BEFORE_REJECT, request)
        if request.state is not State.PENDING:
            raise Refused(Refusal.ALREADY_DECIDED, request)
        return request

    # -- decisions -----------------------------------------------------------------------------

    def submit(self, email: str, reason: str, requester: str) -> VerificationRequest:
        """Store a new pending request and deliver its message and the requester's DM.

        Raises Refused (not a requester; OPEN_REQUEST, with that request, when the email
        already has an open request, found first or by the store in a race) and InvalidInput.
        """
        try:
            return self._submit(email, reason, requester)
        except OpenRequestExists as exc:
            raise Refused(Refusal.OPEN_REQUEST, exc.existing) from exc

    def _submit(self, email: str, reason: str, requester: str) -> VerificationRequest:
        if not self.roles.is_requester(requester):
            raise Refused(self._outsider(requester, Refusal.NOT_A_REQUESTER))
        email = validate_email(email)
        reason = validate_reason(reason)
        stale = self.requests.find_open(email)
        expired = None
        if stale is not None:
            if stale.is_open(self.clock()):
                raise OpenRequestExists(stale)
            # Past its expiry but not marked yet: expire it (whoever wins), then ask anew.
            expired = self._expire_if_due(stale, actor="bot")
        now = self.clock()
        request = self.requests.create(
            VerificationRequest(
                id=new_request_id(),
                email=email,
                domain=domain_of(email),
                reason=reason,
                requester=requester,
                state=State.PENDING,
                created_at=now,
                expires_at=now + self.policy.ttl,
                updated_at=now,
            ),
            actor=requester,
            notices=CREATED_NOTICES,
        )
        correlation.set_field("request_id", request.id)
        log.info("Request %s for %s by %s", request.id, request.email, requester)
        self.delivery.deliver(request.id)
        if expired is not None:
            self.delivery.deliver(expired.id)
        return request

    def look_up(self, request_id: str) -> VerificationRequest | None:
        """Read the provider's view of a new request's domain and show it beside the request.

        Called once the request is posted (never before an ack, never holding up the post),
        and by the maintenance round for a request whose lookup never finished; a failed
        reading is recorded as such, so it never blocks the request. None when there is no such
        request; a request already looked up, or no longer pending, is left as it is.
        """
        correlation.set_field("request_id", request_id)
        request = self.requests.get(request_id)
        if request is None or request.view is not None or request.state is not State.PENDING:
            return request
        reading = self._read_view(request)
        # The message shows this reading as the provider's state *before* approval ("already
        # verified: approving may change nothing"). A reading that comes back once the request
        # has left pending (approved, and perhaps already called, meanwhile; or rejected,
        # cancelled, expired) is no such thing, and may even reflect the call itself: it is
        # only audited, never shown. Checked under the row's lock, so an approval cannot slip
        # in between. After a call, the read-back ("Provider after the call") says what the
        # domain reads then; nothing is lost by not showing this one.
        recorded = self.requests.record_view(
            request_id,
            reading,
            action=Action.LOOKUP,
            actor="bot",
            now=self.clock(),
            notices=(Notice.SHOW,),
            states=PENDING,
        )
        if recorded is not None and recorded.state is not State.PENDING:
            log.info(
                "Request %s: the provider's view came back (%s) after the request was %s; "
                "audited, not shown",
                request_id,
                _reading_word(reading),
                recorded.state.value,
            )
            return recorded
        log.info("Request %s: the provider's view reads %s", request_id, _reading_word(reading))
        self.delivery.deliver(request_id)
        return recorded

    def look_up_missing(self, after: float, limit: int) -> list[VerificationRequest]:
        """Look up pending requests made more than ``after`` seconds ago that still have no
        reading of the provider's view (their lookup was cut off: the process stopped between
        posting the request and recording the reading), at most ``limit`` of them, oldest
        first. ``after`` must exceed the longest a lookup can take, so a lookup still under way
        is not repeated. Returns the requests looked up."""
        if limit <= 0:
            return []
        now = self.clock()
        cutoff = now - timedelta(seconds=after)
        # updated_at is never before created_at: the query narrows, the test below decides.
        missing = [
            r
            for r in self.requests.list_requests(PENDING, updated_before=cutoff)
            if r.view is None and r.created_at < cutoff and not r.is_expired(now)
        ]
        looked_up = []
        for request in missing[:limit]:
            with correlation.bound(request_id=request.id):
                log.info("Request %s has no provider reading yet: looking it up", request.id)
                done = self.look_up(request.id)
            if done is not None:
                looked_up.append(done)
        return looked_up

    def check_provider(self, request_id: str, approver: str) -> VerificationRequest:
        """Check provider, on an unknown outcome: read the domain's view again and show it,
        with what it means, in the thread. Read-only at the provider; the request stays
        unknown until a person decides (Retry, or Resolved)."""
        correlation.set_field("request_id", request_id)
        if not self.roles.is_approver(approver):
            raise Refused(Refusal.NOT_AN_APPROVER)
        request = self.get(request_id)
        if request.state is not State.UNKNOWN:
            raise Refused(Refusal.NOT_CHECKABLE, request)
        reading = self._read_view(request)
        recorded = self.requests.record_view(
            request_id,
            reading,
            action=Action.CHECK,
            actor=approver,
            now=self.clock(),
            notices=(Notice.REPLY_CHECK, Notice.SHOW),
        )
        if recorded is None:  # pragma: no cover - requests are never deleted
            raise Refused(Refusal.UNKNOWN_REQUEST)
        log.info(
            "Request %s: %s checked the provider: %s", request_id, approver, _reading_word(reading)
        )
        self.delivery.deliver(request_id)
        return recorded

    def start_resolution(self, request_id: str, actor: str) -> VerificationRequest:
        """Resolved was clicked: the request, if ``actor`` may close it now; raises Refused."""
        if not self.roles.is_approver(actor):
            raise Refused(Refusal.NOT_AN_APPROVER)
        return self.resolvable(request_id, actor)

    def resolvable(self, request_id: str, actor: str | None = None) -> VerificationRequest:
        """The request, if it can be closed as resolved (by ``actor``); raises Refused.
        Read-only."""
        request = self.get(request_id)
        if actor is not None and request.requester == actor and not self.policy.allow_self_approval:
            raise Refused(Refusal.SELF_APPROVAL, request)  # four eyes, as for Retry
        if request.state is not State.UNKNOWN:
            raise Refused(Refusal.NOT_RESOLVABLE, request)
        return request

    def resolve(self, request_id: str, approver: str, note: str) -> VerificationRequest:
        """Close an unknown outcome as resolved: an approver has checked the provider and
        decided no Retry is needed. Audited with who and why; the provider is not called."""
        correlation.set_field("request_id", request_id)
        if not self.roles.is_approver(approver):
            raise Refused(Refusal.NOT_AN_APPROVER)
        self.resolvable(request_id, approver)
        note = clean_note(note)
        if not note:
            raise Refused(Refusal.NOTE_REQUIRED, self.get(request_id))
        resolved = self.requests.transition(
            Transition(
                request_id,
                UNKNOWN,
                State.RESOLVED,
                actor=approver,
                action=Action.RESOLVE,
                now=self.clock(),
                details={"note": note},
                decided_by=approver,
                decision_note=note,
                notices=DECIDED_NOTICES,
            )
        )
        if resolved is None:  # retried or resolved by someone else in the same moment
            raise Refused(Refusal.NOT_RESOLVABLE, self.get(request_id))
        log.info("Request %s resolved by %s", request_id, approver)
        self.delivery.deliver(request_id)
        return resolved

    def approve(self, request_id: str, approver: str) -> VerificationRequest:
        """Approve. Until the quorum (APPROVALS_REQUIRED distinct approvers, not the requester
        but for a first self-approval where allowed) the approval is recorded and the request
        stays pending; the approval that completes it claims the request (exactly one click
        wins, however many race), calls the provider once, records what it said and delivers
        it. Returns the request as the click left it (pending, or its final state)."""
        correlation.set_field("request_id", request_id)
        if not self.roles.is_approver(approver):
            raise Refused(self._outsider(approver, Refusal.NOT_AN_APPROVER))
        for _ in range(MAX_RACE_RETRIES):
            request = self._approvable(request_id, approver)
            approvals = (*request.approvals, Approval(approver, self.clock()))
            withdrawn = tuple(w for w in request.withdrawn if w.approver != approver)
            last = len(approvals) >= self.policy.approvals_required
            lapsed: tuple[Approval, ...] = ()
            if last:
                # The quorum would complete: every earlier approval must still be an
                # approver's. One whose approver has lost the role no longer counts.
                lapsed = tuple(
                    a for a in request.approvals if not self.roles.is_approver(a.approver)
                )
                if lapsed:
                    approvals = tuple(a for a in approvals if a not in lapsed)
                    withdrawn = (*withdrawn, *lapsed)
                    last = len(approvals) >= self.policy.approvals_required
            change = Transition(
                request_id,
                PENDING,
                State.EXECUTING if last else State.PENDING,
                actor=approver,
                action=Action.APPROVE if last else Action.APPROVAL,
                now=self.clock(),
                details={"approval": len(approvals), "of": self.policy.approvals_required}
                | ({"no_longer_counted": [w.approver for w in withdrawn]} if withdrawn else {}),
                decided_by=approver if last else None,
                unexpired_only=True,
                expected_version=request.version,
                approvals=approvals,
                withdrawn=withdrawn,
                notices=(Notice.SHOW,),
                claim_id=new_claim_id() if last else None,
                lease_until=self.clock() + self.policy.lease if last else None,
                # A claim's "calling the provider…" is held for INTERIM_AFTER: a quicker
                # outcome makes it due with its own notices, and it is superseded then.
                notices_due=self.clock() + INTERIM_HOLD if last else None,
            )
            done = self.requests.transition(change)
            if done is None:
                continue  # someone changed it first: look again
            if not last:
                log.info(
                    "Request %s: approval %d of %d, by %s",
                    request_id,
                    len(approvals),
                    self.policy.approvals_required,
                    approver,
                )
                for gone in lapsed:
                    log.warning(
                        "Request %s: the approval by %s no longer counts: not an approver now",
                        request_id,
                        gone.approver,
                    )
                self.delivery.deliver(request_id)
                return done
            return self._call_provider(done, approver, retry=False)
        raise Refused(Refusal.BUSY, self.requests.get(request_id))

    def retry(self, request_id: str, approver: str) -> Retried:
        """Retry an unknown outcome: one approver claims it again and the provider is called
        once more (the quorum was met by the approval that led to the unknown outcome)."""
        correlation.set_field("request_id", request_id)
        if not self.roles.is_approver(approver):
            raise Refused(Refusal.NOT_AN_APPROVER)
        before = self.get(request_id)
        claimed = self._claim_retry(request_id, approver)
        return Retried(before, self._call_provider(claimed, approver, retry=True))

    def cancel(self, request_id: str, actor: str) -> VerificationRequest:
        """The requester withdraws a pending request (before the provider is called)."""
        correlation.set_field("request_id", request_id)
        request = self.get(request_id)
        if request.requester != actor:
            raise Refused(Refusal.NOT_THE_REQUESTER, request)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise self._expire_and_refuse(request, actor, Refusal.EXPIRED_BEFORE_CANCEL)
        cancelled = self.requests.transition(
            Transition(
                request_id,
                PENDING,
                State.CANCELLED,
                actor=actor,
                action=Action.CANCEL,
                now=self.clock(),
                decided_by=actor,
                notices=(Notice.SHOW, Notice.SETTLE_DM),
            )
        )
        if cancelled is None:  # approved, rejected or expired in the same moment
            raise Refused(Refusal.ALREADY_DECIDED, self.get(request_id))
        log.info("Request %s cancelled by its requester", request_id)
        self.delivery.deliver(request_id)
        return cancelled

    def start_rejection(self, request_id: str, actor: str) -> VerificationRequest:
        """Reject was clicked: the request, if ``actor`` may reject it now; raises Refused."""
        if not self.roles.is_approver(actor):
            raise Refused(Refusal.NOT_AN_APPROVER)
        return self._still_rejectable(request_id, actor)

    def reject(self, request_id: str, actor: str, note: str = "") -> VerificationRequest:
        """Reject a pending request (the provider is never called) and deliver the news."""
        correlation.set_field("request_id", request_id)
        if not self.roles.is_approver(actor):
            raise Refused(Refusal.NOT_AN_APPROVER)
        self._still_rejectable(request_id, actor)
        note = clean_note(note)
        rejected = self.requests.transition(
            Transition(
                request_id,
                PENDING,
                State.REJECTED,
                actor=actor,
                action=Action.REJECT,
                now=self.clock(),
                details={"note": note} if note else {},
                decided_by=actor,
                decision_note=note or None,
                notices=CLOSED_NOTICES,
            )
        )
        if rejected is None:  # decided by someone else in the same moment
            self.delivery.deliver(request_id)
            raise Refused(Refusal.ALREADY_DECIDED, self.get(request_id))
        log.info("Request %s rejected by %s", request_id, actor)
        self.delivery.deliver(request_id)
        return rejected

    def close_unposted(self, request_id: str, slack_error: str) -> VerificationRequest | None:
        """Slack will never take the request message: close the request (nobody can decide
        it) and tell the requester why. None when it was no longer pending."""
        closed = self.requests.transition(
            Transition(
                request_id,
                PENDING,
                State.EXPIRED,
                actor="bot",
                action=Action.POST_FAILED,
                now=self.clock(),
                details={"error": slack_error},
                outcome=NotPosted(slack_error),
                notices=(Notice.DM_NOT_POSTED,),
            )
        )
        if closed is not None:
            self.delivery.deliver(request_id)
        return closed

    # -- what happens without anyone clicking (bot/maintenance.py) ----------------------------

    def remind_due(self) -> list[VerificationRequest]:
        """Remind the approvers of each request pending for REMIND_EVERY since it last changed
        (asked, approved once, reminded). Safe on every replica at once: each reminder is a
        compare-and-set on the request's last change, so one replica sends it."""
        if self.policy.remind_every <= 0:
            return []
        now = self.clock()
        cutoff = now - timedelta(seconds=self.policy.remind_every)
        reminded = []
        for request in self.requests.list_requests(PENDING, updated_before=cutoff):
            if request.is_expired(now):
                continue  # the expiry sweep takes it
            done = self.requests.transition(
                Transition(
                    request.id,
                    PENDING,
                    State.PENDING,
                    actor="bot",
                    action=Action.REMIND,
                    now=now,
                    unexpired_only=True,
                    updated_before=cutoff,
                    notices=(Notice.REMIND,),
                )
            )
            if done is not None:
                self.delivery.deliver(done.id)
                reminded.append(done)
        return reminded

    def expire_due(self) -> list[VerificationRequest]:
        """Expire every pending request past REQUEST_TTL; returns those this call expired.

        Safe on every replica at once: each transition is a compare-and-set, so exactly one
        replica expires a given request, and only its notices are stored and delivered.
        """
        due = self.requests.list_requests(PENDING, expires_before=self.clock())
        expired = [done for r in due if (done := self._expire_if_due(r, actor="bot")) is not None]
        for request in expired:
            with correlation.bound(request_id=request.id):
                log.info("Request %s expired without a decision", request.id)
                self.delivery.deliver(request.id)
        return expired

    def recover_interrupted(self, max_call_seconds: float) -> list[VerificationRequest]:
        """Claims whose lease ran out become ``unknown``: requests left ``executing`` by a
        process that stopped (a crash, a kill, a lost machine, a pause) while calling the
        provider, so nobody knows whether the provider acted.

        Each claim carries its lease (``lease_until``, renewed before each further attempt), so
        a live call is never taken: the compare-and-set re-checks, under the row's lock, that
        the request is still executing under the claim listed and that its lease ran out. A
        claim with no lease (made by a bot before leases, schema 5) is taken when older than
        ``max_call_seconds``, as then.
        """
        now = self.clock()
        cutoff = now - timedelta(seconds=max_call_seconds)
        recovered = []
        for request in self.requests.list_requests(EXECUTING):
            details: dict[str, Any] = {"executing_since": request.updated_at.isoformat()}
            if request.lease_until is not None:
                if request.lease_until >= now:
                    continue  # a live claim
                details |= {
                    "claim_id": request.claim_id,
                    "lease_until": request.lease_until.isoformat(),
                }
            elif request.updated_at >= cutoff:
                continue
            done = self.requests.transition(
                Transition(
                    request.id,
                    EXECUTING,
                    State.UNKNOWN,
                    actor="bot",
                    action=Action.INTERRUPTED,
                    now=now,
                    details=details,
                    outcome=Interrupted(),
                    # Re-checked in the same compare-and-set: a request claimed afresh, or whose
                    # lease was renewed, since it was listed is a live call.
                    fence=request.claim_id,
                    lease_expired_by=now if request.lease_until is not None else None,
                    updated_before=cutoff if request.lease_until is None else None,
                    notices=DECIDED_NOTICES,
                )
            )
            if done is not None:
                with correlation.bound(request_id=done.id):
                    log.warning(
                        "Request %s: its claim's lease ran out while executing (its process "
                        "stopped or stalled): now unknown",
                        done.id,
                    )
                    self.delivery.deliver(done.id)
                recovered.append(done)
        return recovered

    # -- the steps -----------------------------------------------------------------------------

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
                notices=CLOSED_NOTICES,
            )
        )

    def _expire_and_refuse(
        self, request: VerificationRequest, actor: str, code: Refusal
    ) -> Refused:
        """The refusal for a request found past its expiry, which is marked expired first."""
        if self._expire_if_due(request, actor=actor) is not None:
            self.delivery.deliver(request.id)
        return Refused(code, self.requests.get(request.id) or request)

    def _still_rejectable(self, request_id: str, actor: str) -> VerificationRequest:
        request = self.get(request_id)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise self._expire_and_refuse(request, actor, Refusal.EXPIRED_BEFORE_REJECT)
        if request.state is not State.PENDING:
            raise Refused(Refusal.ALREADY_DECIDED, request)
        return request

    def _call_provider(
        self, claimed: VerificationRequest, approver: str, *, retry: bool
    ) -> VerificationRequest:
        """Call the provider for a request this click claimed, and deliver what it said."""
        request_id = claimed.id
        log.info(
            "Request %s %s by %s; calling the provider",
            request_id,
            "retried" if retry else "approved",
            approver,
        )
        # The provider is called at once; "calling the provider…" goes to Slack alongside, so a
        # slow Slack never delays the call (nor eats into its lease), once the call has taken
        # INTERIM_AFTER: a quicker call's outcome is queued by then, and the outbox sends the
        # message's final state in one update instead of two (an update superseded by a later
        # one queued behind it is not sent).
        wait_for_interim = self.delivery.deliver_alongside(request_id, after=INTERIM_AFTER)
        final = self._execute(claimed, approver)
        log.info("Request %s is %s", final.id, final.state.value)
        wait_for_interim()  # in order: the interim update is finished with before the final
        self.delivery.deliver(request_id)
        return final

    def _outsider(self, user: str, code: Refusal) -> Refusal:
        """The refusal for ``user`` without the role: NOT_A_MEMBER when ``*`` or a group would
        have given it, but they are not a full member of the workspace (or Slack could not
        say); ``code`` otherwise."""
        return Refusal.NOT_A_MEMBER if self.roles.excluded(user) else code

    def _approvable(self, request_id: str, approver: str) -> VerificationRequest:
        """The request, if ``approver``'s Approve may count now; raises Refused otherwise."""
        request = self.get(request_id)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise self._expire_and_refuse(request, approver, Refusal.EXPIRED)
        if request.state is State.UNKNOWN:
            raise Refused(Refusal.USE_RETRY, request)
        if request.state is not State.PENDING:
            raise Refused(Refusal.ALREADY_DECIDED, request)
        if approver in request.approvers:
            raise Refused(Refusal.ALREADY_APPROVED, request)
        if request.requester == approver and (
            not self.policy.allow_self_approval or request.approvals
        ):
            # Four eyes: the requester's own Approve counts only where self-approval is
            # allowed, and never as a second or later approval.
            raise Refused(Refusal.SELF_APPROVAL, request)
        return request

    def _claim_retry(self, request_id: str, approver: str) -> VerificationRequest:
        """Atomically move an unknown request back to ``executing``: exactly one Retry wins.
        Only an unknown one: a stale Retry can never call the provider for another reason."""
        request = self.get(request_id)
        if request.requester == approver and not self.policy.allow_self_approval:
            raise Refused(Refusal.SELF_APPROVAL, request)
        if request.state is not State.UNKNOWN:
            raise Refused(Refusal.NOT_RETRYABLE, request)
        claimed = self.requests.transition(
            Transition(
                request_id,
                UNKNOWN,
                State.EXECUTING,
                actor=approver,
                action=Action.RETRY,
                now=self.clock(),
                decided_by=approver,
                notices=(Notice.SHOW,),
                claim_id=new_claim_id(),
                lease_until=self.clock() + self.policy.lease,
                notices_due=self.clock() + INTERIM_HOLD,
            )
        )
        if claimed is None:
            raise Refused(Refusal.ALREADY_DECIDED, self.get(request_id))
        return claimed

    def _execute(self, request: VerificationRequest, approver: str) -> VerificationRequest:
        """Call the provider for a request this process claimed, and record the outcome.

        The outcome's write is fenced on this claim: if its lease ran out and the sweep took it
        (perhaps a Retry claimed it since), the answer is recorded against this claim as a late
        answer, never on the request's current state. The domain is read back after the
        outcome is recorded, outside the claim.
        """
        outcome: Outcome
        try:
            outcome = self.provider.confirm(
                request.email, renew=lambda seconds: self._renew(request, seconds)
            )
        except ProviderFailure as failure:
            outcome = failure.outcome
            to_state = State.UNKNOWN if outcome.outcome_unknown else State.FAILED
            action = Action.PROVIDER_ERROR
        else:
            to_state, action = State.SUCCEEDED, Action.PROVIDER_SUCCESS
        final = self.requests.transition(
            Transition(
                request.id,
                EXECUTING,
                to_state,
                actor=approver,
                action=action,
                now=self.clock(),
                outcome=outcome,
                notices=DECIDED_NOTICES,
                fence=request.claim_id,
                notices_due=None if to_state is State.FAILED else self.clock() + READBACK_HOLD,
            )
        )
        if final is None:
            return self._late(request, outcome, approver)
        # What the domain reads now, shown with the outcome: after a success, and (once,
        # automatically) after an outcome nobody knows. A refusal changed nothing, so there is
        # nothing to read back.
        return self._read_back(final) if to_state is not State.FAILED else final

    def _renew(self, request: VerificationRequest, seconds: float) -> bool:
        """Keep this claim for ``seconds`` more (a wait before the next attempt) and one more
        lease; False when the claim is no longer this process's to use."""
        now = self.clock()
        until = now + timedelta(seconds=seconds) + self.policy.lease
        renewed = request.claim_id is not None and self.requests.renew_lease(
            request.id, request.claim_id, until=until, now=now
        )
        if not renewed:
            log.warning(
                "Request %s: claim %s was lost (its lease ran out): the provider is not called "
                "again under it",
                request.id,
                request.claim_id,
            )
        return renewed

    def _read_back(self, final: VerificationRequest) -> VerificationRequest:
        """Read the domain after the outcome was recorded and store the reading as the
        request's read-back, shown only while the request is still as the outcome left it."""
        reading = self._read_view(final)
        recorded = self.requests.record_view(
            final.id,
            reading,
            action=Action.READBACK,
            actor="bot",
            now=self.clock(),
            states=frozenset({final.state}),
        )
        return final if recorded is None or recorded.state is not final.state else recorded

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

    def _late(
        self, request: VerificationRequest, outcome: Outcome, approver: str
    ) -> VerificationRequest:
        """The provider answered after this claim stopped being the request's current one
        (its lease ran out and the sweep took it; a Retry may have claimed it since).

        The answer is recorded in the audit log against its own claim, with what the provider
        said, and the request is left as it is: never written over a later claim's state.
        """
        log.warning(
            "Request %s: the provider answered claim %s after its lease ran out; recorded as a "
            "late answer: %s",
            request.id,
            request.claim_id,
            outcome_to_dict(outcome),
        )
        recorded = self.requests.record_late(
            request.id,
            claim_id=request.claim_id,
            actor=approver,
            now=self.clock(),
            details=outcome_to_dict(outcome),
        )
        return recorded or self.get(request.id)


def _reading_word(reading: DomainReading) -> str:
    if isinstance(reading, ProviderView):
        return reading.status
    return f"unavailable ({reading.kind})"
