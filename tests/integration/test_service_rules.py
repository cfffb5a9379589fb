"""Rules at the service (bot/domain/service.py ``Approvals`` with a rules port), with the doubles
and a real SQLite store: a request keeps the rule it was made under (its approvers, quorum,
reminders and escalation decide every click, whatever the rules say later); an operation the
rules do not allow, or a reason their pattern refuses, is never stored; a rule needing no
approval approves after the lookup, once; escalation is recorded once and only then lets its
approvers in. tests/e2e/test_rules.py pins the same through Slack and a policy file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from doubles import T0, Clock, Delivery, Roles, Rules, StubProvider, rule

from bot.domain.inputs import InvalidInput
from bot.domain.model import Action, Operation, State, VerificationRequest
from bot.domain.outcomes import NotResendable, Resent
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.domain.views import ProviderView, ViewUnavailable
from bot.store import open_store

REQUESTER = "U1"
EMAIL = "alice@example.com"


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/rules.db")
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider() -> StubProvider:
    return StubProvider()


@pytest.fixture
def delivery() -> Delivery:
    return Delivery()


@pytest.fixture
def roles() -> Roles:
    """U1 asks; U2 to U5 are the settings' APPROVERS; S0SENIOR is U8 and U9."""
    roles = Roles(approvers={"U2", "U3", "U4", "U5"}, requesters={REQUESTER})
    roles.groups["S0SENIOR"] = {"U8", "U9"}
    return roles


def service(store, clock, provider, roles, delivery, rules, **policy) -> Approvals:
    return Approvals(
        store,
        provider,
        roles,
        delivery,
        ApprovalPolicy(ttl=timedelta(hours=1), **policy),
        clock=clock,
        rules=rules,
    )


def looked_up(approvals: Approvals, request_id: str) -> VerificationRequest:
    """The request as its lookup (and what follows it) left it."""
    request = approvals.look_up(request_id)
    assert request is not None
    return request


def actions(store, request_id: str) -> list[str]:
    return [e.action for e in store.audit_log(request_id)]


def test_the_rule_decides_who_approves_and_how_many(store, clock, provider, roles, delivery):
    """A rule naming S0SENIOR with two approvals: an APPROVERS member who is not in it is
    refused, one senior's approval waits for a second, the second calls the provider once. The
    rule is stored with the request and named in its create entry."""
    senior = rule("vip", approvers=("S0SENIOR",), approvals_required=2)
    approvals = service(store, clock, provider, roles, delivery, Rules({Operation.CONFIRM: senior}))
    request = approvals.submit(EMAIL, "T-1", REQUESTER)
    assert store.get(request.id).rule == senior
    created = store.audit_log(request.id)[0]
    assert created.details["rule"] == "vip" and created.details["policy_hash"] == "f00d"
    with pytest.raises(Refused) as refused:
        approvals.approve(request.id, "U2")
    assert refused.value.code is Refusal.NOT_AN_APPROVER
    assert approvals.approve(request.id, "U8").state is State.PENDING
    assert approvals.approve(request.id, "U9").state is State.SUCCEEDED
    assert provider.calls == [EMAIL]
    # Reject, Retry, Resolve and Check provider are the rule's approvers' too.
    other = approvals.submit("bob@example.com", "T-2", REQUESTER)
    with pytest.raises(Refused) as refused:
        approvals.reject(other.id, "U2", "no")
    assert refused.value.code is Refusal.NOT_AN_APPROVER
    assert approvals.reject(other.id, "U8", "no").state is State.REJECTED


def test_a_waiting_request_keeps_its_rule_when_the_rules_change(
    store, clock, provider, roles, delivery
):
    """The policy changes while a request waits (its rule now needs two approvals from other
    people): the waiting request is still decided by the rule it was made under; a new one by
    the new rule."""
    rules = Rules({Operation.CONFIRM: rule("easy", approvers=("U2",), approvals_required=1)})
    approvals = service(store, clock, provider, roles, delivery, rules)
    waiting = approvals.submit(EMAIL, "T-1", REQUESTER)
    rules.by_operation[Operation.CONFIRM] = rule(
        "easy", policy_hash="beef", approvers=("S0SENIOR",), approvals_required=2
    )
    assert approvals.approve(waiting.id, "U2").state is State.SUCCEEDED
    fresh = approvals.submit("bob@example.com", "T-2", REQUESTER)
    with pytest.raises(Refused):
        approvals.approve(fresh.id, "U2")
    assert approvals.approve(fresh.id, "U8").state is State.PENDING
    assert store.get(fresh.id).rule.policy_hash == "beef"


def test_an_operation_the_rules_do_not_allow_is_refused_and_nothing_stored(
    store, clock, provider, roles, delivery
):
    """Rules allowing confirm only: a resend is refused (OPERATION_NOT_ALLOWED) before
    anything is stored; confirm goes through and names its operation."""
    approvals = service(store, clock, provider, roles, delivery, Rules({Operation.CONFIRM: rule()}))
    with pytest.raises(Refused) as refused:
        approvals.submit(EMAIL, "T-1", REQUESTER, Operation.RESEND)
    assert refused.value.code is Refusal.OPERATION_NOT_ALLOWED
    assert store.list_requests() == []
    made = approvals.submit(EMAIL, "T-1", REQUESTER, Operation.CONFIRM)
    assert store.get(made.id).operation is Operation.CONFIRM


def test_a_reason_the_rules_pattern_refuses_is_not_stored(store, clock, provider, roles, delivery):
    """reason_pattern ^(TICKET|ZD)-\\d+: "because" is refused with the pattern and the rule in
    the words; "ZD-12 stuck" is accepted."""
    approvals = service(
        store,
        clock,
        provider,
        roles,
        delivery,
        Rules({Operation.CONFIRM: rule("tickets", reason_pattern=r"^(TICKET|ZD)-\d+")}),
    )
    with pytest.raises(InvalidInput, match=r"\^\(TICKET\|ZD\)-\\d\+.*tickets"):
        approvals.submit(EMAIL, "because", REQUESTER)
    assert store.list_requests() == []
    assert approvals.submit(EMAIL, "ZD-12 stuck", REQUESTER).state is State.PENDING


def test_a_rule_needing_no_approval_runs_after_the_lookup_once(
    store, clock, provider, roles, delivery
):
    """approvals_required 0: the request waits for its lookup, then the rule approves it
    (audited: actor bot, the rule named) and the provider is called once; looking it up again
    (another replica's round) calls nothing more."""
    approvals = service(
        store,
        clock,
        provider,
        roles,
        delivery,
        Rules({Operation.CONFIRM: rule("routine", approvals_required=0)}),
    )
    request = approvals.submit(EMAIL, "T-1", REQUESTER)
    assert provider.calls == []
    done = approvals.look_up(request.id)
    assert done is not None and done.state is State.SUCCEEDED
    assert provider.calls == [EMAIL]
    approve = next(e for e in store.audit_log(request.id) if e.action == Action.APPROVE)
    assert approve.actor == "bot" and approve.details["by_rule"] == "routine"
    approvals.look_up(request.id)
    assert provider.calls == [EMAIL]


def test_a_rule_approval_cut_off_after_the_lookup_is_finished_by_the_round(
    store, clock, provider, roles, delivery
):
    """The process stopped between recording the lookup and the rule's approval: the
    maintenance round's look_up_missing finds the request and runs it, once."""
    rules = Rules({Operation.CONFIRM: rule("routine", approvals_required=0)})
    approvals = service(store, clock, provider, roles, delivery, rules)
    request = approvals.submit(EMAIL, "T-1", REQUESTER)
    # The lookup alone, as the store records it (the process stops before what follows).
    store.record_view(
        request.id,
        provider.view("example.com"),
        action=Action.LOOKUP,
        actor="bot",
        now=clock(),
        item=0,
    )
    assert store.get(request.id).state is State.PENDING
    clock.advance(seconds=120)
    [done] = approvals.look_up_missing(after=60, limit=10)
    assert done.state is State.SUCCEEDED and provider.calls == [EMAIL]
    assert approvals.look_up_missing(after=60, limit=10) == []


def test_escalation_is_recorded_once_and_only_then_lets_its_approvers_in(
    store, clock, provider, roles, delivery
):
    """escalate_after 600 s to S0SENIOR: before, a senior is refused and nothing escalates;
    after, one sweep records it (once, however many replicas sweep) and a senior may approve."""
    terms = rule("slow", approvers=("U2",), escalate_after=600.0, escalate_to=("S0SENIOR",))
    approvals = service(store, clock, provider, roles, delivery, Rules({Operation.CONFIRM: terms}))
    request = approvals.submit(EMAIL, "T-1", REQUESTER)
    clock.advance(seconds=599)
    assert approvals.escalate_due() == []
    with pytest.raises(Refused) as refused:
        approvals.approve(request.id, "U8")
    assert refused.value.code is Refusal.NOT_AN_APPROVER
    clock.advance(seconds=2)
    [escalated] = approvals.escalate_due()
    assert escalated.escalated_at == clock()
    assert approvals.escalate_due() == []
    entry = store.audit_log(request.id)[-1]
    assert entry.action == Action.ESCALATE and entry.details["escalate_to"] == ["S0SENIOR"]
    assert approvals.approve(request.id, "U8").state is State.SUCCEEDED
    assert actions(store, request.id).count(Action.ESCALATE) == 1


def test_reminders_follow_the_rules_interval(store, clock, provider, roles, delivery):
    """A rule with remind_every 60 reminds after 60 s although REMIND_EVERY is off; a rule with
    0 never does although REMIND_EVERY is 30."""
    often = rule("often", remind_every=60.0)
    never = rule("never", remind_every=0.0)
    rules = Rules({Operation.CONFIRM: often})
    approvals = service(store, clock, provider, roles, delivery, rules, remind_every=0)
    reminded = approvals.submit(EMAIL, "T-1", REQUESTER)
    quiet_service = service(store, clock, provider, roles, delivery, rules, remind_every=30)
    rules.by_operation[Operation.CONFIRM] = never
    quiet = quiet_service.submit("bob@example.com", "T-2", REQUESTER)
    clock.advance(seconds=61)
    assert [r.id for r in quiet_service.remind_due()] == [reminded.id]
    assert Action.REMIND not in actions(store, quiet.id)


def test_home_lists_a_request_only_for_its_rules_approvers(store, clock, provider, roles, delivery):
    """A senior-only request is waiting in a senior's Home (though they are not in APPROVERS),
    not in an APPROVERS member's; a rule-approved one in nobody's."""
    rules = Rules({Operation.CONFIRM: rule("vip", approvers=("S0SENIOR",))})
    approvals = service(store, clock, provider, roles, delivery, rules)
    request = approvals.submit(EMAIL, "T-1", REQUESTER)
    senior = approvals.home_for("U8")
    assert senior.is_approver and [r.id for r in senior.waiting] == [request.id]
    assert [r.id for r in approvals.home_for("U2").waiting] == []


# ------------------------------------------------------------------------------ resend


def test_a_resend_is_approved_then_sent_in_the_configured_language(
    store, clock, provider, roles, delivery
):
    """Without rules: a resend waits for its approver like a confirm, then the provider's
    resend is called once, in RESEND_LANGUAGE, with the domain's id from the lookup; confirm is
    never called. The outcome names the recipient."""
    approvals = service(store, clock, provider, roles, delivery, None, resend_language="sv")
    request = approvals.submit(EMAIL, "T-1", REQUESTER, Operation.RESEND)
    assert looked_up(approvals, request.id).state is State.PENDING
    done = approvals.approve(request.id, "U2")
    assert done.state is State.SUCCEEDED and done.operation is Operation.RESEND
    assert provider.resends == [("example.com", "sv")] and provider.calls == []
    assert isinstance(done.outcome, Resent) and done.outcome.recipient == "hostmaster@example.com"


@pytest.mark.parametrize(
    ("reading", "says"),
    [
        (
            ViewUnavailable("example.com", "not_found", "no such domain", T0),
            "does not list example.com",
        ),
        (
            ProviderView(
                "example.com", "pending", T0, can_resend=False, resend_blocked="Wait 5 min"
            ),
            "Wait 5 min",
        ),
    ],
)
def test_a_resend_the_provider_cannot_do_is_closed_before_approval(
    store, clock, provider, roles, delivery, reading, says
):
    """The lookup says the provider does not list the domain, or its resend gate is closed:
    the request is closed (rejected by the bot, audited as not_resendable with the provider's
    reason) before anyone approves it, and nothing is sent. A confirm of the same domain is not
    refused by the gate."""
    provider.reading = reading
    approvals = service(store, clock, provider, roles, delivery, None)
    request = approvals.submit(EMAIL, "T-1", REQUESTER, Operation.RESEND)
    closed = looked_up(approvals, request.id)
    assert closed.state is State.REJECTED
    assert isinstance(closed.outcome, NotResendable) and says in closed.outcome.reason
    assert actions(store, request.id)[-1] == Action.NOT_RESENDABLE
    with pytest.raises(Refused):
        approvals.approve(request.id, "U2")
    assert provider.resends == []
    confirm = approvals.submit("bob@example.com", "T-2", REQUESTER)
    assert looked_up(approvals, confirm.id).state is State.PENDING


def test_a_resend_whose_view_says_nothing_of_the_gate_waits_for_approval(
    store, clock, provider, roles, delivery
):
    """A view without canResend (None), or a reading that failed for another reason, does not
    refuse: the request waits, and the provider's own answer will say."""
    provider.reading = ViewUnavailable("example.com", "timeout", "no answer", T0)
    approvals = service(store, clock, provider, roles, delivery, None)
    request = approvals.submit(EMAIL, "T-1", REQUESTER, Operation.RESEND)
    assert looked_up(approvals, request.id).state is State.PENDING


def test_a_routine_resend_is_sent_by_its_rule_once_the_lookup_allows_it(
    store, clock, provider, roles, delivery
):
    """A rule approving resends itself: sent right after the lookup, once; its closed gate
    closes it instead (nothing sent, no approval recorded)."""
    rules = Rules({Operation.RESEND: rule("resend-is-routine", approvals_required=0)})
    approvals = service(store, clock, provider, roles, delivery, rules)
    request = approvals.submit(EMAIL, "T-1", REQUESTER, Operation.RESEND)
    assert looked_up(approvals, request.id).state is State.SUCCEEDED
    assert provider.resends == [("example.com", "en")]
    provider.reading = ProviderView("example.net", "pending", T0, can_resend=False)
    blocked = approvals.submit("bob@example.net", "T-2", REQUESTER, Operation.RESEND)
    assert looked_up(approvals, blocked.id).state is State.REJECTED
    assert Action.APPROVE not in actions(store, blocked.id)
    assert provider.resends == [("example.com", "en")]


def test_status_answers_whoever_a_waiting_requests_rule_names(
    store, clock, provider, roles, delivery
):
    """A request waits under a rule naming S0SENIOR; the rules then change and name them no
    more. A senior (in neither APPROVERS nor REQUESTERS) may still ask /verify-email status
    for that email, as they may still decide it; someone else is refused, and so is the
    senior for an email with no request waiting for them."""
    rules = Rules({Operation.CONFIRM: rule("vip", approvers=("S0SENIOR",))})
    approvals = service(store, clock, provider, roles, delivery, rules)
    waiting = approvals.submit(EMAIL, "T-1", REQUESTER)
    rules.by_operation[Operation.CONFIRM] = rule("vip", policy_hash="beef", approvers=("U2",))
    report = approvals.status_of("U8", EMAIL)
    assert report.open is not None and report.open.id == waiting.id
    for user, email in (("U7", EMAIL), ("U8", "bob@example.com")):
        with pytest.raises(Refused) as refused:
            approvals.status_of(user, email)
        assert refused.value.code is Refusal.NOT_A_REQUESTER
