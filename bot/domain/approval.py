"""Approval of a request: asking, approving towards the quorum (the last approval claims it
and has it executed), rejecting, cancelling, and closing a request Slack would not take.
"""

from __future__ import annotations

import logging

from bot.domain import correlation
from bot.domain.core import (
    EXECUTING,
    INTERIM_HOLD,
    LOOKUP_HOLD,
    MAX_RACE_RETRIES,
    PENDING,
)
from bot.domain.execution import Execution
from bot.domain.inputs import (
    check_reason,
    clean_note,
    domain_of,
    validate_email,
    validate_reason,
)
from bot.domain.model import (
    Action,
    Approval,
    OpenRequestExists,
    Operation,
    RuleTerms,
    State,
    StepAlreadyAsked,
    VerificationRequest,
    WorkflowRun,
    new_claim_id,
    new_request_id,
    one_item_request,
)
from bot.domain.outcomes import (
    NotPosted,
)
from bot.domain.ports import Transition
from bot.domain.refusals import Refusal, Refused

log = logging.getLogger(__name__)


class Approving(Execution):
    """Creates requests and decides them: who may, the quorum, four eyes, expiry."""

    def submit(
        self,
        email: str,
        reason: str,
        requester: str,
        operation: Operation = Operation.CONFIRM,
        workflow: WorkflowRun | None = None,
    ) -> VerificationRequest:
        """Store a new pending request for ``operation``, under the rule that decides it
        (stored with it). What is told of it is held for its lookup (``look_up``, called next,
        so what is shown of the request shows the provider's view) for LOOKUP_HOLD at most.
        ``workflow``: the Workflow Builder step run asking (for ``requester``); a run that
        asked already gets its request back, never a second one.

        Raises Refused (not a requester; OPERATION_NOT_ALLOWED by the rules; OPEN_REQUEST,
        with that request, when the email already has an open request, found first or by the
        store in a race) and InvalidInput (a reason the rule's reason_pattern refuses too).
        """
        if workflow is not None:
            made = self.requests.find_by_step(workflow.execution_id)
            if made is not None:
                log.info(
                    "Step run %s asked again: its request is %s", workflow.execution_id, made.id
                )
                return made
        try:
            return self._submit(email, reason, requester, operation, workflow)
        except StepAlreadyAsked as exc:
            return exc.existing
        except OpenRequestExists as exc:
            if workflow is not None:
                # The same run's event, delivered twice at once: the other copy made it first.
                made = self.requests.find_by_step(workflow.execution_id)
                if made is not None:
                    return made
            raise Refused(Refusal.OPEN_REQUEST, exc.existing) from exc

    def rule_for(
        self, email: str, requester: str, operation: Operation = Operation.CONFIRM
    ) -> RuleTerms | None:
        """The terms the rules would give a request for ``email`` by ``requester`` now (None:
        no rules, the settings decide); raises Refused (OPERATION_NOT_ALLOWED) when they do
        not allow ``operation``, InvalidInput for an address that is not one. Read-only."""
        if self.rules is None:
            return None
        decision = self.rules.decide(
            domain=domain_of(validate_email(email)),
            operation=operation,
            requester=requester,
            is_among=self.roles.is_among,
        )
        if not decision.allowed:
            raise Refused(Refusal.OPERATION_NOT_ALLOWED)
        return decision.terms

    def _submit(
        self,
        email: str,
        reason: str,
        requester: str,
        operation: Operation,
        workflow: WorkflowRun | None = None,
    ) -> VerificationRequest:
        if not self.roles.is_requester(requester):
            raise Refused(self._outsider(requester, Refusal.NOT_A_REQUESTER))
        email = validate_email(email)
        reason = validate_reason(reason)
        rule = self.rule_for(email, requester, operation)
        if rule is not None and rule.reason_pattern is not None:
            check_reason(reason, rule.reason_pattern, rule.name)
        stale = self.requests.find_open(email)
        expired = None
        if stale is not None:
            if stale.is_open(self.clock()):
                raise OpenRequestExists(stale)
            # Past its expiry but not marked yet: expire it (whoever wins), then ask anew.
            expired = self._expire_if_due(stale, actor="bot")
        now = self.clock()
        request = self.requests.create(
            one_item_request(
                id=new_request_id(),
                email=email,
                domain=domain_of(email),
                reason=reason,
                requester=requester,
                state=State.PENDING,
                created_at=now,
                expires_at=now + self.policy.ttl,
                updated_at=now,
                operation=operation,
                rule=rule,
                workflow=workflow,
            ),
            actor=requester,
            held_until=now + LOOKUP_HOLD,
        )
        correlation.set_field("request_id", request.id)
        log.info(
            "Request %s to %s %s by %s%s",
            request.id,
            operation.value,
            request.email,
            requester,
            f" (rule {rule.name})" if rule is not None else "",
        )
        # Nothing of it is due yet (held for its lookup), but the Home tabs open show it now.
        self.delivery.deliver(request.id)
        if expired is not None:
            self.delivery.deliver(expired.id)
        return request

    def approve(self, request_id: str, approver: str) -> VerificationRequest:
        """Approve. Until the quorum (APPROVALS_REQUIRED distinct approvers, not the requester
        but for a first self-approval where allowed) the approval is recorded and the request
        stays pending; the approval that completes it claims the request (exactly one click
        wins, however many race), calls the provider once, records what it said and delivers
        it. Returns the request as the click left it (pending, or its final state)."""
        correlation.set_field("request_id", request_id)
        for _ in range(MAX_RACE_RETRIES):
            request = self._approvable(request_id, approver)
            required = self.required(request)
            approvals = (*request.approvals, Approval(approver, self.clock()))
            withdrawn = tuple(w for w in request.withdrawn if w.approver != approver)
            last = len(approvals) >= required
            lapsed: tuple[Approval, ...] = ()
            if last:
                # The quorum would complete: every earlier approval must still be an
                # approver's. One whose approver has lost the role no longer counts.
                lapsed = tuple(
                    a for a in request.approvals if not self.may_decide(request, a.approver)
                )
                if lapsed:
                    approvals = tuple(a for a in approvals if a not in lapsed)
                    withdrawn = (*withdrawn, *lapsed)
                    last = len(approvals) >= required
            claims = last and not request.bulk
            change = Transition(
                request_id,
                PENDING,
                State.EXECUTING if last else State.PENDING,
                actor=approver,
                action=Action.APPROVE if last else Action.APPROVAL,
                now=self.clock(),
                details={"approval": len(approvals), "of": required}
                | ({"no_longer_counted": [w.approver for w in withdrawn]} if withdrawn else {}),
                decided_by=approver if last else None,
                unexpired_only=True,
                expected_version=request.version,
                approvals=approvals,
                withdrawn=withdrawn,
                # The approval that completes the quorum claims the request's item to execute
                # (a bulk request's items are queued instead, for its runners to claim).
                claim_id=new_claim_id() if claims else None,
                lease_until=self.clock() + self.policy.lease if claims else None,
                # A claim's "calling the provider…" is held for INTERIM_AFTER: a quicker
                # outcome makes it due with its own, and supersedes it then.
                held_until=self.clock() + INTERIM_HOLD if claims else None,
                item=request.item.position if claims else None,
            )
            done = self.requests.transition(change)
            if done is None:
                continue  # someone changed it first: look again
            if not last:
                log.info(
                    "Request %s: approval %d of %d, by %s",
                    request_id,
                    len(approvals),
                    required,
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
            if request.bulk:
                return self._run_started(done, approver)
            return self._call_provider(done, approver, retry=False)
        raise Refused(Refusal.BUSY, self.requests.get(request_id))

    def _run_started(self, started: VerificationRequest, approver: str) -> VerificationRequest:
        """A bulk request's items were queued (approved, or retried): the runners take them."""
        log.info(
            "Bulk request %s: %d emails queued by %s for the batch runners",
            started.id,
            sum(item.state is State.PENDING for item in started.items),
            approver,
        )
        self.delivery.deliver(started.id)
        self.on_queued()
        return started

    def cancel(self, request_id: str, actor: str) -> VerificationRequest:
        """The requester withdraws a pending request (before the provider is called)."""
        correlation.set_field("request_id", request_id)
        request = self.get(request_id)
        if request.requester != actor:
            raise Refused(Refusal.NOT_THE_REQUESTER, request)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise self._expire_and_refuse(request, actor, Refusal.EXPIRED_BEFORE_CANCEL)
        if request.bulk and request.state is State.EXECUTING:
            return self._stop_run(request, actor)
        cancelled = self.requests.transition(
            Transition(
                request_id,
                PENDING,
                State.CANCELLED,
                actor=actor,
                action=Action.CANCEL,
                now=self.clock(),
                decided_by=actor,
            )
        )
        if cancelled is None:  # approved, rejected or expired in the same moment
            raise Refused(Refusal.ALREADY_DECIDED, self.get(request_id))
        log.info("Request %s cancelled by its requester", request_id)
        self.delivery.deliver(request_id)
        return cancelled

    def _stop_run(self, request: VerificationRequest, actor: str) -> VerificationRequest:
        """Cancel during a bulk request's run: the items not started are cancelled; those
        running end as their calls do."""
        stopped = self.requests.transition(
            Transition(
                request.id,
                EXECUTING,
                State.CANCELLED,
                actor=actor,
                action=Action.STOP,
                now=self.clock(),
                decided_by=actor,
                details={"not_started": sum(i.state is State.PENDING for i in request.items)},
            )
        )
        if stopped is None:
            raise Refused(Refusal.ALREADY_DECIDED, self.get(request.id))
        log.info("Bulk request %s stopped by its requester", request.id)
        self.delivery.deliver(request.id)
        return stopped

    def start_rejection(self, request_id: str, actor: str) -> VerificationRequest:
        """Reject was clicked: the request, if ``actor`` may reject it now; raises Refused."""
        self._decider(request_id, actor)
        return self._still_rejectable(request_id, actor)

    def reject(self, request_id: str, actor: str, note: str = "") -> VerificationRequest:
        """Reject a pending request (the provider is never called) and deliver the news."""
        correlation.set_field("request_id", request_id)
        self._decider(request_id, actor)
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
            )
        )
        if closed is not None:
            self.delivery.deliver(request_id)
        return closed

    def _approvable(self, request_id: str, approver: str) -> VerificationRequest:
        """The request, if ``approver``'s Approve may count now; raises Refused otherwise."""
        request = self._decider(request_id, approver)
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

    def _still_rejectable(self, request_id: str, actor: str) -> VerificationRequest:
        request = self.get(request_id)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            raise self._expire_and_refuse(request, actor, Refusal.EXPIRED_BEFORE_REJECT)
        if request.state is not State.PENDING:
            raise Refused(Refusal.ALREADY_DECIDED, request)
        return request
