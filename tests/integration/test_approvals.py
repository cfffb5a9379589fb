"""The application service, with no Slack: the store is a real SQLite file; roles, delivery and
the provider are doubles (tests/doubles.py). The parsing and the state machine it relies on are
pinned in tests/unit/test_parsing.py."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from doubles import Clock, Delivery, Roles, StubProvider

from bot.domain.model import State
from bot.domain.outcomes import Cleared, ProviderFailed
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack import blocks
from bot.slack.notices import Notice, notices_for
from bot.store import open_store

APPROVERS = {"U2", "U3", *(f"U{100 + n}" for n in range(40))}


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/t.db", announce=notices_for)
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


def make(store, clock, provider=None, allow_self=False, roles=None, delivery=None):
    return Approvals(
        store,
        provider or StubProvider(),
        roles or Roles(APPROVERS),
        delivery or Delivery(),
        ApprovalPolicy(allow_self_approval=allow_self, ttl=timedelta(hours=1)),
        clock=clock,
    )


def refusal(excinfo: pytest.ExceptionInfo[Refused]) -> str:
    """The refusal as the person reads it."""
    return blocks.refusal_words(excinfo.value)


def test_submit_stores_pending_with_expiry_and_delivers(store, clock):
    """A submitted request is pending, expires after the TTL, is audited, queues its message
    and DM, and is handed to delivery."""
    delivery = Delivery()
    approvals = make(store, clock, delivery=delivery)
    req = approvals.submit("Alice@Example.com", "T-1", "U1")
    assert req.state is State.PENDING
    assert req.email == "Alice@example.com"
    assert req.domain == "example.com"
    assert req.expires_at == clock.now + timedelta(hours=1)
    assert [e.action for e in store.audit_log(req.id)] == ["create"]
    assert [e.kind for e in store.outbox_entries(req.id)] == [
        Notice.POST_REQUEST,
        Notice.DM_POSTED,
    ]
    assert delivery.delivered == [req.id]


def test_submit_refuses_who_is_not_a_requester(store, clock):
    """Someone not in REQUESTERS cannot ask: refused, nothing stored."""
    approvals = make(store, clock, roles=Roles(requesters={"U1"}))
    with pytest.raises(Refused) as refused:
        approvals.submit("a@example.com", "T-1", "U9")
    assert refused.value.code is Refusal.NOT_A_REQUESTER
    assert store.list_requests() == []


def test_open_request_lookups_write_nothing(store, clock):
    """open_request_for (used before an acknowledgement) ignores a request past its expiry
    without marking it; the next submit expires it and asks anew."""
    approvals = make(store, clock)
    old = approvals.submit("a@example.com", "T-1", "U1")
    assert approvals.open_request_for("A@example.com") == old
    clock.now += timedelta(hours=2)
    assert approvals.open_request_for("a@example.com") is None
    assert store.get(old.id).state is State.PENDING  # not written by the lookup
    new = approvals.submit("a@example.com", "T-2", "U1")
    assert store.get(old.id).state is State.EXPIRED
    assert approvals.open_request_for("a@example.com") == new


def test_an_open_request_elsewhere_is_a_refusal_carrying_it(store, clock, monkeypatch):
    """A second request for an email with an open one is refused with OPEN_REQUEST and the
    open request, whether the form is about to open (may_ask), the form is checked before its
    ack (askable), the submit finds it first, or the store finds it in a race (a lookup that
    saw nothing); nothing new is stored."""
    approvals = make(store, clock)
    first = approvals.submit("a@example.com", "T-1", "U1")
    attempts = (
        lambda: approvals.may_ask("U1", "A@example.com"),
        lambda: approvals.askable("a@example.com"),
        lambda: approvals.submit("a@example.com", "T-2", "U1"),
    )
    for attempt in attempts:
        with pytest.raises(Refused) as refused:
            attempt()
        assert refused.value.code is Refusal.OPEN_REQUEST
        assert refused.value.request is not None and refused.value.request.id == first.id
    looked: list[str] = []
    monkeypatch.setattr(store, "find_open", looked.append)  # sees nothing: a race
    with pytest.raises(Refused) as raced:
        approvals.submit("a@example.com", "T-3", "U1")
    assert looked == ["a@example.com"]  # so the store's unique index refused it
    assert raced.value.code is Refusal.OPEN_REQUEST
    assert raced.value.request is not None and raced.value.request.id == first.id
    assert [r.id for r in store.list_requests()] == [first.id]
    approvals.may_ask("U1", "b@example.com")  # another email: no refusal


def test_approve_calls_provider_once_and_records(store, clock):
    """Approve: one provider call, state succeeded, outcome stored, audit complete, and the
    interim update is delivered alongside the call, the result after it."""
    provider, delivery = StubProvider(), Delivery()
    approvals = make(store, clock, provider, delivery=delivery)
    req = approvals.submit("a@example.com", "T-1", "U1")
    done = approvals.approve(req.id, "U2")
    assert provider.calls == ["a@example.com"]
    assert done.state is State.SUCCEEDED
    assert done.decided_by == "U2"
    assert isinstance(done.outcome, Cleared) and done.outcome.cleared_domains == ("example.com",)
    log = store.audit_log(req.id)
    assert [(e.action, e.to_state, e.actor) for e in log] == [
        ("create", State.PENDING, "U1"),
        ("approve", State.EXECUTING, "U2"),
        ("provider_success", State.SUCCEEDED, "U2"),
        ("readback", State.SUCCEEDED, "bot"),  # read after the outcome, outside the claim
    ]
    assert delivery.alongside == [req.id]
    assert delivery.delivered == [req.id, req.id]


def test_only_approvers_may_decide(store, clock):
    """Approve, Retry and Reject by someone not in APPROVERS are refused before anything."""
    provider = StubProvider()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    for decide in (
        lambda: approvals.approve(req.id, "U9"),
        lambda: approvals.retry(req.id, "U9"),
        lambda: approvals.start_rejection(req.id, "U9"),
        lambda: approvals.reject(req.id, "U9"),
    ):
        with pytest.raises(Refused) as refused:
            decide()
        assert refused.value.code is Refusal.NOT_AN_APPROVER
    assert store.get(req.id).state is State.PENDING
    assert provider.calls == []


def test_self_approval_refused_unless_allowed(store, clock):
    """The requester cannot approve their own request unless ALLOW_SELF_APPROVAL."""
    approvals = make(store, clock, roles=Roles({"U1", "U2"}))
    req = approvals.submit("a@example.com", "T-1", "U1")
    with pytest.raises(Refused) as refused:
        approvals.approve(req.id, "U1")
    assert "someone else" in refusal(refused)
    assert store.get(req.id).state is State.PENDING
    allowed = make(store, clock, allow_self=True, roles=Roles({"U1"}))
    assert allowed.approve(req.id, "U1").state is State.SUCCEEDED


def test_expired_request_refused_and_marked(store, clock):
    """Past REQUEST_TTL an approval is refused and the request becomes expired (delivered)."""
    provider, delivery = StubProvider(), Delivery()
    approvals = make(store, clock, provider, delivery=delivery)
    req = approvals.submit("a@example.com", "T-1", "U1")
    clock.now += timedelta(hours=1, seconds=1)
    with pytest.raises(Refused) as refused:
        approvals.approve(req.id, "U2")
    assert "expired" in refusal(refused)
    assert store.get(req.id).state is State.EXPIRED
    assert provider.calls == []
    assert delivery.delivered.count(req.id) == 2  # the request, then its expiry


def test_a_click_during_the_call_is_told_who_decided(store, clock):
    """While the provider call is in flight, every further click is refused with who decided."""
    provider = StubProvider()
    provider.hold = threading.Event()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    first = threading.Thread(target=approvals.approve, args=(req.id, "U2"))
    first.start()
    try:
        assert provider.entered.wait(timeout=15)
        with pytest.raises(Refused) as refused:
            approvals.approve(req.id, "U3")
        assert refusal(refused) == "This request is already executing by <@U2>."
    finally:
        provider.hold.set()
        first.join(timeout=15)
    assert provider.calls == ["a@example.com"]


def test_concurrent_approvals_exactly_one_provider_call(store, clock):
    """Forty threads clicking Approve together: exactly one provider call, 39 refusals."""
    provider = StubProvider()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    barrier = threading.Barrier(40)
    wins, refusals = [], []

    def click(n: int) -> None:
        barrier.wait()
        try:
            wins.append(approvals.approve(req.id, f"U{100 + n}"))
        except Refused:
            refusals.append(n)

    threads = [threading.Thread(target=click, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(refusals) == 39
    assert provider.calls == ["a@example.com"]


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (
            ProviderFailed(
                kind="rejected",
                status=400,
                code="BAD_REQUEST",
                message="Email is required",
                provider_request_id="r",
            ),
            State.FAILED,
        ),
        (ProviderFailed(kind="timeout", message="no answer", outcome_unknown=True), State.UNKNOWN),
    ],
)
def test_provider_error_states(store, clock, error, state):
    """A refused call is failed; a call that may have reached the provider is unknown."""
    approvals = make(store, clock, StubProvider(error))
    req = approvals.submit("a@example.com", "T-1", "U1")
    done = approvals.approve(req.id, "U2")
    assert done.state is state
    assert done.outcome == error
    assert store.audit_log(req.id)[-1].to_state is state


def test_retry_only_after_an_unknown_outcome(store, clock):
    """Approve on an unknown outcome is refused (only Retry may call again); Retry on anything
    else is refused; Retry on an unknown one calls the provider again and says what it was."""
    provider = StubProvider(ProviderFailed(kind="timeout", message="no", outcome_unknown=True))
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    assert approvals.approve(req.id, "U2").state is State.UNKNOWN
    with pytest.raises(Refused) as refused:
        approvals.approve(req.id, "U3")
    assert refused.value.code is Refusal.USE_RETRY
    provider.answer = Cleared(("example.com",), (), "ok")
    retried = approvals.retry(req.id, "U3")
    assert retried.before.state is State.UNKNOWN and retried.after.state is State.SUCCEEDED
    with pytest.raises(Refused) as refused:
        approvals.retry(req.id, "U3")
    assert refused.value.code is Refusal.NOT_RETRYABLE
    assert len(provider.calls) == 2


def test_reject(store, clock):
    """Reject records who and why, and a rejected request cannot be approved."""
    provider = StubProvider()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    assert approvals.rejectable(req.id) == req
    rejected = approvals.reject(req.id, "U2", "  not our customer ")
    assert rejected.state is State.REJECTED
    assert rejected.decision_note == "not our customer"
    with pytest.raises(Refused) as refused:
        approvals.approve(req.id, "U3")
    assert "rejected" in refusal(refused)
    with pytest.raises(Refused):
        approvals.rejectable(req.id)
    assert provider.calls == []


def test_unknown_request_refused(store, clock):
    """A request id that does not exist is refused, not crashed on."""
    with pytest.raises(Refused) as refused:
        make(store, clock).approve("0123456789abcdef", "U2")
    assert "does not exist" in refusal(refused)


def test_sweeps_expire_and_recover_and_deliver(store, clock):
    """expire_due marks pending requests past their TTL; recover_interrupted turns a claim
    older than a call can take into unknown; each change is handed to delivery once."""
    provider = StubProvider()
    provider.hold = threading.Event()
    delivery = Delivery()
    approvals = make(store, clock, provider, delivery=delivery)
    stale = approvals.submit("a@example.com", "T-1", "U1")
    stuck = approvals.submit("b@example.com", "T-1", "U1")
    call = threading.Thread(target=approvals.approve, args=(stuck.id, "U2"))
    call.start()
    try:
        assert provider.entered.wait(timeout=15)
        clock.now += timedelta(hours=2)
        assert [r.id for r in approvals.expire_due()] == [stale.id]
        assert approvals.expire_due() == []
        [recovered] = approvals.recover_interrupted(max_call_seconds=60)
        assert recovered.id == stuck.id and recovered.state is State.UNKNOWN
        assert approvals.recover_interrupted(max_call_seconds=60) == []
    finally:
        provider.hold.set()
        call.join(timeout=15)
    # The call that was given up on answered late: the recorded outcome stays unknown.
    assert store.get(stuck.id).state is State.UNKNOWN
    assert delivery.delivered.count(stale.id) == 2 and delivery.delivered.count(stuck.id) >= 2
