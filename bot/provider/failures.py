"""How a provider call failed: the one classifier of httpx failures and HTTP answers.

Two functions say what went wrong, for every caller alike (the confirm client, the view
client and the metrics): :func:`unanswered` for an exchange that raised instead of answering
(nothing reached the provider, nothing was sent, no answer in time, or the connection broke),
and :func:`refusal` for an answer that is no result, by its status. :class:`Failures` turns
that into the domain's two shapes, with the API key redacted from every text:

* a :class:`ProviderError` (the domain's ``ProviderFailure``, carrying the ``ProviderFailed``
  outcome to record) for ``confirm`` and ``status``, whose ``kind`` says what happened:

  ==================  =========================================================================
  ``rejected``        the provider refused the request (4xx other than 401, 403 and 429)
  ``auth``            the provider refused the API key (401 or 403)
  ``rate_limited``    still 429 after the attempts allowed
  ``server_error``    5xx
  ``bad_response``    an answer we cannot read: HTML, not JSON, a redirect, a 2xx whose body is
                      not the documented shape, or a 200 that says it did not succeed
  ``timeout``         no answer after the request was sent: it timed out, or the connection broke
  ``unreachable``     the provider could not be reached at all (nothing was sent)
  ==================  =========================================================================

  ``outcome_unknown`` is True only when the request may have reached the provider and we cannot
  know whether it acted (``timeout`` from ``confirm``);
* a :class:`~bot.domain.views.ViewFailure` for the per-domain view: ``no_scope`` (401, 403),
  ``not_found`` (404), ``rate_limited`` (429), ``server_error`` (5xx), ``bad_response`` (any
  other answer that is no result), ``unreachable`` (could not connect) or ``timeout`` (anything
  else without an answer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, Literal

import httpx

from bot.domain.outcomes import ErrorKind, ProviderFailed, ProviderFailure
from bot.domain.pace import Pace
from bot.domain.views import UnavailableKind, ViewFailure, ViewUnavailable
from bot.provider import reading
from bot.provider.api import VIEW_SCOPE
from bot.provider.reading import (
    MAX_ID_CHARS,
    MAX_MESSAGE_CHARS,
    Answer,
    clean_text,
    error_fields,
)

log = logging.getLogger(__name__)


class ProviderError(ProviderFailure):
    """The provider call failed; ``message`` is a sentence that can be shown to a person, and
    ``outcome`` what the service records. ``pace``: what the last answer said of the rate
    limit (None: nothing, or no answer), also on ``outcome.pace``."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        outcome_unknown: bool = False,
        pace: Pace | None = None,
    ) -> None:
        super().__init__(
            ProviderFailed(
                kind=kind,
                message=message,
                status=status,
                code=code,
                provider_request_id=request_id,
                outcome_unknown=outcome_unknown,
                pace=pace,
            )
        )
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.outcome_unknown = outcome_unknown
        self.pace = pace

    def __str__(self) -> str:
        details = [f"HTTP {self.status}" if self.status is not None else self.kind]
        if self.code:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        return f"{self.message} ({', '.join(details)})"

    def __repr__(self) -> str:
        return (
            f"ProviderError(kind={self.kind!r}, status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r}, "
            f"outcome_unknown={self.outcome_unknown!r})"
        )


# ---------------------------------------------------------------------------------------------
# The classifier

# What became of an exchange that raised instead of answering.
Unanswered = Literal[
    "not_connected",  # nothing reached the provider: safe to try again
    "not_sent",  # a wrong URL, a proxy that failed, a header we could not send: trying again
    # would fail the same way
    "timed_out",  # the request was (at least partly) sent, and no answer came in time
    "broken",  # the request was (at least partly) sent, and the connection broke
]


def unanswered(exc: BaseException) -> Unanswered:
    """What an exchange that raised ``exc`` (an httpx error, or anything else) did."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "not_connected"
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.ProxyError, httpx.LocalProtocolError)):
        return "not_sent"
    if isinstance(exc, httpx.TimeoutException):
        return "timed_out"
    return "broken"


def unanswered_outcome(exc: BaseException) -> str:
    """The metrics' outcome of an exchange that raised ``exc``: ``unreachable`` when nothing was
    sent, else ``timeout``."""
    return "unreachable" if unanswered(exc) in ("not_connected", "not_sent") else "timeout"


# What an HTTP answer that is no result says, by its status.
Refusal = Literal["auth", "not_found", "rate_limited", "rejected", "server_error", "bad_response"]


def refusal(status: int) -> Refusal:
    """What an answer with ``status`` that is no result means: the key refused (401, 403), no
    such thing (404), rate limited (429), the request refused (any other 4xx), a server error
    (5xx), or an answer we cannot use (anything else: a redirect, a 2xx we could not read)."""
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if 400 <= status < 500:
        return "rejected"
    if 500 <= status < 600:
        return "server_error"
    return "bad_response"


# A refusal as the confirm and status calls record it, and as the view says it.
ERROR_KINDS: Final[dict[Refusal, ErrorKind]] = {
    "auth": "auth",
    "not_found": "rejected",
    "rate_limited": "rate_limited",
    "rejected": "rejected",
    "server_error": "server_error",
    "bad_response": "bad_response",
}
VIEW_KINDS: Final[dict[Refusal, UnavailableKind]] = {
    "auth": "no_scope",
    "not_found": "not_found",
    "rate_limited": "rate_limited",
    "rejected": "bad_response",
    "server_error": "server_error",
    "bad_response": "bad_response",
}


def status_words(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def explain(answer: Answer, payload: object, attempts: int) -> str:
    """Our own sentence for an error answer that did not explain itself."""
    status = answer.status
    words = status_words(status)
    if answer.too_large:
        # The cap as it is now (read here, not imported: a test lowers it).
        return (
            f"The provider answered {words} with a body larger than {reading.MAX_BODY_BYTES} bytes."
        )
    if answer.undecodable:
        return f"The provider answered {words} with a body that could not be decoded."
    if 300 <= status < 400:
        location = clean_text(answer.headers.get("location"), MAX_ID_CHARS)
        to = f" to {location}" if location else ""
        return (
            f"The provider answered {words}, a redirect{to}, instead of an answer; "
            "HOSTUP_API_URL may be wrong."
        )
    if not answer.body.strip():
        return f"The provider answered {words} with an empty body."
    if payload is None:
        if answer.is_html:
            return f"The provider answered {words} with an HTML page instead of JSON."
        return f"The provider answered {words} with something that is not JSON."
    if status in (401, 403):
        return f"The provider refused the API key ({words})."
    if status == 429:
        tries = "attempt" if attempts == 1 else "attempts"
        return f"The provider is limiting how often we call it ({words}, {attempts} {tries})."
    if status == 404:
        return f"The provider does not know this address ({words}); HOSTUP_API_URL may be wrong."
    if 400 <= status < 500:
        return f"The provider refused the request ({words}) without saying why."
    if 500 <= status < 600:
        return f"The provider failed with a server error ({words})."
    return f"The provider answered {words}, which this bot does not expect."


# ---------------------------------------------------------------------------------------------
# The domain's shapes


class Failures:
    """Builds every ProviderError and ViewFailure of one client, from the classifier above;
    the API key never appears in what it builds."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self._api_key = api_key

    def redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "[redacted]")
        return text

    def redact_opt(self, text: str | None) -> str | None:
        return None if text is None else self.redact(text)

    # -- the confirm and status calls

    def error(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        outcome_unknown: bool = False,
        pace: Pace | None = None,
    ) -> ProviderError:
        return ProviderError(
            kind,
            self.redact(message),
            status=status,
            code=self.redact_opt(code),
            request_id=self.redact_opt(request_id),
            outcome_unknown=outcome_unknown,
            pace=pace,
        )

    def unanswered(
        self, exc: httpx.TransportError, method: str, path: str, *, attempts: int, unsafe: bool
    ) -> ProviderError:
        """The failure of a call whose last attempt raised ``exc``. ``unsafe``: the request
        changes something at the provider, so an error after sending leaves the outcome
        unknown."""
        if unanswered(exc) in ("not_connected", "not_sent"):
            return self._unreachable(exc, attempts)
        return self._after_send(exc, method, path, unsafe=unsafe)

    def _unreachable(self, exc: httpx.TransportError, attempts: int) -> ProviderError:
        detail = clean_text(str(exc), MAX_MESSAGE_CHARS // 2) or type(exc).__name__
        tries = "attempt" if attempts == 1 else "attempts"
        return self.error(
            "unreachable",
            f"Could not reach the provider at {self.base_url} ({detail}) after {attempts} "
            f"{tries}. Nothing was sent, so nothing changed.",
        )

    def _after_send(
        self, exc: httpx.TransportError, method: str, path: str, *, unsafe: bool
    ) -> ProviderError:
        if unanswered(exc) == "timed_out":
            what = "did not answer in time"
        else:
            what = "broke the connection without answering"
        if unsafe:
            message = (
                f"The provider {what} after the request was sent. It may or may not have "
                "acted: check before trying again."
            )
        else:
            message = f"The provider {what}."
        log.warning("Provider %s %s: %s (%s)", method, path, message, type(exc).__name__)
        return self.error("timeout", message, outcome_unknown=unsafe)

    def refused(
        self,
        answer: Answer,
        attempts: int,
        describe: Callable[[Any], str | None] | None = None,
    ) -> ProviderError:
        """The failure an answer that is no result (not a 2xx, or one we could not read) is;
        its message is ``describe(payload)`` when given and it says something, else the body's
        own message, else ours."""
        payload = answer.payload
        code, message, request_id = error_fields(payload)
        if describe is not None:
            message = describe(payload) or message
        return self.error(
            ERROR_KINDS[refusal(answer.status)],
            message or explain(answer, payload, attempts),
            status=answer.status,
            code=code,
            request_id=request_id or answer.header_request_id(),
            pace=answer.pace,
        )

    def bad_shape(self, answer: Answer, request_id: str | None, why: str) -> ProviderError:
        return self.error(
            "bad_response",
            f"The provider answered {status_words(answer.status)} but not in the documented "
            f"shape: {why}.",
            status=answer.status,
            request_id=request_id,
            pace=answer.pace,
        )

    # -- the per-domain view

    def view(
        self, domain: str, kind: UnavailableKind, why: str, status: int | None = None
    ) -> ViewFailure:
        words = f" (HTTP {status_words(status)})" if status is not None and status >= 300 else ""
        message = self.redact(clean_text(f"{why}{words}", MAX_MESSAGE_CHARS) or kind)
        # Informational: the request goes ahead without the reading, and says so.
        log.info("Provider view of %s unavailable: %s", domain, message)
        return ViewFailure(
            ViewUnavailable(
                domain=domain, kind=kind, message=message, read_at=datetime.now(UTC), status=status
            )
        )

    def view_unanswered(self, domain: str, exc: httpx.TransportError) -> ViewFailure:
        """The view's failure when a call raised ``exc``: ``unreachable`` when it could not
        connect, else ``timeout``."""
        fate = unanswered(exc)
        if fate == "not_connected":
            return self.view(domain, "unreachable", f"could not connect ({type(exc).__name__})")
        if fate == "timed_out":
            return self.view(domain, "timeout", "no answer in time")
        return self.view(domain, "timeout", f"the connection broke ({type(exc).__name__})")

    def view_refused(self, domain: str, answer: Answer) -> ViewFailure:
        """The view's failure an answer that is no result (not a 2xx, or one we could not
        read) is."""
        status = answer.status
        code, detail, _ = error_fields(answer.payload)
        said = f": {detail}" if detail else ""
        kind = VIEW_KINDS[refusal(status)]
        if kind == "no_scope":
            why = f"the API key may not read it (it needs {VIEW_SCOPE})"
        elif kind == "not_found":
            why = "the provider has no such domain"
        elif kind == "rate_limited":
            why = "the provider is limiting how often we call it"
        elif kind == "server_error":
            why = f"the provider failed{said}"
        else:
            why = f"an answer this bot does not expect{said}"
        if code and kind in ("server_error", "bad_response"):
            why += f" (code {code})"
        return self.view(domain, kind, why, status)
