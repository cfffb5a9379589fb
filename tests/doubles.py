"""The test doubles, written once: fakes of the service's ports (provider, roles, delivery, the
outbox's messenger), the clocks the code under test is handed, and the request factory.

Every test module that needs one imports it from here (``from doubles import ...``; pytest puts
tests/ on the path, see ``pythonpath`` in pyproject.toml); no test module imports another.
The stand-ins (bot/standins/) are different: real servers speaking Slack's and the provider's
HTTP, for the integration and end-to-end tests. These doubles are plain objects in the test's
own process, for tests of one component.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.model import (
    Operation,
    RuleTerms,
    State,
    VerificationRequest,
    new_request_id,
    one_item_request,
    utcnow,
)
from bot.domain.outcomes import Cleared, ProviderFailed, ProviderFailure, Resent
from bot.domain.views import ProviderView, ViewFailure, ViewUnavailable
from bot.slack.notifier import DeliveryError, Posted

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CHANNEL = "C0APPROVALS"


# ---------------------------------------------------------------------------------------------
# Clocks


class Clock:
    """The wall clock the code under test reads: stands still until the test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Moves the clock on by ``timedelta(**delta)``; returns the new time."""
        self.now += timedelta(**delta)
        return self.now


class Monotonic:
    """A monotonic clock (seconds) that moves only when the test moves it or the code under
    test sleeps; every sleep is recorded."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# ---------------------------------------------------------------------------------------------
# The request factory


def make_request(
    *,
    email: str = "alice@example.com",
    created_at: datetime = T0,
    ttl: timedelta = timedelta(days=1),
    **changes: Any,
) -> VerificationRequest:
    """A pending request for one email as the service creates it (a new id, the email's domain,
    expiring ``ttl`` after ``created_at``); ``changes`` sets any other field, the request's or
    its item's (outcome, view, readback, claim…)."""
    fields: dict[str, Any] = {
        "id": new_request_id(),
        "domain": email.rpartition("@")[2],
        "reason": "T-1",
        "requester": "U0REQ",
        "state": State.PENDING,
        "created_at": created_at,
        "expires_at": created_at + ttl,
        "updated_at": created_at,
    }
    return one_item_request(email=email, **(fields | changes))


# ---------------------------------------------------------------------------------------------
# The service's ports


CLEARED = Cleared(
    cleared_domains=("example.com",),
    clients_notified=("3704",),
    message="Verification caches cleared",
    provider_request_id="req-1",
)


class StubProvider:
    """The provider port: counts calls (``calls``, the emails in order), answers as told
    (``answer``: a Cleared, or a ProviderFailed it raises); ``hold`` keeps a call in flight
    until released (``entered`` is set once it is). Its view reads pending; ``views`` lists
    the domains read. ``resend`` likewise: ``resends`` (the domains and languages in order),
    ``resend_answer`` (a Resent, or a ProviderFailed it raises; None: sent to the domain's
    hostmaster), the same ``hold``. ``answers`` gives some emails their own answers, in turn
    (the last one repeats)."""

    def __init__(self, answer: Cleared | ProviderFailed | None = None) -> None:
        self.calls: list[str] = []
        self.answers: dict[str, list[Cleared | ProviderFailed]] = {}
        # Waits the next call asks its claim to be kept for (renew), as the client does before
        # trying again after a 429's Retry-After.
        self.waits: list[float] = []
        self.views: list[str] = []
        self.answer = answer or CLEARED
        self.resends: list[tuple[str, str]] = []
        self.resend_answer: Resent | ProviderFailed | None = None
        # What the view reads instead of pending (a ViewUnavailable: the reading fails so).
        self.reading: ProviderView | ViewUnavailable | None = None
        self.hold: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def confirm(self, email: str, *, renew: Callable[[float], bool] | None = None) -> Cleared:
        with self._lock:
            self.calls.append(email)
            waits, self.waits = self.waits, []
        for seconds in waits:  # the client's waits before further attempts (a 429's, say)
            if renew is not None and not renew(seconds):
                break
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(timeout=15), "the test never released the provider"
        answer = self.answer
        with self._lock:
            own = self.answers.get(email)
            if own:
                answer = own.pop(0) if len(own) > 1 else own[0]
        if isinstance(answer, ProviderFailed):
            raise ProviderFailure(answer)
        return answer

    def resend(
        self,
        domain: str,
        *,
        language: str,
        domain_id: str | None = None,
        renew: object = None,
    ) -> Resent:
        with self._lock:
            self.resends.append((domain, language))
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(timeout=15), "the test never released the provider"
        if isinstance(self.resend_answer, ProviderFailed):
            raise ProviderFailure(self.resend_answer)
        return self.resend_answer or Resent(
            recipient=f"hostmaster@{domain}",
            sent_at="2026-11-30T09:00:00.000Z",
            domain=domain,
            domain_id=domain_id or "dom_1",
            method="email",
            provider_request_id="req-1",
        )

    def view(self, domain: str, domain_id: str | None = None) -> ProviderView:
        with self._lock:
            self.views.append(domain)
        if isinstance(self.reading, ViewUnavailable):
            raise ViewFailure(self.reading)
        if self.reading is not None:
            return self.reading
        return ProviderView(domain=domain, status="pending", read_at=utcnow(), domain_id="dom_1")


class Roles:
    """The roles port: ``None`` for a role means everyone holds it. Nobody is excluded (no
    member lookups here: a refusal is never about membership)."""

    def __init__(
        self, approvers: Collection[str] | None = None, requesters: Collection[str] | None = None
    ) -> None:
        self.approvers = approvers
        self.requesters = requesters
        # User-group ID -> its members, for a rule's approvers, escalate_to and requesters.
        self.groups: dict[str, Collection[str]] = {}

    def is_requester(self, user_id: str) -> bool:
        return self.requesters is None or user_id in self.requesters

    def is_approver(self, user_id: str) -> bool:
        return self.approvers is None or user_id in self.approvers

    def is_among(self, user_id: str, ids: Sequence[str]) -> bool:
        return "*" in ids or user_id in ids or any(user_id in self.groups.get(g, ()) for g in ids)

    def excluded(self, user_id: str) -> bool:
        return False


class Delivery:
    """The delivery port: records which requests the service asked to deliver, and which
    alongside a provider call."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.alongside: list[str] = []

    def deliver(self, request_id: str) -> None:
        self.delivered.append(request_id)

    def deliver_alongside(self, request_id: str, after: float = 0.0) -> Callable[[], None]:
        self.alongside.append(request_id)
        return lambda: None


# The renderer names each attempt (the ``what`` of its primitive call): which notice it was.
_WHATS = (
    ("post request", "post_request"),
    ("update the message of request", "show"),
    ("reply in the thread", "reply_result"),
    ("reply with a provider check", "reply_check"),
    ("remind about", "remind"),
    ("update message", "rewrite"),
)


def _named(what: str) -> str:
    return next(name for prefix, name in _WHATS if what.startswith(prefix))


@dataclass
class RecordingSlack:
    """The outbox's messenger (its three primitives and the lookup): records every call by the
    notice that made it (``_named``); ``fail[method]`` holds errors to raise, one per call,
    before the calls succeed again."""

    channel: str = CHANNEL
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: dict[str, list[DeliveryError]] = field(default_factory=dict)
    posted: int = 0

    def _maybe_fail(self, method: str) -> None:
        queued = self.fail.get(method)
        if queued:
            raise queued.pop(0)

    # What find_request_message answers (a copy Slack holds), when asked.
    copy: Posted | None = None

    def _next(self) -> str:
        self.posted += 1
        return f"1700000000.{self.posted:06d}"

    def post(
        self,
        what: str,
        channel: str,
        text: str,
        message_blocks: Any = None,
        *,
        thread_ts: str | None = None,
        metadata: Any = None,
    ) -> Posted:
        name = _named(what)
        self._maybe_fail(name)
        self.calls.append((name, what, text))
        return Posted(self.channel, self._next())

    def update(
        self, what: str, channel: str, ts: str, text: str, message_blocks: Any = None
    ) -> None:
        name = _named(what)
        self._maybe_fail(name)
        self.calls.append((name, what, text, message_blocks))

    def find_request_message(self, request: VerificationRequest) -> Posted | None:
        self._maybe_fail("find_request_message")
        self.calls.append(("find_request_message", request.id))
        return self.copy

    def dm(self, user_id: str, text: str, message_blocks: Any = None) -> Posted:
        self._maybe_fail("dm")
        self.calls.append(("dm", user_id, text))
        return Posted("D" + user_id[1:], self._next())

    def permalink(self, request: VerificationRequest) -> str | None:
        return None

    def complete_step(self, execution_id: str, outputs: dict[str, Any]) -> bool:
        self._maybe_fail("complete_step")
        self.calls.append(("complete_step", execution_id, outputs))
        return True

    def methods(self) -> list[str]:
        return [c[0] for c in self.calls]


# ------------------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Decided:
    """What the rules port decides for one request to be made."""

    allowed: bool
    terms: RuleTerms


def rule(name: str = "r", **terms: Any) -> RuleTerms:
    """A rule's terms from a policy file (hash "f00d"): ``terms`` are RuleTerms fields;
    approvers default to U2 to U5, one approval."""
    return RuleTerms(
        **{"name": name, "policy_hash": "f00d", "approvers": ("U2", "U3", "U4", "U5")}
        | {"approvals_required": 1}
        | terms
    )


class Rules:
    """The rules port (bot/domain/policy.py's Policy, as the service sees it): ``by_operation``
    gives each allowed operation's terms (an operation left out is not allowed); the test may
    change it while a request waits (a policy file edited). Records what it was asked."""

    def __init__(
        self, by_operation: dict[Operation, RuleTerms], bulk_approvals_required: int = 2
    ) -> None:
        self.by_operation = by_operation
        self.bulk_approvals_required = bulk_approvals_required
        self.asked: list[tuple[str, Operation, str]] = []

    def decide(
        self,
        *,
        domain: str,
        operation: Operation,
        requester: str,
        is_among: Callable[[str, Sequence[str]], bool],
    ) -> Decided:
        self.asked.append((domain, operation, requester))
        terms = self.by_operation.get(operation)
        return Decided(terms is not None, terms or rule("refused"))

    def approver_ids(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                a for t in self.by_operation.values() for a in (*t.approvers, *t.escalate_to)
            )
        )
