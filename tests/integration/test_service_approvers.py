"""The approver's side at the service (bot/domain/service.py ``Approvals``), with the doubles and
a real SQLite store: a quorum of distinct approvers (four eyes, an approval that no longer
counts), the requester's cancel (theirs alone, only while pending) and reminders (when due,
never twice in an interval, never after a decision). tests/e2e/test_approvers.py pins the same
through Slack."""

from __future__ import annotations

from datetime import timedelta

import pytest
from doubles import Clock, Delivery, Roles, StubProvider

from bot.domain.model import Action, State
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.store import open_store

REQUESTER = "U1"
EMAIL = "alice@example.com"


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/service.db")
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
    """U1 asks; U2 to U5 approve (a set the test may change: a person losing the role)."""
    return Roles(approvers={"U2", "U3", "U4", "U5"}, requesters={REQUESTER, "U2"})


def service(store, clock, provider, roles, delivery, **policy) -> Approvals:
    return Approvals(
        store,
        provider,
        roles,
        delivery,
        ApprovalPolicy(ttl=timedelta(hours=1), **policy),
        clock=clock,
    )


@pytest.fixture
def quorum(store, clock, provider, roles, delivery) -> Approvals:
    """APPROVALS_REQUIRED=2."""
    return service(store, clock, provider, roles, delivery, approvals_required=2)


def refused(call) -> Refusal:
    """The refusal ``call()`` raises (failing the test if it raises none)."""
    with pytest.raises(Refused) as raised:
        call()
    return raised.value.code


def actions(store, request_id: str) -> list[tuple[Action, str]]:
    return [(e.action, e.actor) for e in store.audit_log(request_id)]


# ------------------------------------------------------------------------------ quorum


def test_two_distinct_approvers_are_needed_and_the_provider_is_called_once(quorum, store, provider):
    """The first approval is recorded and the request stays pending with no provider call;
    the same approver again is refused and not counted; the second distinct approver's
    approval calls the provider once and decides the request."""
    request = quorum.submit(EMAIL, "T-1", REQUESTER)
    first = quorum.approve(request.id, "U2")
    assert first.state is State.PENDING and first.approvers == ("U2",)
    assert provider.calls == []
    assert refused(lambda: quorum.approve(request.id, "U2")) is Refusal.ALREADY_APPROVED
    assert store.get(request.id).approvers == ("U2",)
    assert provider.calls == []
    done = quorum.approve(request.id, "U3")
    assert done.state is State.SUCCEEDED and done.decided_by == "U3"
    assert done.approvers == ("U2", "U3")
    assert provider.calls == [EMAIL]
    assert (Action.APPROVAL, "U2") in actions(store, request.id)
    assert (Action.APPROVE, "U3") in actions(store, request.id)


def test_four_eyes_the_requester_never_completes_their_own_quorum(
    store, clock, provider, roles, delivery
):
    """U2 asks and approves. Without self-approval their approval is refused outright; with
    it, it counts as the first of two but never as a later one: a second person is needed."""
    strict = service(store, clock, provider, roles, delivery, approvals_required=2)
    request = strict.submit(EMAIL, "T-1", "U2")
    assert refused(lambda: strict.approve(request.id, "U2")) is Refusal.SELF_APPROVAL
    strict.approve(request.id, "U3")
    assert refused(lambda: strict.approve(request.id, "U2")) is Refusal.SELF_APPROVAL
    assert store.get(request.id).state is State.PENDING and provider.calls == []

    lenient = service(
        store, clock, provider, roles, delivery, approvals_required=2, allow_self_approval=True
    )
    other = lenient.submit("bob@example.com", "T-2", "U2")
    assert lenient.approve(other.id, "U2").state is State.PENDING
    done = lenient.approve(other.id, "U4")
    assert done.state is State.SUCCEEDED and done.approvers == ("U2", "U4")
    late = lenient.submit("carol@example.com", "T-3", "U2")
    lenient.approve(late.id, "U3")
    assert refused(lambda: lenient.approve(late.id, "U2")) is Refusal.SELF_APPROVAL
    assert provider.calls == ["bob@example.com"]


def test_an_approval_whose_approver_lost_the_role_no_longer_counts(quorum, store, provider, roles):
    """U2 approves, then leaves the approvers: U3's approval does not complete the quorum
    (U2's is withdrawn, U3's is the one that counts) and nothing calls the provider; U4's
    does, with one call."""
    request = quorum.submit(EMAIL, "T-1", REQUESTER)
    quorum.approve(request.id, "U2")
    roles.approvers = {"U3", "U4", "U5"}
    after = quorum.approve(request.id, "U3")
    assert after.state is State.PENDING
    assert after.approvers == ("U3",)
    assert [a.approver for a in after.withdrawn] == ["U2"]
    assert provider.calls == []
    done = quorum.approve(request.id, "U4")
    assert done.state is State.SUCCEEDED and done.approvers == ("U3", "U4")
    assert provider.calls == [EMAIL]


# ------------------------------------------------------------------------------ cancel


def test_the_requester_cancels_a_pending_request(quorum, store, provider, delivery):
    """Cancel by the requester, even after a first approval: the request is cancelled and
    delivered, decided by the requester; the provider is never called and a later approval
    is refused."""
    request = quorum.submit(EMAIL, "T-1", REQUESTER)
    quorum.approve(request.id, "U2")
    cancelled = quorum.cancel(request.id, REQUESTER)
    assert cancelled.state is State.CANCELLED and cancelled.decided_by == REQUESTER
    assert delivery.delivered[-1] == request.id
    assert (Action.CANCEL, REQUESTER) in actions(store, request.id)
    assert refused(lambda: quorum.approve(request.id, "U3")) is Refusal.ALREADY_DECIDED
    assert provider.calls == []


def test_only_the_requester_may_cancel(quorum, store):
    """An approver, or anyone else, who clicks Cancel is refused and nothing changes."""
    request = quorum.submit(EMAIL, "T-1", REQUESTER)
    for who in ("U2", "U9"):
        assert refused(lambda who=who: quorum.cancel(request.id, who)) is (
            Refusal.NOT_THE_REQUESTER
        )
    assert store.get(request.id).state is State.PENDING
    assert Action.CANCEL not in [e.action for e in store.audit_log(request.id)]


def test_cancel_only_while_pending(store, clock, provider, roles, delivery):
    """Once approved or rejected the requester's Cancel is refused as already decided; past
    its expiry it is refused as expired (and the request is marked expired)."""
    approvals = service(store, clock, provider, roles, delivery)
    approved = approvals.submit(EMAIL, "T-1", REQUESTER)
    approvals.approve(approved.id, "U2")
    assert refused(lambda: approvals.cancel(approved.id, REQUESTER)) is Refusal.ALREADY_DECIDED
    assert store.get(approved.id).state is State.SUCCEEDED

    rejected = approvals.submit("bob@example.com", "T-2", REQUESTER)
    approvals.reject(rejected.id, "U3", "no")
    assert refused(lambda: approvals.cancel(rejected.id, REQUESTER)) is Refusal.ALREADY_DECIDED
    assert store.get(rejected.id).state is State.REJECTED

    late = approvals.submit("carol@example.com", "T-3", REQUESTER)
    clock.advance(hours=1, seconds=1)
    assert refused(lambda: approvals.cancel(late.id, REQUESTER)) is (Refusal.EXPIRED_BEFORE_CANCEL)
    assert store.get(late.id).state is State.EXPIRED


# ------------------------------------------------------------------------------ reminders


def reminders(store, request_id: str) -> int:
    return sum(1 for e in store.audit_log(request_id) if e.action == Action.REMIND)


def test_a_reminder_is_due_once_per_interval_while_pending(store, clock, provider, roles, delivery):
    """REMIND_EVERY=60: none before 60 s of quiet; one after, delivered and audited; none
    again in the same interval (the reminder is the request's last change); one more after
    another 60 s. A first approval restarts the wait."""
    approvals = service(store, clock, provider, roles, delivery, remind_every=60)
    request = approvals.submit(EMAIL, "T-1", REQUESTER)
    clock.advance(seconds=59)
    assert approvals.remind_due() == []
    clock.advance(seconds=2)
    assert [r.id for r in approvals.remind_due()] == [request.id]
    assert delivery.delivered[-1] == request.id
    assert approvals.remind_due() == []
    clock.advance(seconds=59)
    assert approvals.remind_due() == []
    clock.advance(seconds=2)
    assert [r.id for r in approvals.remind_due()] == [request.id]
    assert reminders(store, request.id) == 2

    quorum = service(store, clock, provider, roles, delivery, remind_every=60, approvals_required=2)
    other = quorum.submit("bob@example.com", "T-2", REQUESTER)
    clock.advance(seconds=50)
    quorum.approve(other.id, "U2")
    clock.advance(seconds=20)  # 70 s after asking, 20 s after the approval
    assert other.id not in [r.id for r in quorum.remind_due()]
    clock.advance(seconds=41)
    assert other.id in [r.id for r in quorum.remind_due()]


def test_reminders_stop_once_the_request_is_decided(store, clock, provider, roles, delivery):
    """Approved, rejected, cancelled or expired: no reminder however long it has been; with
    REMIND_EVERY=0 there are none at all."""
    approvals = service(store, clock, provider, roles, delivery, remind_every=60)
    decided = [approvals.submit(f"u{n}@example.com", "T-1", REQUESTER) for n in range(4)]
    approvals.approve(decided[0].id, "U2")
    approvals.reject(decided[1].id, "U2", "no")
    approvals.cancel(decided[2].id, REQUESTER)
    clock.advance(minutes=30)
    waiting = approvals.submit("late@example.com", "T-1", REQUESTER)
    clock.advance(minutes=31)  # decided[3] is past its hour, unswept; waiting is due
    assert [r.id for r in approvals.remind_due()] == [waiting.id]
    clock.advance(hours=5)
    approvals.expire_due()
    assert approvals.remind_due() == []
    assert all(reminders(store, r.id) == 0 for r in decided)

    silent = service(store, clock, provider, roles, delivery, remind_every=0)
    quiet = silent.submit("quiet@example.com", "T-1", REQUESTER)
    clock.advance(days=1)
    assert silent.remind_due() == []
    assert reminders(store, quiet.id) == 0
