"""What happens without anyone clicking (run by bot/maintenance.py on every replica at once):
reminders, expiry, claims whose lease ran out, lookups that never finished.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.domain import correlation
from bot.domain.bulk import Bulk
from bot.domain.core import (
    EXECUTING,
    PENDING,
)
from bot.domain.model import (
    Action,
    Item,
    Operation,
    State,
    VerificationRequest,
)
from bot.domain.outcomes import (
    Interrupted,
)
from bot.domain.ports import Transition
from bot.domain.views import resend_refusal

log = logging.getLogger(__name__)


class Sweeps(Bulk):
    """The maintenance round's decisions: each a compare-and-set, safe on every replica."""

    def remind_due(self) -> list[VerificationRequest]:
        """Remind the approvers of each request pending for its rule's remind_every (else
        REMIND_EVERY) since it last changed (asked, approved once, reminded, escalated). Safe on
        every replica at once: each reminder is a compare-and-set on the request's last change,
        so one replica sends it."""
        now = self.clock()
        reminded = []
        for request in self.requests.list_requests(PENDING):
            every = self.remind_every(request)
            if every <= 0 or request.is_expired(now):
                continue  # no reminders for it; or the expiry sweep takes it
            cutoff = now - timedelta(seconds=every)
            if request.updated_at >= cutoff:
                continue
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
                )
            )
            if done is not None:
                self.delivery.deliver(done.id)
                reminded.append(done)
        return reminded

    def escalate_due(self) -> list[VerificationRequest]:
        """Escalate each request still pending once its rule's escalate_after has passed since
        it was made: its escalate_to may approve it from then on, and the thread says so, once
        (a compare-and-set on the request's version: one replica records it)."""
        now = self.clock()
        escalated = []
        for request in self.requests.list_requests(PENDING):
            rule = request.rule
            if rule is None or rule.escalate_after is None or request.escalated_at is not None:
                continue
            if request.is_expired(now):
                continue
            if now < request.created_at + timedelta(seconds=rule.escalate_after):
                continue
            done = self.requests.transition(
                Transition(
                    request.id,
                    PENDING,
                    State.PENDING,
                    actor="bot",
                    action=Action.ESCALATE,
                    now=now,
                    details={
                        "escalate_to": list(rule.escalate_to),
                        "after_seconds": rule.escalate_after,
                        "rule": rule.name,
                    },
                    unexpired_only=True,
                    expected_version=request.version,
                    escalated_at=now,
                )
            )
            if done is not None:
                with correlation.bound(request_id=done.id):
                    log.info(
                        "Request %s escalated to %s (rule %s)",
                        done.id,
                        ", ".join(rule.escalate_to),
                        rule.name,
                    )
                self.delivery.deliver(done.id)
                escalated.append(done)
        return escalated

    def expire_due(self) -> list[VerificationRequest]:
        """Expire every pending request past REQUEST_TTL; returns those this call expired.

        Safe on every replica at once: each transition is a compare-and-set, so exactly one
        replica expires a given request, and only what it queued is delivered.
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
            for item in request.items:
                if item.state is not State.EXECUTING:
                    continue  # a bulk request's item queued or done
                done = self._recover_item(request, item, now, cutoff)
                if done is not None:
                    recovered.append(done)
        return recovered

    def _recover_item(
        self, request: VerificationRequest, item: Item, now: datetime, cutoff: datetime
    ) -> VerificationRequest | None:
        """The item's claim made unknown if its lease ran out (see recover_interrupted)."""
        details: dict[str, Any] = {"executing_since": request.updated_at.isoformat()}
        if request.bulk:
            details["email"] = item.email
        if item.lease_until is not None:
            if item.lease_until >= now:
                return None  # a live claim
            details |= {
                "claim_id": item.claim_id,
                "lease_until": item.lease_until.isoformat(),
            }
        elif request.updated_at >= cutoff:
            return None
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
                # Re-checked in the same compare-and-set: an item claimed afresh, or whose
                # lease was renewed, since it was listed is a live call.
                fence=item.claim_id,
                lease_expired_by=now if item.lease_until is not None else None,
                updated_before=cutoff if item.lease_until is None else None,
                item=item.position,
            )
        )
        if done is not None:
            with correlation.bound(request_id=done.id):
                log.warning(
                    "Request %s: a claim's lease ran out while executing%s (its process "
                    "stopped or stalled): now unknown",
                    done.id,
                    f" ({item.email})" if request.bulk else "",
                )
                self.delivery.deliver(done.id)
        return done

    def look_up_missing(self, after: float, limit: int) -> list[VerificationRequest]:
        """Look up pending requests made more than ``after`` seconds ago that still have no
        reading of the provider's view (their lookup was cut off: the process stopped between
        posting the request and recording the reading), or whose reading was never followed
        up (a resend the reading refuses, a request its rule approves), at most ``limit`` of
        them, oldest first. ``after`` must exceed the longest a lookup can take, so a lookup
        still under way is not repeated. Returns the requests looked up."""
        if limit <= 0:
            return []
        now = self.clock()
        cutoff = now - timedelta(seconds=after)
        # updated_at is never before created_at: the query narrows, the test below decides.
        missing = [
            r
            for r in self.requests.list_requests(PENDING, updated_before=cutoff)
            if not r.bulk  # a bulk request has no lookup: each call's answer decides
            and (r.view is None or _follows_lookup(r))
            and r.created_at < cutoff
            and not r.is_expired(now)
        ]
        looked_up = []
        for request in missing[:limit]:
            with correlation.bound(request_id=request.id):
                log.info("Request %s has no provider reading yet: looking it up", request.id)
                done = self.look_up(request.id)
            if done is not None:
                looked_up.append(done)
        return looked_up


def _follows_lookup(request: VerificationRequest) -> bool:
    """Whether a pending request's lookup decides something that is not done yet: its rule
    approves it, or its reading refuses its resend."""
    if request.rule is not None and request.rule.by_rule:
        return True
    view = request.view
    return (
        request.operation is Operation.RESEND
        and view is not None
        and resend_refusal(view) is not None
    )
