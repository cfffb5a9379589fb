"""The request model, its state machine and the approval policy. Nothing here knows about Slack.

States::

    pending -> executing -> succeeded | failed | unknown
    unknown -> executing            (Retry, by an approver)
    pending -> rejected | expired

``unknown`` means the provider call may or may not have reached the provider (a timeout, a
connection broken after sending, a crash mid-call). Every transition is appended to the audit
log, in the same transaction as the state change, with actor, time and details.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.hostup import ConfirmResult


log = logging.getLogger(__name__)


class State(StrEnum):
    PENDING = "pending"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    REJECTED = "rejected"
    EXPIRED = "expired"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.EXECUTING, State.REJECTED, State.EXPIRED}),
    State.EXECUTING: frozenset({State.SUCCEEDED, State.FAILED, State.UNKNOWN}),
    State.UNKNOWN: frozenset({State.EXECUTING}),
    State.SUCCEEDED: frozenset(),
    State.FAILED: frozenset(),
    State.REJECTED: frozenset(),
    State.EXPIRED: frozenset(),
}


class Notice(StrEnum):
    """What Slack must be told after a change; stored in the outbox with it (bot/outbox.py)."""

    POST_REQUEST = "post_request"  # the request message in APPROVAL_CHANNEL
    SHOW = "show"  # update the request message to the request's current state
    REPLY_RESULT = "reply_result"  # the provider's answer, in the request's thread
    DM_POSTED = "dm_posted"  # tell the requester where the request went
    DM_OUTCOME = "dm_outcome"  # tell the requester how it ended
    DM_NOT_POSTED = "dm_not_posted"  # tell the requester it could not be posted


# What each final change tells Slack.
DECIDED_NOTICES = (Notice.REPLY_RESULT, Notice.SHOW, Notice.DM_OUTCOME)

OPEN_STATES = frozenset({State.PENDING, State.EXECUTING, State.UNKNOWN})
FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.REJECTED, State.EXPIRED})

MAX_REASON_CHARS = 500
MAX_EMAIL_CHARS = 254


def can_transition(src: State, dst: State) -> bool:
    return dst in TRANSITIONS[src]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    """A short, URL- and button-safe, unguessable id."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class VerificationRequest:
    id: str
    email: str
    domain: str
    reason: str
    requester: str
    state: State
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    channel: str | None = None
    message_ts: str | None = None
    # Who approved or rejected it (the last one, for a retried request).
    decided_by: str | None = None
    # The rejecter's optional reason.
    decision_note: str | None = None
    # The provider's answer: ConfirmResult.to_dict() on success, ProviderError.to_dict() on failure.
    outcome: dict[str, Any] | None = None

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class AuditEntry:
    request_id: str
    at: datetime
    actor: str
    action: str
    from_state: State | None
    to_state: State
    details: dict[str, Any] = field(default_factory=dict)


class OpenRequestExists(Exception):
    """An open request (pending, executing or unknown) already exists for this email."""

    def __init__(self, existing: VerificationRequest) -> None:
        super().__init__(f"request {existing.id} for this email is still {existing.state.value}")
        self.existing = existing


@dataclass(frozen=True)
class OutboxEntry:
    """One thing to tell Slack about a request, stored with the change that caused it.

    ``kind`` names what to deliver (see bot/outbox.py); the content is rendered from the
    request's stored state at delivery time, so a late delivery never shows a stale state.
    """

    id: int
    request_id: str
    kind: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None


class Store(Protocol):
    """Durable requests, their append-only audit log and their Slack outbox. See bot/store.py."""

    def create(
        self, request: VerificationRequest, actor: str, *, outbox: Sequence[str] = ()
    ) -> VerificationRequest: ...

    def get(self, request_id: str) -> VerificationRequest | None: ...

    def set_message(self, request_id: str, channel: str, message_ts: str) -> None: ...

    def transition(
        self,
        request_id: str,
        from_states: frozenset[State],
        to_state: State,
        *,
        actor: str,
        action: str,
        now: datetime,
        details: dict[str, Any] | None = None,
        decided_by: str | None = None,
        decision_note: str | None = None,
        outcome: dict[str, Any] | None = None,
        unexpired_only: bool = False,
        updated_before: datetime | None = None,
        outbox: Sequence[str] = (),
    ) -> VerificationRequest | None: ...

    def audit_log(self, request_id: str) -> list[AuditEntry]: ...

    def find_open(self, email: str) -> VerificationRequest | None: ...

    def list_requests(
        self,
        states: frozenset[State] | None = None,
        *,
        expires_before: datetime | None = None,
        updated_before: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[VerificationRequest]: ...

    def enqueue(self, request_id: str, kinds: Sequence[str], *, now: datetime) -> None: ...

    def claim_outbox(
        self,
        *,
        now: datetime,
        owner: str,
        lease_seconds: float,
        limit: int = 50,
        request_id: str | None = None,
    ) -> list[OutboxEntry]: ...

    def complete_outbox(self, entry_id: int, owner: str, *, now: datetime) -> None: ...

    def retry_outbox(
        self, entry_id: int, owner: str, *, error: str, next_attempt_at: datetime
    ) -> None: ...

    def bury_outbox(self, entry_id: int, owner: str, *, error: str, now: datetime) -> None: ...

    def outbox_entries(self, request_id: str | None = None) -> list[OutboxEntry]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class Provider(Protocol):
    def confirm(self, email: str) -> ConfirmResult: ...


# ---------------------------------------------------------------------------------------------
# Input parsing


class InvalidInput(ValueError):
    """Input a person typed that we cannot use; the message is safe to show them."""


# RFC 5322 atext for an unquoted local part; non-ASCII letters are allowed as RFC 6531 does.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_LOCAL_RE = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")
_QUOTED_LOCAL_RE = re.compile(r'^"([^"\\\r\n]|\\[^\r\n])*"$')
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9\u0080-\U0010FFFF-]{1,63}(?<!-)$")
_SLACK_WRAPPED_RE = re.compile(r"^<([^<>]*)>")


def _unwrap_slack(token: str) -> str:
    """Undo Slack's markup around a link or email: ``<mailto:a@b.c|a@b.c>``, ``<a@b.c>``."""
    m = _SLACK_WRAPPED_RE.match(token)
    if not m:
        return token
    inner = m.group(1)
    target = inner
    if "|" in inner:
        # "|" may occur inside an address, so find the split where target and label agree.
        for i, ch in enumerate(inner):
            if ch != "|":
                continue
            left, right = inner[:i], inner[i + 1 :]
            if left.removeprefix("mailto:") == right:
                target = left
                break
        else:
            target = inner.split("|", 1)[0]
    if target.lower().startswith("mailto:"):
        target = target[len("mailto:") :]
        # mailto: links may carry ?subject=...; the address is what comes before.
        target = target.split("?", 1)[0]
    return target


def _slack_unescape(text: str) -> str:
    # Slack escapes exactly &, < and > in message text.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def validate_email(raw: str) -> str:
    """Return the address normalised (domain lower-cased), or raise InvalidInput."""
    email = raw.strip()
    if not email:
        raise InvalidInput("Please enter an email address.")
    if len(email) > MAX_EMAIL_CHARS:
        raise InvalidInput(f"That is longer than an email address can be ({MAX_EMAIL_CHARS}).")
    if any(c.isspace() for c in email) and not email.startswith('"'):
        raise InvalidInput("An email address cannot contain spaces.")
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidInput("That does not look like an email address (name@domain).")
    if len(local) > 64:
        raise InvalidInput("The part before the @ is longer than 64 characters.")
    if not (_LOCAL_RE.match(local) or _QUOTED_LOCAL_RE.match(local)):
        raise InvalidInput("The part before the @ has characters an email address cannot have.")
    domain = domain.rstrip(".").lower()
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput("The domain after the @ is not a valid domain name.")
    if labels[-1].isdigit():
        raise InvalidInput("The domain after the @ is not a valid domain name.")
    return f"{local}@{domain}"


def domain_of(email: str) -> str:
    return email.rpartition("@")[2]


@dataclass(frozen=True)
class CommandInput:
    help: bool = False
    email: str | None = None
    reason: str = ""
    # When the text was not a valid address: what to tell the person.
    error: str | None = None
    raw_email: str = ""


def parse_command_text(text: str | None) -> CommandInput:
    """Parse what Slack sent after ``/verify-email``.

    ``""`` opens an empty form, ``help`` shows usage, ``<email> [reason…]`` prefills the form.
    Slack may wrap the address in ``<mailto:…|…>`` and escapes ``&<>``.
    """
    text = (text or "").strip()
    if not text:
        return CommandInput()
    if text.lower() in {"help", "-h", "--help", "?"}:
        return CommandInput(help=True)
    first, _, rest = text.partition(" ")
    if first.startswith("<"):
        m = _SLACK_WRAPPED_RE.match(text)
        if m:
            first, rest = m.group(0), text[m.end() :]
    # Slack's own markup uses literal <>; what the person typed arrives escaped, so unwrap first.
    candidate = _slack_unescape(_unwrap_slack(first))
    reason = _slack_unescape(rest.strip())[:MAX_REASON_CHARS]
    try:
        email = validate_email(candidate)
    except InvalidInput as e:
        return CommandInput(error=str(e), raw_email=candidate)
    return CommandInput(email=email, reason=reason)


def validate_reason(raw: str | None) -> str:
    reason = (raw or "").strip()
    if not reason:
        raise InvalidInput("Please give a reason or a ticket reference.")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"Please keep the reason under {MAX_REASON_CHARS} characters.")
    return reason


# ---------------------------------------------------------------------------------------------
# The policy and the service


class Refused(Exception):
    """An action the policy does not allow; the message is safe to show the person."""


@dataclass(frozen=True)
class ApprovalPolicy:
    allow_self_approval: bool = False
    ttl: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class Executed:
    """What an approval led to: the request in its final state and the provider's answer."""

    request: VerificationRequest
    result: ConfirmResult | None = None
    error: Exception | None = None


class Approvals:
    """Creates requests and carries out approvals and rejections against the store and provider."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        policy: ApprovalPolicy,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.provider = provider
        self.policy = policy
        self.clock = clock

    def open_request_for(self, email: str) -> VerificationRequest | None:
        """The open request for this email, if any; one past its expiry is expired first."""
        existing = self.store.find_open(email)
        if existing is not None and self.expire_if_due(existing, actor="bot") is not None:
            return None
        return existing

    def submit(self, email: str, reason: str, requester: str) -> VerificationRequest:
        """Store a new pending request, with its Slack message and the requester's DM queued.

        Raises OpenRequestExists when the email already has an open request.
        """
        email = validate_email(email)
        reason = validate_reason(reason)
        existing = self.open_request_for(email)
        if existing is not None:
            raise OpenRequestExists(existing)
        now = self.clock()
        request = VerificationRequest(
            id=new_request_id(),
            email=email,
            domain=domain_of(email),
            reason=reason,
            requester=requester,
            state=State.PENDING,
            created_at=now,
            expires_at=now + self.policy.ttl,
            updated_at=now,
        )
        return self.store.create(
            request, actor=requester, outbox=(Notice.POST_REQUEST, Notice.DM_POSTED)
        )

    def get(self, request_id: str) -> VerificationRequest:
        request = self.store.get(request_id)
        if request is None:
            raise Refused("That request does not exist (it may belong to another installation).")
        return request

    def check_approver(self, request: VerificationRequest, actor: str) -> None:
        """Raise Refused unless ``actor`` (already known to be an approver) may decide now."""
        if request.requester == actor and not self.policy.allow_self_approval:
            raise Refused("You asked for this one, so someone else has to approve it.")

    def _refuse_closed(self, request: VerificationRequest) -> Refused:
        if request.state is State.PENDING and request.is_expired(self.clock()):
            return Refused("This request has expired. Please ask again with /verify-email.")
        by = f" by <@{request.decided_by}>" if request.decided_by else ""
        return Refused(f"This request is already {request.state.value}{by}.")

    def expire_if_due(self, request: VerificationRequest, actor: str) -> VerificationRequest | None:
        """Mark a pending request past its expiry as expired; return it, or None if not due."""
        now = self.clock()
        if request.state is not State.PENDING or not request.is_expired(now):
            return None
        return self.store.transition(
            request.id,
            frozenset({State.PENDING}),
            State.EXPIRED,
            actor=actor,
            action="expire",
            now=now,
            details={"expires_at": request.expires_at.isoformat()},
            outbox=(Notice.SHOW, Notice.DM_OUTCOME),
        )

    def sweep_expired(self) -> list[VerificationRequest]:
        """Expire every pending request past REQUEST_TTL; returns those this call expired.

        Safe on every replica at once: each transition is a compare-and-set, so exactly one
        replica expires a given request, and only its outbox entries are stored.
        """
        due = self.store.list_requests(frozenset({State.PENDING}), expires_before=self.clock())
        return [done for r in due if (done := self.expire_if_due(r, actor="bot")) is not None]

    def sweep_interrupted(self, max_call_seconds: float) -> list[VerificationRequest]:
        """Requests left ``executing`` longer than a provider call can take become ``unknown``.

        Such a request was claimed by a process that stopped (a crash, a kill, a lost machine)
        while calling the provider, so nobody knows whether the provider acted.
        """
        now = self.clock()
        cutoff = now - timedelta(seconds=max_call_seconds)
        stale = self.store.list_requests(frozenset({State.EXECUTING}), updated_before=cutoff)
        swept = []
        for request in stale:
            outcome = {
                "kind": "interrupted",
                "status": None,
                "code": None,
                "message": (
                    "The bot stopped while it was calling the provider, so nobody knows "
                    "whether the provider acted."
                ),
                "provider_request_id": None,
                "outcome_unknown": True,
            }
            done = self.store.transition(
                request.id,
                frozenset({State.EXECUTING}),
                State.UNKNOWN,
                actor="bot",
                action="interrupted",
                now=now,
                details=outcome | {"executing_since": request.updated_at.isoformat()},
                outcome=outcome,
                # Re-checked in the same compare-and-set: a request retried (claimed afresh)
                # since it was listed is a live call, not an interrupted one.
                updated_before=cutoff,
                outbox=DECIDED_NOTICES,
            )
            if done is not None:
                swept.append(done)
        return swept

    def claim(self, request_id: str, approver: str, *, retry: bool = False) -> VerificationRequest:
        """Atomically move a request to ``executing``: exactly one caller wins.

        Approve (``retry`` False) moves only a pending request; Retry only an unknown one, so a
        stale Approve button can never call the provider again behind Retry's warning. Raises
        Refused for self-approval, expiry, and every loser of the race.
        """
        request = self.get(request_id)
        self.check_approver(request, approver)
        now = self.clock()
        if request.state is State.PENDING and request.is_expired(now):
            self.expire_if_due(request, actor=approver)
            raise Refused("This request has expired. Please ask again with /verify-email.")
        if request.state is State.UNKNOWN and not retry:
            raise Refused(
                "The outcome of this request is unknown: the provider may already have acted. "
                "Use Retry in its thread if you are sure it should be called again."
            )
        if retry and request.state is not State.UNKNOWN:
            raise Refused(
                f"Only a request whose outcome is unknown can be retried; this one is "
                f"{request.state.value}."
            )
        claimed = self.store.transition(
            request_id,
            frozenset({State.UNKNOWN}) if retry else frozenset({State.PENDING}),
            State.EXECUTING,
            actor=approver,
            action="retry" if retry else "approve",
            now=now,
            decided_by=approver,
            unexpired_only=not retry,
            outbox=(Notice.SHOW,),
        )
        if claimed is None:
            raise self._refuse_closed(self.get(request_id))
        return claimed

    def execute(self, request: VerificationRequest, approver: str) -> Executed:
        """Call the provider for a request this process claimed, and record the outcome."""
        from bot.hostup import ProviderError  # local: the provider module imports nothing of ours

        try:
            result = self.provider.confirm(request.email)
        except ProviderError as error:
            to_state = State.UNKNOWN if error.outcome_unknown else State.FAILED
            final = self.store.transition(
                request.id,
                frozenset({State.EXECUTING}),
                to_state,
                actor=approver,
                action="provider_error",
                now=self.clock(),
                details=error.to_dict(),
                outcome=error.to_dict(),
                outbox=DECIDED_NOTICES,
            )
            return Executed(request=final or self._late(request, error.to_dict()), error=error)
        final = self.store.transition(
            request.id,
            frozenset({State.EXECUTING}),
            State.SUCCEEDED,
            actor=approver,
            action="provider_success",
            now=self.clock(),
            details=result.to_dict(),
            outcome=result.to_dict(),
            outbox=DECIDED_NOTICES,
        )
        return Executed(request=final or self._late(request, result.to_dict()), result=result)

    def _late(self, request: VerificationRequest, outcome: dict[str, Any]) -> VerificationRequest:
        """The provider answered after the request stopped being ``executing`` here.

        Only the interrupted-call sweep can do that, and it waits longer than a call can take,
        so this means a clock or a bound is wrong: say so loudly, with the answer.
        """
        log.error(
            "Request %s: the provider answered after the request was no longer executing "
            "here; its answer was %s",
            request.id,
            outcome,
        )
        return self.get(request.id)

    def open_for_rejection(self, request_id: str, actor: str) -> VerificationRequest:
        """The request, if it can still be rejected; raises Refused otherwise."""
        request = self.get(request_id)
        if request.state is State.PENDING and request.is_expired(self.clock()):
            self.expire_if_due(request, actor=actor)
            raise Refused("This request has already expired; there is nothing to reject.")
        if request.state is not State.PENDING:
            raise self._refuse_closed(request)
        return request

    def reject(self, request_id: str, actor: str, note: str = "") -> VerificationRequest:
        request = self.get(request_id)
        note = (note or "").strip()[:MAX_REASON_CHARS]
        if request.state is State.PENDING and request.is_expired(self.clock()):
            self.expire_if_due(request, actor=actor)
            raise Refused("This request has already expired; there is nothing to reject.")
        rejected = self.store.transition(
            request_id,
            frozenset({State.PENDING}),
            State.REJECTED,
            actor=actor,
            action="reject",
            now=self.clock(),
            details={"note": note} if note else {},
            decided_by=actor,
            decision_note=note or None,
            outbox=(Notice.SHOW, Notice.DM_OUTCOME),
        )
        if rejected is None:
            raise self._refuse_closed(self.get(request_id))
        return rejected
