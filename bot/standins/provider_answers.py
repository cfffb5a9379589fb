"""What the stand-in provider answers: its paths, scripted answers (:class:`Response`, the
named failures in :data:`MODES` and :data:`VIEW_MODES`), and a domain's record as the v2 view
documents it (:class:`DomainRecord`). The server that sends them is :mod:`bot.standins.provider`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Literal

PREFIX = "/api"
CONFIRM_PATH = f"{PREFIX}/email-verification/confirmed"
STATUS_PATH = f"{PREFIX}/email-verification/status"
DOMAINS_PATH = f"{PREFIX}/v2/domains"
VIEW_SUFFIX = "/email-verification"
VIEW_SCOPE = "read:domains"
# The v2 resend action (POST, scope write:domains, ``lang`` en or sv, no body).
RESEND_SUFFIX = "/email-verification/actions/resend"
RESEND_SCOPE = "write:domains"
RESEND_LANGUAGES = ("en", "sv")
# The reference documents no code for a resend its gate (the view's actions.canResend) refuses;
# the stand-in answers as its error reference does for an action the resource's state blocks
# (409, e.g. nameserver_update_blocked), under this code of its own.
RESEND_BLOCKED_STATUS = 409
RESEND_BLOCKED_CODE = "email_verification_resend_blocked"
# What the view says when canResend is false and no reason was set.
NOT_RESENDABLE_REASON = "Not available for this domain."
MAX_REQUEST_BYTES = 1_000_000
# The statuses the per-domain view documents.
VIEW_STATUSES = ("verified", "unverified", "pending", "expired", "unknown")

ErrorShape = Literal["documented", "problem"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_request_id() -> str:
    return str(uuid.uuid4())


def now_plus_days(days: int) -> str:
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_v2(path: str) -> bool:
    return path == DOMAINS_PATH or path.startswith(DOMAINS_PATH + "/")


def is_resend(path: str) -> bool:
    """A path of the v2 resend action (``…/v2/domains/{id}/email-verification/actions/resend``)."""
    return path.startswith(DOMAINS_PATH + "/") and path.endswith(RESEND_SUFFIX)


def code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.upper().replace(" ", "_").replace("-", "_")
    except ValueError:
        return f"HTTP_{status}"


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


@dataclass(frozen=True)
class Response:
    """One scripted answer.

    ``action``: ``"answer"`` sends ``status``/``body``; ``"normal"`` answers as the endpoint
    normally would (the status and body here are unused); ``"close"`` reads the request, then
    closes the connection without answering. ``delay`` seconds pass before any of them.
    ``body``: a dict or list is sent as JSON; str or bytes as they are. ``trickle``: seconds
    between the bytes of the status line and headers (sent one at a time; the body follows at
    once): a slow or hostile provider no per-read timeout catches.
    """

    status: int = 200
    body: dict[str, Any] | list[Any] | str | bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    action: Literal["answer", "normal", "close"] = "answer"
    delay: float = 0.0
    trickle: float = 0.0
    # When set, nothing is sent until it is (a test holds a call open for as long as it needs).
    gate: threading.Event | None = None

    @property
    def request_id(self) -> str | None:
        """The ``requestId`` in the body, when it has one."""
        value = self.body.get("requestId") if isinstance(self.body, dict) else None
        return value if isinstance(value, str) else None

    @classmethod
    def json(
        cls,
        status: int,
        body: dict[str, Any] | list[Any] | str,
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """Any JSON (or raw text sent as JSON) with any status."""
        return cls(status, body, content_type, dict(headers or {}))

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        shape: ErrorShape = "documented",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """An error in the documented shape or as RFC 7807 problem details."""
        message = message or f"{phrase(status)} (stand-in provider)"
        code = code or code_for(status)
        if shape == "problem":
            body: dict[str, Any] = {
                "type": f"https://cloud.hostup.se/problems/{code.lower().replace('_', '-')}",
                "title": phrase(status),
                "status": status,
                "detail": message,
                "code": code,
                "requestId": new_request_id(),
            }
            return cls(status, body, "application/problem+json", dict(headers or {}))
        body = {
            "code": code,
            "error": phrase(status),
            "message": message,
            "requestId": new_request_id(),
            "timestamp": now(),
        }
        return cls(status, body, "application/json", dict(headers or {}))

    @classmethod
    def rate_limited(
        cls, retry_after: str | None = "1", *, shape: ErrorShape = "problem"
    ) -> Response:
        """429 with ``Retry-After`` (omitted when None)."""
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return cls.error(429, "Too many requests, slow down", shape=shape, headers=headers)

    @classmethod
    def html(cls, status: int = 502) -> Response:
        """An HTML error page, as a proxy in front of the provider would send."""
        page = (
            f"<!DOCTYPE html><html><head><title>{status} {phrase(status)}</title></head>"
            f"<body><h1>{status} {phrase(status)}</h1><hr><p>nginx</p></body></html>"
        )
        return cls(status, page, "text/html; charset=utf-8")

    @classmethod
    def wrong_shape(cls) -> Response:
        """200 with JSON that is not the documented answer."""
        return cls(200, {"ok": True, "result": "done"})

    @classmethod
    def not_successful(cls, message: str = "Nothing to clear") -> Response:
        """200 whose body says it did not succeed."""
        body = {"success": False, "message": message, "requestId": new_request_id()}
        return cls(200, body)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Response:
        """Say nothing for ``seconds`` (longer than the client's timeout), then answer normally."""
        return cls(action="normal", delay=seconds)

    @classmethod
    def held(cls, gate: threading.Event) -> Response:
        """Act normally, then answer normally once ``gate`` is set (or close when stopping)."""
        return cls(action="normal", gate=gate)

    @classmethod
    def trickle_headers(cls, every: float = 1.0) -> Response:
        """Act normally, then send the answer's status line and headers one byte every
        ``every`` seconds (each read well within a client's timeout, the whole far beyond it).
        The call's ``abandoned`` is set once the client hangs up mid-way."""
        return cls(action="normal", trickle=every)

    @classmethod
    def close_after_read(cls) -> Response:
        """Read the whole request, then close the connection without a word."""
        return cls(action="close")


def problem(
    status: int,
    code: str,
    detail: str,
    instance: str = "/api/v2/...",
    *,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 7807 problem document as the v2 API sends it (developer.hostup.se/errors);
    ``errors``: the field-level errors an ``invalid_request`` carries."""
    body: dict[str, Any] = {
        "type": f"https://developer.hostup.se/errors/{code}",
        "title": title or phrase(status),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "requestId": f"req_{uuid.uuid4().hex[:26]}",
        "timestamp": now(),
    }
    if errors is not None:
        body["errors"] = errors
    return Response(status, body, "application/problem+json", dict(headers or {}))


def rate_limited_problem(retry_after: str | None = "30") -> Response:
    """429 as the v2 API documents it: ``rate_limited`` with ``Retry-After`` (seconds, omitted
    when None) and the X-RateLimit headers."""
    headers = {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": now(),
    }
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return problem(
        429,
        "rate_limited",
        "Rate limit exceeded. Please try again later.",
        title="Rate limit exceeded",
        headers=headers,
    )


MODES: dict[str, Callable[[], Response]] = {
    "bad_request": lambda: Response.error(400, "Email is required"),
    "unauthorized": lambda: Response.error(401, "Invalid API key", shape="problem"),
    "forbidden": lambda: Response.error(403, "This API key may not do that", shape="problem"),
    "not_found": lambda: Response.error(404, "No such endpoint", shape="problem"),
    "rate_limited": lambda: Response.rate_limited("1"),
    "server_error": lambda: Response.error(500, "Internal server error"),
    "bad_gateway": lambda: Response.html(502),
    "unavailable": lambda: Response.error(503, "Service temporarily unavailable", shape="problem"),
    "wrong_shape": Response.wrong_shape,
    "not_successful": Response.not_successful,
    "hang": Response.hang,
    "close_after_read": Response.close_after_read,
    "trickle_headers": Response.trickle_headers,
}
"""Named failures for :meth:`FakeProvider.script` (and the sandbox command)."""

VIEW_MODES: dict[str, Callable[[], Response]] = {
    "unauthorized": lambda: problem(401, "unauthorized", "Authentication required."),
    "forbidden": lambda: problem(403, "forbidden", "The API key lacks the read:domains scope."),
    "not_found": lambda: problem(404, "not_found", "No domain matching the given ID was found."),
    "rate_limited": lambda: Response(
        429,
        problem(429, "rate_limited", "Too many requests.").body,
        "application/problem+json",
        {"Retry-After": "30"},
    ),
    "server_error": lambda: problem(500, "internal_error", "An unexpected error occurred."),
    "bad_gateway": lambda: Response.html(502),
    "hang": Response.hang,
    "close_after_read": Response.close_after_read,
}
"""Named failures for :meth:`FakeProvider.script_view`."""

RESEND_MODES: dict[str, Callable[[], Response]] = {
    "invalid_request": lambda: problem(
        400,
        "invalid_request",
        "The request body failed validation.",
        title="Validation failed",
        errors=[{"pointer": "/", "detail": "No fields are accepted.", "code": "invalid"}],
    ),
    "unauthorized": lambda: problem(401, "unauthorized", "Authentication required."),
    "forbidden": lambda: problem(403, "forbidden", "The API key lacks the write:domains scope."),
    "not_found": lambda: problem(404, "not_found", "No domain matching the given ID was found."),
    "blocked": lambda: problem(
        RESEND_BLOCKED_STATUS, RESEND_BLOCKED_CODE, NOT_RESENDABLE_REASON, title="Resend blocked"
    ),
    "rate_limited": rate_limited_problem,
    "server_error": lambda: problem(
        500, "internal_error", "An unexpected error occurred.", title="Internal server error"
    ),
    "bad_gateway": lambda: Response.html(502),
    "wrong_shape": lambda: Response(200, {"ok": True}),
    "hang": Response.hang,
    "close_after_read": Response.close_after_read,
}
"""Named failures for :meth:`FakeProvider.script_resend` (an error answer sends nothing)."""


@dataclass
class DomainRecord:
    """One domain on the stand-in's account, and what its email-verification view says."""

    name: str
    id: str
    status: str = "pending"
    reason: str | None = None
    verified_at: str | None = None
    last_checked_at: str | None = None
    method: str | None = "email"
    recipient: str | None = None
    expires_at: str | None = None
    is_suspended: bool = False
    can_resend: bool = False
    # Why canResend is false (None: NOT_RESENDABLE_REASON); the resend action's 409 says it too.
    resend_reason: str | None = None

    @property
    def can_resend_reason(self) -> str | None:
        return None if self.can_resend else (self.resend_reason or NOT_RESENDABLE_REASON)

    def listing(self) -> dict[str, Any]:
        """The item ``GET /api/v2/domains`` lists for it."""
        return {
            "id": self.id,
            "name": self.name,
            # The reference does not tie serviceStatus (of the service) to the view's
            # isSuspended: the stand-in does not either.
            "serviceStatus": "active",
            "lifecycle": {
                "type": "standard",
                "autoRenewEnabled": True,
                "registrarLockEnabled": False,
                "transferInProgress": False,
            },
            "billing": {"amount": 159, "currencyCode": "SEK", "billingCycle": "annually"},
        }

    def view(self) -> dict[str, Any]:
        """The documented answer of ``GET /api/v2/domains/{id}/email-verification``."""
        verified = self.status == "verified"
        verification = (
            None
            if verified
            else {
                "method": self.method,
                "recipient": self.recipient,
                "txtRecord": None,
                "expiresAt": self.expires_at,
            }
        )
        return {
            "status": self.status,
            "isVerified": verified,
            "isSuspended": self.is_suspended,
            "reason": self.reason,
            "verifiedAt": self.verified_at,
            "lastCheckedAt": self.last_checked_at,
            "verification": verification,
            "actions": {
                "canResend": {"allowed": self.can_resend, "reason": self.can_resend_reason}
            },
        }


def body_bytes(response: Response) -> bytes:
    body = response.body
    if isinstance(body, dict | list):
        return json.dumps(body).encode()
    if isinstance(body, str):
        return body.encode()
    return body


def resend_answer(
    record: DomainRecord | None,
    path: str,
    query: Mapping[str, list[str]],
    body: bytes,
    scopes: set[str],
) -> Response:
    """What ``POST /api/v2/domains/{id}/email-verification/actions/resend`` answers (the caller
    authenticated), in the order the checks are made: the scope (403), the id (404), ``lang``
    and the body (400 ``invalid_request`` with field-level errors), the view's canResend gate
    (RESEND_BLOCKED_STATUS with the view's reason), else the documented 200."""
    if RESEND_SCOPE not in scopes:
        return problem(403, "forbidden", f"This API key lacks the {RESEND_SCOPE} scope.", path)
    if record is None:
        return problem(404, "not_found", "No domain matching the given ID was found.", path)
    errors: list[dict[str, str]] = []
    langs = query.get("lang", [])
    if len(langs) > 1 or any(lang not in RESEND_LANGUAGES for lang in langs):
        errors.append(
            {"pointer": "/lang", "detail": "lang must be en or sv.", "code": "invalid_value"}
        )
    if body.strip() and _json_or_none(body) != {}:
        errors.append({"pointer": "/", "detail": "No fields are accepted.", "code": "invalid"})
    if errors:
        return problem(
            400,
            "invalid_request",
            "The request failed validation.",
            path,
            title="Validation failed",
            errors=errors,
        )
    if not record.can_resend:
        return problem(
            RESEND_BLOCKED_STATUS,
            RESEND_BLOCKED_CODE,
            record.can_resend_reason or NOT_RESENDABLE_REASON,
            path,
            title="Resend blocked",
        )
    return Response(
        200,
        {
            "ok": True,
            "domain": {"id": record.id, "name": record.name},
            "verification": {
                "recipient": record.recipient or f"hostmaster@{record.name}",
                "method": "email",
            },
            "sentAt": now(),
        },
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
