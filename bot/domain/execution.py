"""Execution of an approved request: the claim with its lease and fence, the provider call, its
outcome and read-back, Retry and Resolved of an unknown outcome, and the provider's view
read beside a request (its lookup, Check provider).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import assert_never

from bot.domain import correlation
from bot.domain.core import (
    EXECUTING,
    INTERIM_AFTER,
    INTERIM_HOLD,
    LOOKUP_WAIT,
    PENDING,
    READBACK_HOLD,
    UNKNOWN,
)
from bot.domain.inputs import clean_note
from bot.domain.model import (
    Action,
    Operation,
    State,
    VerificationRequest,
    new_claim_id,
)
from bot.domain.outcomes import (
    Done,
    NotResendable,
    Outcome,
    ProviderFailure,
    outcome_to_dict,
)
from bot.domain.ports import StoreError, Transition
from bot.domain.queries import Queries
from bot.domain.refusals import Refusal, Refused
from bot.domain.views import DomainReading, ProviderView, resend_refusal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retried:
    """A Retry: the request as it was before (its unknown outcome) and as it ended."""

    before: VerificationRequest
    after: VerificationRequest


class Execution(Queries):
    """Calls the provider for a request that was claimed, and records what it said."""

    def look_up(self, request_id: str) -> VerificationRequest | None:
        """Read the provider's view of a new request's domain and show it beside the request.

        Called right after ``submit`` (after the ack), and by the maintenance round for a
        request whose lookup never finished; a failed reading is recorded as such, so it never
        blocks the request. The request's message, held for this reading, is posted with it as
        soon as it is recorded, or without it once LOOKUP_WAIT has passed (then an update adds
        it). None when there is no such request; a request already looked up, or no longer
        pending, is left as it is.
        """
        correlation.set_field("request_id", request_id)
        request = self.requests.get(request_id)
        if request is None or request.state is not State.PENDING:
            return request
        if request.view is not None:
            # Read already (this process stopped before what follows the reading, or another
            # replica's round got here first): only what follows is left to do.
            return self._after_lookup(request)
        # The message waits for this reading, LOOKUP_WAIT at most: then it is posted alongside,
        # without it (and this reading's update adds it).
        post_anyway = self.delivery.deliver_alongside(request_id, after=LOOKUP_WAIT)
        try:
            reading = self._read_view(request)
        finally:
            post_anyway()  # the timer is done with before the reading is recorded
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
            states=PENDING,
            item=request.item.position,
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
        if recorded is None:  # pragma: no cover - requests are never deleted
            return None
        return self._after_lookup(recorded)

    def _after_lookup(self, request: VerificationRequest) -> VerificationRequest:
        """What follows a pending request's lookup: a resend the provider says it cannot do
        is closed (nobody is asked to approve it); a request whose rule needs no approval is
        approved by the rule and run; anything else waits for its approvers."""
        item = request.item
        refusal = (
            resend_refusal(item.view)
            if request.operation is Operation.RESEND and item.view is not None
            else None
        )
        if refusal is not None:
            reason, listed = refusal
            closed = self.requests.transition(
                Transition(
                    request.id,
                    PENDING,
                    State.REJECTED,
                    actor="bot",
                    action=Action.NOT_RESENDABLE,
                    now=self.clock(),
                    outcome=NotResendable(reason, listed=listed),
                    expected_version=request.version,
                )
            )
            if closed is not None:
                log.info("Request %s: closed before approval: %s", request.id, reason)
            self.delivery.deliver(request.id)
            return closed or self.get(request.id)
        if request.rule is not None and request.rule.by_rule:
            return self._approve_by_rule(request)
        self.delivery.deliver(request.id)
        return request

    def _approve_by_rule(self, request: VerificationRequest) -> VerificationRequest:
        """The rule the request was made under needs no approval: it approves the request
        itself (audited with its name) and the provider is called, once: the claim is a
        compare-and-set like any approval's, so a second replica's round finds it taken."""
        assert request.rule is not None
        now = self.clock()
        claimed = self.requests.transition(
            Transition(
                request.id,
                PENDING,
                State.EXECUTING,
                actor="bot",
                action=Action.APPROVE,
                now=now,
                details={"approval": 0, "of": 0, "by_rule": request.rule.name},
                unexpired_only=True,
                expected_version=request.version,
                claim_id=new_claim_id(),
                lease_until=now + self.policy.lease,
                held_until=now + INTERIM_HOLD,
                item=request.item.position,
            )
        )
        if claimed is None:  # approved, cancelled or expired by someone else meanwhile
            self.delivery.deliver(request.id)
            return self.get(request.id)
        log.info("Request %s: approved by rule %s", request.id, request.rule.name)
        return self._call_provider(claimed, "bot", retry=False)

    def check_provider(self, request_id: str, approver: str) -> VerificationRequest:
        """Check provider, on an unknown outcome: read the domain's view again and show it,
        with what it means. Read-only at the provider; the request stays
        unknown until a person decides (Retry, or Resolved)."""
        correlation.set_field("request_id", request_id)
        request = self._decider(request_id, approver)
        if request.state is not State.UNKNOWN or request.bulk:
            # A bulk request's unknown items are many domains: its thread lists them instead.
            raise Refused(Refusal.NOT_CHECKABLE, request)
        reading = self._read_view(request)
        recorded = self.requests.record_view(
            request_id,
            reading,
            action=Action.CHECK,
            actor=approver,
            now=self.clock(),
            item=request.item.position,
        )
        if recorded is None:  # pragma: no cover - requests are never deleted
            raise Refused(Refusal.UNKNOWN_REQUEST)
        log.info(
            "Request %s: %s checked the provider: %s", request_id, approver, _reading_word(reading)
        )
        self.delivery.deliver(request_id)
        return recorded

    def retry(self, request_id: str, approver: str) -> Retried:
        """Retry an unknown outcome: one approver claims it again and the provider is called
        once more (the quorum was met by the approval that led to the unknown outcome)."""
        correlation.set_field("request_id", request_id)
        before = self._decider(request_id, approver)
        if before.bulk:
            return Retried(before, self._retry_batch(before, approver))
        claimed = self._claim_retry(request_id, approver)
        return Retried(before, self._call_provider(claimed, approver, retry=True))

    def start_resolution(self, request_id: str, actor: str) -> VerificationRequest:
        """Resolved was clicked: the request, if ``actor`` may close it now; raises Refused."""
        self._decider(request_id, actor)
        return self.resolvable(request_id, actor)

    def resolve(self, request_id: str, approver: str, note: str) -> VerificationRequest:
        """Close an unknown outcome as resolved: an approver has checked the provider and
        decided no Retry is needed. Audited with who and why; the provider is not called."""
        correlation.set_field("request_id", request_id)
        self._decider(request_id, approver)
        request = self.resolvable(request_id, approver)
        note = clean_note(note)
        if not note:
            raise Refused(Refusal.NOTE_REQUIRED, self.get(request_id))
        if request.bulk:
            return self._resolve_batch(request, approver, note)
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
                item=self.get(request_id).item.position,
            )
        )
        if resolved is None:  # retried or resolved by someone else in the same moment
            raise Refused(Refusal.NOT_RESOLVABLE, self.get(request_id))
        log.info("Request %s resolved by %s", request_id, approver)
        self.delivery.deliver(request_id)
        return resolved

    def _retry_batch(self, request: VerificationRequest, approver: str) -> VerificationRequest:
        """Retry on a bulk request: its unknown items (only those) are queued again, for its
        runners to call once more (four eyes, as for a single Retry)."""
        if request.requester == approver and not self.policy.allow_self_approval:
            raise Refused(Refusal.SELF_APPROVAL, request)
        if request.state is not State.UNKNOWN:
            raise Refused(Refusal.NOT_RETRYABLE, request)
        queued = self.requests.transition(
            Transition(
                request.id,
                UNKNOWN,
                State.EXECUTING,
                actor=approver,
                action=Action.RETRY,
                now=self.clock(),
                decided_by=approver,
                details={"items": sum(i.state is State.UNKNOWN for i in request.items)},
            )
        )
        if queued is None:
            raise Refused(Refusal.ALREADY_DECIDED, self.get(request.id))
        log.info("Bulk request %s: its unknown items queued again by %s", request.id, approver)
        self.delivery.deliver(request.id)
        self.on_queued()
        return queued

    def _resolve_batch(
        self, request: VerificationRequest, approver: str, note: str
    ) -> VerificationRequest:
        """Resolved on a bulk request: its unknown items are closed as resolved, together."""
        resolved = self.requests.transition(
            Transition(
                request.id,
                UNKNOWN,
                State.RESOLVED,
                actor=approver,
                action=Action.RESOLVE,
                now=self.clock(),
                details={
                    "note": note,
                    "items": sum(i.state is State.UNKNOWN for i in request.items),
                },
                decided_by=approver,
                decision_note=note,
            )
        )
        if resolved is None:
            raise Refused(Refusal.NOT_RESOLVABLE, self.get(request.id))
        log.info("Bulk request %s resolved by %s", request.id, approver)
        self.delivery.deliver(request.id)
        return resolved

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
        # Never behind a batch: the call is made at once; a running batch makes room for it
        # (a store that cannot say so now never holds the call up).
        try:
            self.requests.take_slot(self.clock(), 1.0 / self.policy.bulk_rate)
        except StoreError as exc:
            log.warning("Request %s: the batches' pace not told of this call: %s", request_id, exc)
        final = self._execute(claimed, approver)
        log.info("Request %s is %s", final.id, final.state.value)
        wait_for_interim()  # in order: the interim update is finished with before the final
        self.delivery.deliver(request_id)
        return final

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
                claim_id=new_claim_id(),
                lease_until=self.clock() + self.policy.lease,
                held_until=self.clock() + INTERIM_HOLD,
                item=request.item.position,
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
            outcome = self._call(request, lambda seconds: self._renew(request, seconds))
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
                fence=request.claim_id,
                held_until=None if to_state is State.FAILED else self.clock() + READBACK_HOLD,
                item=request.item.position,
            )
        )
        if final is None:
            return self._late(request, outcome, approver)
        # What the domain reads now, shown with the outcome: after a success, and (once,
        # automatically) after an outcome nobody knows. A refusal changed nothing, so there is
        # nothing to read back.
        return self._read_back(final) if to_state is not State.FAILED else final

    def _call(self, request: VerificationRequest, renew: Callable[[float], bool]) -> Done:
        """The provider call the request's operation asks for, for its item; raises
        ProviderFailure."""
        item = request.item
        match request.operation:
            case Operation.CONFIRM:
                return self.provider.confirm(item.email, renew=renew)
            case Operation.RESEND:
                # The domain's id from its lookup, when it was read: the resend is one call.
                known = item.view.domain_id if isinstance(item.view, ProviderView) else None
                return self.provider.resend(
                    item.domain,
                    language=self.policy.resend_language,
                    domain_id=known,
                    renew=renew,
                )
        assert_never(request.operation)

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
            item=final.item.position,
        )
        return final if recorded is None or recorded.state is not final.state else recorded

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
