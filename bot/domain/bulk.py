"""Bulk requests: many emails under one approval, run at the provider's pace.

Asking (``submit_bulk``): every email is validated as a single one is, an email with an open
request elsewhere is left out (and named), and the rules of the policy apply per email: the
strictest terms win (the most approvals, at least the policy's ``[bulk] approvals_required``,
and approvers who may approve every email's rule). Approval is the request's, as for one email
(the quorum's approval starts the run: the request is executing, its items queued).

Running (``run_next``): every replica's batch runner asks the store for the next queued item;
the store hands one out only when the provider's pace (BULK_RATE, and what its rate-limit
answers said) and BULK_CONCURRENCY allow, each item claimed once with a lease and a fence like
a single request's call. A 429 puts the item back in the queue (the provider did nothing) and
holds every runner off for as long as it asked. Progress is shown at most every
BULK_PROGRESS_EVERY seconds; the store records how the run ended (``finish``) with its last
item's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from bot.domain import correlation
from bot.domain.approval import Approving
from bot.domain.core import EXECUTING, PENDING
from bot.domain.inputs import (
    InvalidInput,
    check_reason,
    domain_of,
    validate_email,
    validate_reason,
)
from bot.domain.model import (
    Action,
    Item,
    OpenRequestExists,
    Operation,
    RuleTerms,
    State,
    VerificationRequest,
    new_claim_id,
    new_request_id,
)
from bot.domain.outcomes import Outcome, ProviderFailure
from bot.domain.pace import Pace
from bot.domain.ports import Claimed, Hold, Transition
from bot.domain.refusals import Refusal, Refused

log = logging.getLogger(__name__)

# Names of rules shown in a bulk request's combined rule's name before "and N more".
_NAMES_SHOWN = 3
# Attempts at creating a bulk request when emails keep gaining open requests meanwhile.
_CREATE_ATTEMPTS = 5


@dataclass(frozen=True)
class BulkSubmitted:
    """A bulk request made: the request, and the emails left out because each has an open
    request elsewhere (email, that request's id)."""

    request: VerificationRequest
    left_out: tuple[tuple[str, str], ...] = ()


class NotAllowed(Exception):
    """The rules do not allow the operation for some of the emails (``emails``): nothing asked."""

    def __init__(self, emails: Sequence[str]) -> None:
        super().__init__(f"the rules do not allow this for {len(emails)} of the emails")
        self.emails = tuple(emails)


class NothingToAsk(Exception):
    """Every email has an open request elsewhere (``left_out``: email, request id)."""

    def __init__(self, left_out: Sequence[tuple[str, str]]) -> None:
        super().__init__(f"all {len(left_out)} emails have open requests")
        self.left_out = tuple(left_out)


def strictest(terms: Sequence[RuleTerms], *, bulk_minimum: int) -> RuleTerms:
    """One set of terms for a bulk request whose emails fall under ``terms``: the most
    approvals (and at least ``bulk_minimum``), approvers who are approvers of every rule, the
    shortest reminder interval, no escalation (nobody else gets to approve a batch)."""
    distinct = list(dict.fromkeys(terms))
    if not distinct:
        raise ValueError("no terms to combine")
    first = distinct[0]
    names = list(dict.fromkeys(t.name for t in distinct))
    name = names[0]
    if len(names) > 1:
        shown = ", ".join(names[:_NAMES_SHOWN])
        more = len(names) - _NAMES_SHOWN
        name = f"strictest of {shown}" + (f" and {more} more" if more > 0 else "")
    also = tuple(
        dict.fromkeys(
            tuple(t.approvers) for t in distinct[1:] if tuple(t.approvers) != tuple(first.approvers)
        )
    )
    intervals = [t.remind_every for t in distinct if t.remind_every > 0]
    return RuleTerms(
        name=name,
        policy_hash=first.policy_hash,
        approvers=first.approvers,
        approvals_required=max(bulk_minimum, *(t.approvals_required for t in distinct)),
        remind_every=min(intervals) if intervals else 0.0,
        escalate_after=None,
        escalate_to=(),
        reason_pattern=next((t.reason_pattern for t in distinct if t.reason_pattern), None),
        also_approvers=also,
    )


class Bulk(Approving):
    """Bulk requests: asking for many emails at once, and the runner every replica runs."""

    def submit_bulk(
        self,
        emails: Sequence[str],
        reason: str,
        requester: str,
        operation: Operation = Operation.CONFIRM,
    ) -> BulkSubmitted:
        """Store a new pending bulk request for ``operation`` on ``emails`` (duplicates, as
        the store compares them, collapse), told at once (no lookup: the provider's answer to
        each call decides). Raises Refused (not a requester), InvalidInput (an address that is
        not one, more than BULK_MAX, a reason a rule's reason_pattern refuses), NotAllowed
        (the rules refuse the operation for some emails) and NothingToAsk (every email has an
        open request elsewhere)."""
        if not self.roles.is_requester(requester):
            raise Refused(self._outsider(requester, Refusal.NOT_A_REQUESTER))
        reason = validate_reason(reason)
        by_key: dict[str, str] = {}
        for email in emails:
            valid = validate_email(email)
            by_key.setdefault(valid.lower(), valid)
        unique = list(by_key.values())
        if not unique:
            raise InvalidInput("No email addresses to ask for.")
        if len(unique) > self.policy.bulk_max:
            raise InvalidInput(
                f"{len(unique)} emails is more than one bulk request may ask for "
                f"({self.policy.bulk_max})."
            )
        rule = self._bulk_rule(unique, requester, operation, reason)
        left_out: list[tuple[str, str]] = []
        asked = []
        for email in unique:
            open_one = self._open_elsewhere(email)
            if open_one is None:
                asked.append(email)
            else:
                left_out.append((email, open_one.id))
        for _ in range(_CREATE_ATTEMPTS):
            if not asked:
                raise NothingToAsk(left_out)
            try:
                request = self._create_bulk(asked, reason, requester, operation, rule)
            except OpenRequestExists as exc:
                # Opened meanwhile (another person, another replica): left out too, ask again.
                taken = {i.email.lower() for i in exc.existing.items}
                left_out += [(e, exc.existing.id) for e in asked if e.lower() in taken]
                asked = [e for e in asked if e.lower() not in taken]
                continue
            break
        else:
            raise Refused(Refusal.BUSY)
        correlation.set_field("request_id", request.id)
        log.info(
            "Bulk request %s to %s %d emails by %s%s (%d left out: open elsewhere)",
            request.id,
            operation.value,
            len(request.items),
            requester,
            f" (rule {rule.name})" if rule is not None else "",
            len(left_out),
        )
        if rule is not None and rule.by_rule:
            request = self._start_by_rule(request, rule)
        # Posted in the background: the form's answer (which waits for this call) never waits
        # for Slack.
        self.delivery.deliver_alongside(request.id)
        return BulkSubmitted(request, tuple(left_out))

    def _start_by_rule(self, request: VerificationRequest, rule: RuleTerms) -> VerificationRequest:
        """Terms that need no approval (every email's rule approves by itself, and the policy's
        [bulk] asks for none): the rule approves the run at once, audited with its name."""
        started = self.requests.transition(
            Transition(
                request.id,
                PENDING,
                State.EXECUTING,
                actor="bot",
                action=Action.APPROVE,
                now=self.clock(),
                details={"approval": 0, "of": 0, "by_rule": rule.name},
                unexpired_only=True,
                expected_version=request.version,
            )
        )
        if started is None:  # cancelled in the same moment
            return self.get(request.id)
        return self._run_started(started, "the rule " + rule.name)

    def _bulk_rule(
        self, emails: Sequence[str], requester: str, operation: Operation, reason: str
    ) -> RuleTerms | None:
        """The strictest terms of the rules the emails fall under (None without rules);
        raises NotAllowed, InvalidInput (a rule's reason_pattern)."""
        if self.rules is None:
            return None
        by_domain: dict[str, RuleTerms | None] = {}
        refused: list[str] = []
        terms: list[RuleTerms] = []
        for email in emails:
            domain = domain_of(email)
            if domain not in by_domain:
                decision = self.rules.decide(
                    domain=domain,
                    operation=operation,
                    requester=requester,
                    is_among=self.roles.is_among,
                )
                by_domain[domain] = decision.terms if decision.allowed else None
            found = by_domain[domain]
            if found is None:
                refused.append(email)
            else:
                terms.append(found)
        if refused:
            raise NotAllowed(refused)
        for t in dict.fromkeys(terms):
            if t.reason_pattern is not None:
                check_reason(reason, t.reason_pattern, t.name)
        return strictest(terms, bulk_minimum=self.rules.bulk_approvals_required)

    def _open_elsewhere(self, email: str) -> VerificationRequest | None:
        """The email's open request, if any (one past its expiry is expired first)."""
        stale = self.requests.find_open(email)
        if stale is None:
            return None
        if stale.is_open(self.clock()):
            return stale
        if self._expire_if_due(stale, actor="bot") is not None:
            self.delivery.deliver(stale.id)
        return None

    def _create_bulk(
        self,
        emails: Sequence[str],
        reason: str,
        requester: str,
        operation: Operation,
        rule: RuleTerms | None,
    ) -> VerificationRequest:
        now = self.clock()
        items = tuple(Item(email=e, domain=domain_of(e), position=n) for n, e in enumerate(emails))
        return self.requests.create(
            VerificationRequest(
                id=new_request_id(),
                reason=reason,
                requester=requester,
                state=State.PENDING,
                created_at=now,
                expires_at=now + self.policy.ttl,
                updated_at=now,
                items=items,
                operation=operation,
                rule=rule,
                bulk=True,
            ),
            actor=requester,
        )

    # -- the run -----------------------------------------------------------------------------

    def run_next(self) -> Claimed | Hold:
        """One step of a batch runner: claim the next queued item the pace allows, call the
        provider for it and record what it said (a 429 queues it again and holds every runner
        off). Returns what was claimed (as its outcome left it), or how long to wait."""
        now = self.clock()
        got = self.requests.claim_next_item(
            now=now,
            claim_id=new_claim_id(),
            lease_until=now + self.policy.lease,
            interval=1.0 / self.policy.bulk_rate,
            concurrency=self.policy.bulk_concurrency,
        )
        if isinstance(got, Hold):
            return got
        with correlation.bound(request_id=got.request.id):
            return Claimed(self._run_item(got.request, got.position), got.position)

    def _run_item(self, claimed: VerificationRequest, position: int) -> VerificationRequest:
        """Call the provider for the item at ``position`` this runner claimed, and record the
        outcome on that claim (fenced, as a single request's)."""
        item = next(i for i in claimed.items if i.position == position)
        one = replace(claimed, items=(item,))  # what the call and its renewals need
        outcome: Outcome
        details: dict[str, object] = {"email": item.email}
        try:
            outcome = self._call(one, lambda seconds: self._renew_item(one, item, seconds))
        except ProviderFailure as failure:
            outcome = failure.outcome
            if failure.outcome.kind == "rate_limited":
                # The provider did nothing: back to the queue, for a later slot.
                to_state, action = State.PENDING, Action.THROTTLED
                details["code"] = failure.outcome.code or "rate_limited"
            else:
                to_state = State.UNKNOWN if outcome.outcome_unknown else State.FAILED
                action = Action.PROVIDER_ERROR
        else:
            to_state, action = State.SUCCEEDED, Action.PROVIDER_SUCCESS
        pace: Pace | None = getattr(outcome, "pace", None)
        if pace is not None:
            wait = pace.wait(self.clock())
            if wait > 0:
                # Every runner, on every replica, holds off as long as the provider asked.
                self.requests.hold_pace(self.clock() + timedelta(seconds=wait))
                details["held_for"] = round(wait, 3)
        final = self.requests.transition(
            Transition(
                claimed.id,
                EXECUTING,
                to_state,
                actor="bot",
                action=action,
                now=self.clock(),
                outcome=None if action is Action.THROTTLED else outcome,
                details=details,
                fence=item.claim_id,
                item=position,
            )
        )
        if final is None:
            return self._late(one, outcome, "bot")
        if final.state is not State.EXECUTING:
            self.delivery.deliver(final.id)  # the run is over: how it ended (finish) is due
        elif self._progress_due(final) and self.requests.show_progress(
            final.id, now=self.clock(), every=self.policy.bulk_progress_every
        ):
            self.delivery.deliver(final.id)
        return final

    def _progress_due(self, request: VerificationRequest) -> bool:
        """Whether the running request's progress was last shown long enough ago to show it
        again (the store decides, across replicas; this spares it the asking meanwhile)."""
        shown = request.progress_at
        every = timedelta(seconds=self.policy.bulk_progress_every)
        return shown is None or self.clock() - shown >= every

    def _renew_item(self, request: VerificationRequest, item: Item, seconds: float) -> bool:
        """Keep the item's claim for the client's wait before its next attempt (a 429's
        Retry-After, or a connection that never reached the provider): every other runner
        holds off as long, so the provider is not asked again by them meanwhile."""
        now = self.clock()
        if seconds > 0:
            self.requests.hold_pace(now + timedelta(seconds=seconds))
        until = now + timedelta(seconds=seconds) + self.policy.lease
        return item.claim_id is not None and self.requests.renew_lease(
            request.id, item.claim_id, until=until, now=now
        )
