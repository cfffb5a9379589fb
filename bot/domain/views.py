"""The provider's per-domain view: what it said about a domain's email verification, or why the
bot could not read it; and what a reading means after an unknown outcome.

The provider publishes a read-only view (``GET /api/v2/domains/{id}/email-verification``, found
by name through ``GET /api/v2/domains?name=``). The bot reads it three times in a request's
life, each stored with the request (``VerificationRequest.view`` and ``.readback``) and in the
audit log:

* when the request is made, so the approver sees the provider's state beside it;
* right after the provider call (success, or an outcome nobody knows), so what is told of the
  outcome says what the domain reads now;
* when an approver clicks **Check provider** on an unknown outcome.

A reading never decides anything by itself: it informs the people who do (Retry, or Resolved).
``view_to_dict`` and ``view_from_dict`` are the one serialised form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from bot.domain.model import Operation

# The statuses the provider documents; another value is kept as it came and read as unknown.
DOCUMENTED_STATUSES: Final = ("verified", "unverified", "pending", "expired", "unknown")

# Why a reading failed.
UnavailableKind = Literal[
    "not_found",  # the provider has no domain by that name on this account
    "no_scope",  # the key was refused (401/403): it lacks read:domains, or is wrong
    "rate_limited",  # 429
    "timeout",  # no answer in time, or the connection broke
    "unreachable",  # could not connect
    "server_error",  # 5xx
    "bad_response",  # an answer that is not the documented shape
]
UNAVAILABLE_KINDS: Final[tuple[UnavailableKind, ...]] = (
    "not_found",
    "no_scope",
    "rate_limited",
    "timeout",
    "unreachable",
    "server_error",
    "bad_response",
)


@dataclass(frozen=True)
class ProviderView:
    """The provider's email-verification state of one domain, as read at ``read_at``.

    Every field but ``domain``, ``status`` and ``read_at`` may be missing (None): the provider
    documents them, but an answer without one is still read.
    """

    domain: str
    status: str
    read_at: datetime
    domain_id: str | None = None
    is_verified: bool | None = None
    is_suspended: bool | None = None
    reason: str | None = None
    verified_at: str | None = None
    last_checked_at: str | None = None
    method: str | None = None
    recipient: str | None = None
    expires_at: str | None = None
    can_resend: bool | None = None
    # Why a resend is not possible, in the provider's words (``actions.canResend.reason``).
    resend_blocked: str | None = None

    @property
    def verified(self) -> bool:
        """The domain reads verified (by its status, or its ``isVerified`` flag)."""
        return self.status == "verified" or self.is_verified is True

    @property
    def known_status(self) -> str:
        """The status if it is one the provider documents, else ``unknown``."""
        return self.status if self.status in DOCUMENTED_STATUSES else "unknown"


@dataclass(frozen=True)
class ViewUnavailable:
    """The bot could not read the provider's view of ``domain``; ``message`` says why."""

    domain: str
    kind: UnavailableKind
    message: str
    read_at: datetime
    status: int | None = None
    domain_id: str | None = None


DomainReading = ProviderView | ViewUnavailable


class ViewFailure(Exception):
    """Raised by the Provider port's ``view`` when the view cannot be read."""

    def __init__(self, unavailable: ViewUnavailable) -> None:
        super().__init__(unavailable.message)
        self.unavailable = unavailable


class Meaning(StrEnum):
    """What a reading after an unknown outcome suggests about the call that may have acted."""

    TOOK_EFFECT = "took_effect"  # the domain now reads verified
    NOT_YET = "not_yet"  # it still reads pending, unverified or expired
    UNCLEAR = "unclear"  # unknown status, or the view could not be read
    NOT_SHOWN = "not_shown"  # a resend: no reading shows whether the email went out


def meaning_of(reading: DomainReading, operation: Operation) -> Meaning:
    """What ``reading`` suggests about a call of ``operation`` whose outcome nobody knows.

    A confirm that acted makes the domain read verified, so its status says something. A
    resend changes nothing the view shows (the domain stays pending whether or not the email
    went out, and reads verified only once the customer clicks a link, old or new): for a
    resend no reading settles it.
    """
    if operation is Operation.RESEND:
        return Meaning.NOT_SHOWN
    if isinstance(reading, ViewUnavailable):
        return Meaning.UNCLEAR
    if reading.verified:
        return Meaning.TOOK_EFFECT
    if reading.known_status in ("pending", "unverified", "expired"):
        return Meaning.NOT_YET
    return Meaning.UNCLEAR


def resend_refusal(reading: DomainReading) -> tuple[str, bool] | None:
    """Why the provider cannot resend the verification email for the reading's domain, and
    whether it lists the domain at all; None when nothing says it cannot (a reading that
    failed for another reason, or a view without ``canResend``, does not refuse)."""
    if isinstance(reading, ViewUnavailable):
        if reading.kind == "not_found":
            return (f"The provider does not list {reading.domain} on this account.", False)
        return None
    if reading.can_resend is False:
        why = reading.resend_blocked or "it gave no reason"
        return (f"The provider cannot resend the verification email now: {why}", True)
    return None


def view_to_dict(reading: DomainReading) -> dict[str, Any]:
    """The JSON-able form of a reading, as stored and audited."""
    if isinstance(reading, ViewUnavailable):
        return {
            "type": "unavailable",
            "domain": reading.domain,
            "kind": reading.kind,
            "message": reading.message,
            "status": reading.status,
            "domain_id": reading.domain_id,
            "read_at": reading.read_at.isoformat(),
        }
    return {
        "type": "view",
        "domain": reading.domain,
        "domain_id": reading.domain_id,
        "status": reading.status,
        "is_verified": reading.is_verified,
        "is_suspended": reading.is_suspended,
        "reason": reading.reason,
        "verified_at": reading.verified_at,
        "last_checked_at": reading.last_checked_at,
        "method": reading.method,
        "recipient": reading.recipient,
        "expires_at": reading.expires_at,
        "can_resend": reading.can_resend,
        "resend_blocked": reading.resend_blocked,
        "read_at": reading.read_at.isoformat(),
    }


def view_from_dict(data: Mapping[str, Any]) -> DomainReading:
    """The reading ``view_to_dict`` wrote. Raises ValueError for a form it never writes."""
    read_at = datetime.fromisoformat(str(data.get("read_at"))).astimezone(UTC)
    domain = str(data.get("domain") or "")
    if data.get("type") == "unavailable":
        kind = data.get("kind")
        if kind not in UNAVAILABLE_KINDS:
            raise ValueError(f"unknown reading failure {kind!r}")
        status = data.get("status")
        return ViewUnavailable(
            domain=domain,
            kind=kind,
            message=str(data.get("message") or ""),
            read_at=read_at,
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
            domain_id=_opt_str(data.get("domain_id")),
        )
    if data.get("type") != "view":
        raise ValueError(f"not a provider reading: {sorted(data)!r}")
    return ProviderView(
        domain=domain,
        status=str(data.get("status") or "unknown"),
        read_at=read_at,
        domain_id=_opt_str(data.get("domain_id")),
        is_verified=_opt_bool(data.get("is_verified")),
        is_suspended=_opt_bool(data.get("is_suspended")),
        reason=_opt_str(data.get("reason")),
        verified_at=_opt_str(data.get("verified_at")),
        last_checked_at=_opt_str(data.get("last_checked_at")),
        method=_opt_str(data.get("method")),
        recipient=_opt_str(data.get("recipient")),
        expires_at=_opt_str(data.get("expires_at")),
        can_resend=_opt_bool(data.get("can_resend")),
        resend_blocked=_opt_str(data.get("resend_blocked")),
    )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None
