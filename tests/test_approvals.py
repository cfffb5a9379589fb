"""Pure logic: parsing what Slack sends, the state machine and the approval policy (no Slack)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.approvals import (
    TRANSITIONS,
    ApprovalPolicy,
    Approvals,
    InvalidInput,
    Refused,
    State,
    can_transition,
    parse_command_text,
    validate_email,
    validate_reason,
)
from bot.hostup import ConfirmResult, ProviderError
from bot.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class StubProvider:
    """In-process provider double for the pure-logic layer: counts calls, answers as told."""

    def __init__(self, answer: ConfirmResult | ProviderError | None = None) -> None:
        self.calls: list[str] = []
        self.answer = answer or ConfirmResult(
            cleared_domains=("example.com",),
            clients_notified=("3704",),
            message="Verification caches cleared",
            request_id="req-1",
            timestamp=None,
        )
        self._lock = threading.Lock()

    def confirm(self, email: str) -> ConfirmResult:
        with self._lock:
            self.calls.append(email)
        if isinstance(self.answer, ProviderError):
            raise self.answer
        return self.answer


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/t.db")
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


def make(store, clock, provider=None, allow_self=False):
    return Approvals(
        store,
        provider or StubProvider(),
        ApprovalPolicy(allow_self_approval=allow_self, ttl=timedelta(hours=1)),
        clock=clock,
    )


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  alice@Example.COM  ", "alice@example.com"),
        ("<mailto:alice@example.com|alice@example.com>", "alice@example.com"),
        (
            "<mailto:bob.smith+tag@mail.example.co.uk|bob.smith+tag@mail.example.co.uk>",
            "bob.smith+tag@mail.example.co.uk",
        ),
        ("<mailto:a|b@x.example|a|b@x.example>", "a|b@x.example"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("a&amp;b@example.com", "a&b@example.com"),
        ("<mailto:a&amp;b@example.com|a&amp;b@example.com>", "a&b@example.com"),
        ("<alice@example.com>", "alice@example.com"),
        ("user@bücher.de", "user@bücher.de"),
        ("x@xn--bcher-kva.de", "x@xn--bcher-kva.de"),
    ],
)
def test_command_text_as_slack_sends_it(text, email):
    """Any valid address works whether Slack sends it plain, escaped or wrapped in <mailto:|>."""
    parsed = parse_command_text(text)
    assert parsed.error is None
    assert parsed.email == email


def test_command_text_reason_follows_email():
    """Words after the address prefill the reason."""
    parsed = parse_command_text("<mailto:a@example.com|a@example.com> TICKET-9 &lt;urgent&gt;")
    assert parsed.email == "a@example.com"
    assert parsed.reason == "TICKET-9 <urgent>"


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_command_opens_empty_form(text):
    """No text means an empty form: no email, no error, not help."""
    parsed = parse_command_text(text)
    assert (parsed.email, parsed.error, parsed.help) == (None, None, False)


@pytest.mark.parametrize("text", ["help", "HELP", "--help"])
def test_help(text):
    """`help` asks for usage."""
    assert parse_command_text(text).help


@pytest.mark.parametrize(
    "text",
    [
        "alice",
        "alice@",
        "@example.com",
        "alice@localhost",
        "alice@exa_mple.com",
        "<http://example.com|example.com>",
        "a@b@c",
        "alice@example.123",
        "a..b@example.com",
        "alice@-example.com",
        "x" * 65 + "@example.com",
        "<!channel>",
    ],
)
def test_not_an_email(text):
    """Text that is not an email gets an error message, never an email."""
    parsed = parse_command_text(text)
    assert parsed.email is None
    assert parsed.error


def test_reason_validation():
    """A reason is required and bounded."""
    assert validate_reason("  TICKET-1 ") == "TICKET-1"
    with pytest.raises(InvalidInput):
        validate_reason("   ")
    with pytest.raises(InvalidInput):
        validate_reason("x" * 501)


def test_email_validation_length():
    """Addresses longer than 254 characters are refused."""
    with pytest.raises(InvalidInput):
        validate_email("a@" + "b" * 250 + ".com")


def test_state_machine_matches_design():
    """The transitions are exactly those of docs/states.md."""
    allowed = {(s, d) for s, ds in TRANSITIONS.items() for d in ds}
    assert allowed == {
        (State.PENDING, State.EXECUTING),
        (State.PENDING, State.REJECTED),
        (State.PENDING, State.EXPIRED),
        (State.EXECUTING, State.SUCCEEDED),
        (State.EXECUTING, State.FAILED),
        (State.EXECUTING, State.UNKNOWN),
        (State.UNKNOWN, State.EXECUTING),
    }
    assert not can_transition(State.SUCCEEDED, State.EXECUTING)


def test_submit_stores_pending_with_expiry(store, clock):
    """A submitted request is pending, expires after the TTL, and is audited."""
    approvals = make(store, clock)
    req = approvals.submit("Alice@Example.com", "T-1", "U1")
    assert req.state is State.PENDING
    assert req.email == "Alice@example.com"
    assert req.domain == "example.com"
    assert req.expires_at == clock.now + timedelta(hours=1)
    assert [e.action for e in store.audit_log(req.id)] == ["create"]


def test_approve_calls_provider_once_and_records(store, clock):
    """Claim + execute: one provider call, state succeeded, outcome stored, audit complete."""
    provider = StubProvider()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    claimed = approvals.claim(req.id, "U2")
    done = approvals.execute(claimed, "U2")
    assert provider.calls == ["a@example.com"]
    assert done.request.state is State.SUCCEEDED
    assert done.request.decided_by == "U2"
    assert done.request.outcome["cleared_domains"] == ["example.com"]
    log = store.audit_log(req.id)
    assert [(e.action, e.to_state, e.actor) for e in log] == [
        ("create", State.PENDING, "U1"),
        ("approve", State.EXECUTING, "U2"),
        ("provider_success", State.SUCCEEDED, "U2"),
    ]


def test_self_approval_refused_unless_allowed(store, clock):
    """The requester cannot approve their own request unless ALLOW_SELF_APPROVAL."""
    approvals = make(store, clock)
    req = approvals.submit("a@example.com", "T-1", "U1")
    with pytest.raises(Refused, match="someone else"):
        approvals.claim(req.id, "U1")
    assert store.get(req.id).state is State.PENDING
    assert make(store, clock, allow_self=True).claim(req.id, "U1").state is State.EXECUTING


def test_expired_request_refused_and_marked(store, clock):
    """Past REQUEST_TTL an approval is refused and the request becomes expired."""
    provider = StubProvider()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    clock.now += timedelta(hours=1, seconds=1)
    with pytest.raises(Refused, match="expired"):
        approvals.claim(req.id, "U2")
    assert store.get(req.id).state is State.EXPIRED
    assert provider.calls == []


def test_second_claim_loses(store, clock):
    """Once claimed, every further click is refused with who decided."""
    approvals = make(store, clock)
    req = approvals.submit("a@example.com", "T-1", "U1")
    approvals.claim(req.id, "U2")
    with pytest.raises(Refused, match=r"already executing by <@U2>"):
        approvals.claim(req.id, "U3")


def test_concurrent_claims_exactly_one_winner(store, clock):
    """Forty threads clicking Approve together: exactly one claims it."""
    approvals = make(store, clock)
    req = approvals.submit("a@example.com", "T-1", "U1")
    barrier = threading.Barrier(40)
    wins, refusals = [], []

    def click(n: int) -> None:
        barrier.wait()
        try:
            wins.append(approvals.claim(req.id, f"U{100 + n}"))
        except Refused:
            refusals.append(n)

    threads = [threading.Thread(target=click, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(refusals) == 39


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (
            ProviderError(
                kind="rejected",
                status=400,
                code="BAD_REQUEST",
                message="Email is required",
                request_id="r",
                outcome_unknown=False,
            ),
            State.FAILED,
        ),
        (
            ProviderError(
                kind="timeout",
                status=None,
                code=None,
                message="no answer",
                request_id=None,
                outcome_unknown=True,
            ),
            State.UNKNOWN,
        ),
    ],
)
def test_provider_error_states(store, clock, error, state):
    """A refused call is failed; a call that may have reached the provider is unknown."""
    approvals = make(store, clock, StubProvider(error))
    req = approvals.submit("a@example.com", "T-1", "U1")
    done = approvals.execute(approvals.claim(req.id, "U2"), "U2")
    assert done.request.state is state
    assert done.request.outcome["kind"] == error.kind
    assert store.audit_log(req.id)[-1].to_state is state


def test_reject(store, clock):
    """Reject records who and why, and a rejected request cannot be approved."""
    provider = StubProvider()
    approvals = make(store, clock, provider)
    req = approvals.submit("a@example.com", "T-1", "U1")
    rejected = approvals.reject(req.id, "U2", "  not our customer ")
    assert rejected.state is State.REJECTED
    assert rejected.decision_note == "not our customer"
    with pytest.raises(Refused, match="rejected"):
        approvals.claim(req.id, "U3")
    assert provider.calls == []


def test_unknown_request_refused(store, clock):
    """A request id that does not exist is refused, not crashed on."""
    with pytest.raises(Refused, match="does not exist"):
        make(store, clock).claim("0123456789abcdef", "U2")
