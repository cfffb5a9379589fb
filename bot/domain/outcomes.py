"""What a provider call came to, or why there was none: one class per case, serialised here.

* :class:`Cleared`: the provider cleared the verification (its documented 200);
* :class:`Resent`: the provider sent the verification email again (its documented 200);
* :class:`NotResendable`: the provider's view said a resend cannot be done (the domain is not
  listed, or ``canResend`` is false), so the request was closed before anyone approved it;
* :class:`ProviderFailed`: the provider refused, failed, could not be read or did not answer;
  ``outcome_unknown`` when it may have acted all the same;
* :class:`Interrupted`: the bot stopped while it was calling the provider;
* :class:`NotPosted`: Slack would never take the request message, so nobody could decide.

``Cleared``, ``Resent`` and ``ProviderFailed`` carry the provider's word on its rate limit
(``pace``, see :mod:`bot.domain.pace`) for the caller; it is no part of the outcome: neither
compared nor serialised.

``outcome_to_dict`` and ``outcome_from_dict`` are the one serialised form, stored with the
request and in the audit log's details. ``outcome_from_dict`` also reads the form written before
the ``type`` field existed (the same keys, told apart by their shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bot.domain.pace import Pace

# How a provider call failed (bot/provider/failures.py says which answer gives which).
ErrorKind = Literal[
    "rejected", "auth", "rate_limited", "server_error", "bad_response", "timeout", "unreachable"
]
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = (
    "rejected",
    "auth",
    "rate_limited",
    "server_error",
    "bad_response",
    "timeout",
    "unreachable",
)
# After these the provider certainly did not act: it refused, it limited us, or it was never
# reached. After a 5xx or an answer not in the documented shape it may have.
NOTHING_DONE_KINDS: Final = frozenset({"rejected", "auth", "rate_limited", "unreachable"})

INTERRUPTED_MESSAGE: Final = (
    "The bot stopped while it was calling the provider, so nobody knows whether the provider acted."
)


@dataclass(frozen=True)
class Cleared:
    """The provider cleared the verification caches."""

    cleared_domains: tuple[str, ...]
    clients_notified: tuple[str, ...]
    message: str
    provider_request_id: str | None = None
    timestamp: str | None = None
    outcome_unknown: Literal[False] = False
    # What the answer said of the provider's rate limit (None: nothing); never stored.
    pace: Pace | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Resent:
    """The provider accepted the resend: it sent the verification email to ``recipient``."""

    recipient: str
    sent_at: str
    domain: str
    domain_id: str | None = None
    method: str | None = None
    provider_request_id: str | None = None
    outcome_unknown: Literal[False] = False
    # What the answer said of the provider's rate limit (None: nothing); never stored.
    pace: Pace | None = field(default=None, compare=False, repr=False)

    @property
    def message(self) -> str:
        return f"Verification email sent to {self.recipient} at {self.sent_at}"


@dataclass(frozen=True)
class NotResendable:
    """The provider's view says it cannot resend for the domain (``reason`` is its words, or
    ours when it gave none): nothing was asked of it, nobody needed to approve."""

    reason: str
    # The provider lists the domain (its view was read and said ``canResend: false``).
    listed: bool = True
    provider_request_id: None = None
    outcome_unknown: Literal[False] = False

    @property
    def message(self) -> str:
        return self.reason


@dataclass(frozen=True)
class ProviderFailed:
    """The provider call failed; ``message`` is a sentence that can be shown to a person."""

    kind: ErrorKind
    message: str
    status: int | None = None
    code: str | None = None
    provider_request_id: str | None = None
    outcome_unknown: bool = False
    # What the answer said of the provider's rate limit (None: nothing); never stored.
    pace: Pace | None = field(default=None, compare=False, repr=False)

    @property
    def nothing_done(self) -> bool:
        """True when the provider certainly did not act (nothing was cleared)."""
        return not self.outcome_unknown and self.kind in NOTHING_DONE_KINDS


@dataclass(frozen=True)
class Interrupted:
    """The process calling the provider stopped before it had an answer."""

    message: str = INTERRUPTED_MESSAGE
    provider_request_id: None = None
    outcome_unknown: Literal[True] = True


@dataclass(frozen=True)
class NotPosted:
    """Slack refused the request message for good, so it never reached an approver."""

    slack_error: str
    provider_request_id: None = None
    outcome_unknown: Literal[False] = False

    @property
    def message(self) -> str:
        return f"Slack said {self.slack_error}"


Outcome = Cleared | Resent | ProviderFailed | Interrupted | NotPosted | NotResendable
# What a successful provider call returns, by operation.
Done = Cleared | Resent


class ProviderFailure(Exception):
    """Raised by a provider client (the service's Provider port) when a call fails."""

    def __init__(self, outcome: ProviderFailed) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


# ---------------------------------------------------------------------------------------------
# The serialised form


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """The JSON-able form of an outcome, as stored and exported."""
    match outcome:
        case Cleared():
            return {
                "type": "cleared",
                "cleared_domains": list(outcome.cleared_domains),
                "clients_notified": list(outcome.clients_notified),
                "message": outcome.message,
                "provider_request_id": outcome.provider_request_id,
                "timestamp": outcome.timestamp,
            }
        case ProviderFailed():
            return {
                "type": "provider_error",
                "kind": outcome.kind,
                "status": outcome.status,
                "code": outcome.code,
                "message": outcome.message,
                "provider_request_id": outcome.provider_request_id,
                "outcome_unknown": outcome.outcome_unknown,
            }
        case Interrupted():
            return {
                "type": "interrupted",
                "kind": "interrupted",
                "message": outcome.message,
                "provider_request_id": None,
                "outcome_unknown": True,
            }
        case NotPosted():
            return {"type": "not_posted", "slack_error": outcome.slack_error}
        case Resent():
            return {
                "type": "resent",
                "recipient": outcome.recipient,
                "sent_at": outcome.sent_at,
                "domain": outcome.domain,
                "domain_id": outcome.domain_id,
                "method": outcome.method,
                "provider_request_id": outcome.provider_request_id,
            }
        case NotResendable():
            return {"type": "not_resendable", "reason": outcome.reason, "listed": outcome.listed}


def outcome_from_dict(data: Mapping[str, Any]) -> Outcome:
    """The outcome ``outcome_to_dict`` wrote. Raises ValueError for a form it never writes."""
    kind = data.get("type") or _legacy_type(data)
    if kind == "cleared":
        return Cleared(
            cleared_domains=tuple(str(d) for d in data.get("cleared_domains") or ()),
            clients_notified=tuple(str(c) for c in data.get("clients_notified") or ()),
            message=str(data.get("message") or ""),
            provider_request_id=_opt_str(data.get("provider_request_id")),
            timestamp=_opt_str(data.get("timestamp")),
        )
    if kind == "provider_error":
        error_kind = data.get("kind")
        if error_kind not in ERROR_KINDS:
            raise ValueError(f"unknown provider error kind {error_kind!r}")
        status = data.get("status")
        return ProviderFailed(
            kind=error_kind,
            message=str(data.get("message") or ""),
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
            code=_opt_str(data.get("code")),
            provider_request_id=_opt_str(data.get("provider_request_id")),
            outcome_unknown=data.get("outcome_unknown") is True,
        )
    if kind == "resent":
        return Resent(
            recipient=str(data.get("recipient") or ""),
            sent_at=str(data.get("sent_at") or ""),
            domain=str(data.get("domain") or ""),
            domain_id=_opt_str(data.get("domain_id")),
            method=_opt_str(data.get("method")),
            provider_request_id=_opt_str(data.get("provider_request_id")),
        )
    if kind == "not_resendable":
        return NotResendable(
            reason=str(data.get("reason") or ""), listed=data.get("listed") is not False
        )
    if kind == "interrupted":
        return Interrupted(message=str(data.get("message") or INTERRUPTED_MESSAGE))
    if kind == "not_posted":
        legacy = str(data.get("message") or "").removeprefix("Slack said ")
        return NotPosted(slack_error=str(data.get("slack_error") or legacy or "an error"))
    raise ValueError(f"not an outcome: {sorted(data)!r}")


def _legacy_type(data: Mapping[str, Any]) -> str | None:
    """The type of an outcome stored before outcomes carried one (same keys otherwise)."""
    if "cleared_domains" in data:
        return "cleared"
    if data.get("kind") == "interrupted":
        return "interrupted"
    if "kind" in data:
        return "provider_error"
    if isinstance(data.get("message"), str):
        return "not_posted"
    return None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
