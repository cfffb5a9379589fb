"""The provider client: HostUp's email-verification API, typed results and errors.

One :class:`HostupClient` holds one long-lived ``httpx.Client`` with an explicit timeout.

* ``confirm(email)`` POSTs ``{"email": ..., "approved": "yes"}`` to
  ``{base}/email-verification/confirmed`` and returns the domain's
  :class:`~bot.domain.outcomes.Cleared`.
* ``status()`` GETs ``{base}/email-verification/status`` (read-only) and returns a
  :class:`ProviderStatus`.
* ``view(domain)`` reads the per-domain view of the v2 API (read-only, scope ``read:domains``,
  ``Authorization: Bearer <key>``): ``GET {base}/v2/domains?name=<domain>`` for the domain's id
  (by its ASCII form, then by its Unicode form if that differs and the first found nothing;
  skipped when the id is known, or shared with a reading of the same domain under way in this
  process), then ``GET {base}/v2/domains/{id}/email-verification``. It
  returns a :class:`~bot.domain.views.ProviderView` or raises
  :class:`~bot.domain.views.ViewFailure`: one attempt per call (no retry, no Retry-After wait)
  with a shorter timeout (``VIEW_TIMEOUT``), so a reading is always quick and bounded.

Every failure is a :class:`ProviderError` (the domain's ``ProviderFailure``, carrying the
``ProviderFailed`` outcome to record) whose ``kind`` says what happened:

==================  ==========================================================================
``rejected``        the provider refused the request (4xx other than 401, 403 and 429)
``auth``            the provider refused the API key (401 or 403)
``rate_limited``    still 429 after ``max_attempts`` attempts
``server_error``    5xx
``bad_response``    an answer we cannot read: HTML, not JSON, a redirect, a 2xx whose body is not
                    the documented shape, or a 200 that says it did not succeed
``timeout``         no answer after the request was sent: it timed out, or the connection broke
``unreachable``     the provider could not be reached at all (nothing was sent)
==================  ==========================================================================

``outcome_unknown`` is True only when the request may have reached the provider and we cannot
know whether it acted (``timeout`` from ``confirm``). Such a request is never retried here: that
is for a person to decide. A 429 is retried after its ``Retry-After`` (bounded), and a connection
that never reached the provider is retried with a short backoff, within ``max_attempts`` in all.

Everything the provider sends is untrusted: wrong types are ignored or refused, strings are
stripped of control characters and shortened. The API key never appears in a log line, an
exception or a dict this module produces.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpcore
import httpx

from bot.domain import correlation
from bot.domain.inputs import domain_variants
from bot.domain.outcomes import Cleared, ErrorKind, ProviderFailed, ProviderFailure
from bot.domain.views import ProviderView, UnavailableKind, ViewFailure, ViewUnavailable

log = logging.getLogger(__name__)

CONFIRM_PATH: Final = "email-verification/confirmed"
STATUS_PATH: Final = "email-verification/status"
DOMAINS_PATH: Final = "v2/domains"
VIEW_PATH: Final = "v2/domains/{id}/email-verification"
# The v2 scope the per-domain view needs.
VIEW_SCOPE: Final = "read:domains"
# Seconds for one call of the per-domain view, at most (HOSTUP_TIMEOUT when that is shorter).
VIEW_TIMEOUT: Final = 5.0
# Calls one reading makes at most: the list (for the id) by the domain's ASCII name, by its
# Unicode name (an internationalised domain the first did not find), then the view.
VIEW_CALLS: Final = 3
USER_AGENT: Final = "verify-email-bot"

MAX_MESSAGE_CHARS: Final = 500
MAX_ID_CHARS: Final = 200
# A domain name is at most 253 characters; client ids are short.
MAX_ITEM_CHARS: Final = 300
# An answer larger than this is not one the provider's API gives.
MAX_BODY_BYTES: Final = 5_000_000
# Retry-After missing or unreadable.
DEFAULT_RETRY_AFTER: Final = 1.0
# First wait after a failed connection; doubles on each further attempt.
CONNECT_BACKOFF: Final = 0.2
# The confirm call's attempts and the longest Retry-After it waits on, unless told otherwise.
MAX_ATTEMPTS: Final = 3
MAX_RETRY_AFTER: Final = 30.0

# ---------------------------------------------------------------------------------------------
# Results and errors


@dataclass(frozen=True)
class ProviderStatus:
    """The provider's read-only view of the email-verification caches.

    The reference documents ``data.domains`` as an array of objects without naming their
    fields (its example is ``[]``), so ``listed`` counts every item the provider sent and
    ``domains`` holds the names the bot could read from them (see ``status_domain_name``).
    """

    domains: tuple[str, ...]
    listed: int
    loading: bool
    last_checked: str | None


class ProviderError(ProviderFailure):
    """The provider call failed; ``message`` is a sentence that can be shown to a person, and
    ``outcome`` what the service records."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(
            ProviderFailed(
                kind=kind,
                message=message,
                status=status,
                code=code,
                provider_request_id=request_id,
                outcome_unknown=outcome_unknown,
            )
        )
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.outcome_unknown = outcome_unknown

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
# Reading untrusted values


def clean_text(value: object, limit: int) -> str | None:
    """A provider-sent string made safe to store and show, or None if it is not usable text.

    Integers (not booleans) become strings; any other type is ignored. Control characters
    become spaces, runs of whitespace collapse, and the result is cut to ``limit`` characters.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = " ".join(
        "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in value).split()
    )
    if not text:
        return None
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _string_list(value: object, *, allow_int: bool) -> tuple[str, ...] | None:
    """A list of strings (and ints, when allowed) as a tuple of strings; None if not that."""
    if not isinstance(value, list):
        return None
    items: list[str] = []
    for element in value:
        if isinstance(element, bool) or not (
            isinstance(element, str) or (allow_int and isinstance(element, int))
        ):
            return None
        text = clean_text(element, MAX_ITEM_CHARS)
        if text is not None:
            items.append(text)
    return tuple(items)


# Where a domain's name may be in an item of the status endpoint's ``data.domains``: the
# reference says "array<object>" and no more, so the usual spellings are tried in turn.
STATUS_DOMAIN_NAME_KEYS: Final = ("domain", "domainName", "domain_name", "name", "fqdn", "hostname")


def status_domain_name(item: object) -> str | None:
    """The domain name in one item of the status endpoint's ``data.domains``, or None.

    An object gives the first usable text under ``STATUS_DOMAIN_NAME_KEYS`` (a nested
    ``{"domain": {"name": …}}`` too); a plain string is taken as the name. Any other shape is
    not an error: the item is still counted, just not named.
    """
    if isinstance(item, str):
        return clean_text(item, MAX_ITEM_CHARS)
    if not isinstance(item, dict):
        return None
    for key in STATUS_DOMAIN_NAME_KEYS:
        value = item.get(key)
        if isinstance(value, dict):
            value = next((value.get(k) for k in ("name", "domain") if k in value), None)
        name = clean_text(value, MAX_ITEM_CHARS) if isinstance(value, str) else None
        if name is not None:
            return name
    return None


def _endpoint(path: str) -> str:
    """The endpoint a path is, for the metrics: confirm, status, domains or view."""
    if path == CONFIRM_PATH:
        return "confirm"
    if path == STATUS_PATH:
        return "status"
    return "view" if path.endswith("/email-verification") else "domains"


def _object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for reading nested fields)."""
    return value if isinstance(value, dict) else {}


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    ``now`` is the current Unix time, for an HTTP-date. A date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, read in full (up to MAX_BODY_BYTES); ``endpoint`` and ``seconds`` (how
    long the exchange took) are for the metrics, told once the answer has been judged."""

    status: int
    headers: httpx.Headers
    body: bytes
    too_large: bool = False
    undecodable: bool = False
    endpoint: str = ""
    seconds: float = 0.0

    @property
    def is_html(self) -> bool:
        content_type = self.headers.get("content-type", "").lower()
        return "html" in content_type or self.body.lstrip()[:1] == b"<"

    @cached_property
    def payload(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if self.too_large or self.undecodable or not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None

    def header_request_id(self) -> str | None:
        return clean_text(self.headers.get("x-request-id"), MAX_ID_CHARS)


def _error_fields(payload: object) -> tuple[str | None, str | None, str | None]:
    """(code, message, requestId) from a documented error body or RFC 7807 problem details."""
    if not isinstance(payload, dict):
        return None, None, None
    code = clean_text(payload.get("code"), MAX_ID_CHARS)
    message = None
    for key in ("message", "detail", "error", "title"):
        message = clean_text(payload.get(key), MAX_MESSAGE_CHARS)
        if message:
            break
    request_id = clean_text(payload.get("requestId"), MAX_ID_CHARS)
    return code, message, request_id


def _kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if 400 <= status < 500:
        return "rejected"
    if 500 <= status < 600:
        return "server_error"
    return "bad_response"


def _status_words(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _explain(answer: _Answer, payload: object, attempts: int) -> str:
    """Our own sentence for an error answer that did not explain itself."""
    status = answer.status
    words = _status_words(status)
    if answer.too_large:
        return f"The provider answered {words} with a body larger than {MAX_BODY_BYTES} bytes."
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
# The attempt's deadline, on the sockets themselves

# httpx applies its timeout to connecting and to each read and write, not to the exchange: a
# provider that trickles its headers (a byte at a time, each within the timeout) keeps a call
# open for as long as it likes. So each exchange sets a wall-clock deadline for the thread that
# makes it, and every socket operation of the default transport is given at most the time left
# until then: at the deadline the operation times out, and httpcore closes the connection.
_deadline = threading.local()


def _time_left(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` shortened to the time left before this thread's deadline (none: as it is);
    ``error`` once the deadline has passed."""
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the attempt reached its deadline")
    return left if timeout is None else min(timeout, left)


@contextmanager
def _until(deadline: float) -> Iterator[None]:
    """Every socket operation of this thread's exchanges ends by ``deadline`` (monotonic)."""
    _deadline.at = deadline
    try:
        yield
    finally:
        _deadline.at = None


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each operation bounded by the thread's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, left, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport (its limits and TLS defaults) over a pool of deadline-bound sockets.
    (A proxy taken from the environment gets httpx's own transport: there only the body's
    reading is bounded by the deadline, see :meth:`HostupClient._exchange`.)"""

    def __init__(self) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(),
        )


# ---------------------------------------------------------------------------------------------
# The client


def longest_call(
    timeout: float, max_attempts: int = MAX_ATTEMPTS, max_retry_after: float = MAX_RETRY_AFTER
) -> float:
    """Seconds a claimed request can stay executing at most: every attempt of ``confirm`` and
    the waits between them, then the read-back of the domain's view.

    httpx applies ``timeout`` to connecting and to each read; twice it per attempt is a
    generous bound. A claim older than this cannot still be waiting on the provider.
    """
    confirm = max_attempts * 2 * timeout + (max_attempts - 1) * max(
        max_retry_after, CONNECT_BACKOFF * 2.0 ** (max_attempts - 1)
    )
    return confirm + VIEW_CALLS * 2 * min(timeout, VIEW_TIMEOUT)


class HostupClient:
    """The provider's email-verification API over one long-lived httpx client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        max_retry_after: float = MAX_RETRY_AFTER,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")
        if any(c in api_key for c in "\r\n\0"):
            # Say what is wrong without repeating the key.
            raise ValueError(
                "The API key contains a line break or NUL, which a header cannot carry."
            )
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self._api_key = api_key
        self._sleep = sleep
        # Told of every HTTP exchange once: (endpoint, outcome, seconds), the outcome being what
        # the client made of the answer (see _judged); the metrics' hook.
        self._observe = observe
        # The view: domain name -> the id a reading under way here is finding (or found).
        self._finding: dict[str, Future[str]] = {}
        self._finding_lock = threading.Lock()
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={
                "X-API-Key": api_key,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            transport=transport if transport is not None else _DeadlineTransport(),
        )

    @property
    def attempt_deadline(self) -> float:
        """Seconds one attempt of ``confirm`` takes at most, wall-clock: connecting, sending,
        the headers and the body (HOSTUP_TIMEOUT). A claim's lease covers one attempt and a
        grace, and is renewed before each further one."""
        return self.timeout

    @property
    def view_timeout(self) -> float:
        return min(self.timeout, VIEW_TIMEOUT)

    @property
    def max_view_duration(self) -> float:
        """Seconds one ``view`` can take at most: each of its calls, twice its timeout."""
        return VIEW_CALLS * 2 * self.view_timeout

    @property
    def max_duration(self) -> float:
        """Seconds a claimed request can stay executing at most (see :func:`longest_call`)."""
        return longest_call(self.timeout, self.max_attempts, self.max_retry_after)

    def __repr__(self) -> str:
        return f"HostupClient(base_url={self.base_url!r}, max_attempts={self.max_attempts!r})"

    # -- lifecycle

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API

    def confirm(self, email: str, *, renew: Callable[[float], bool] | None = None) -> Cleared:
        """Clear the verification caches for ``email``'s domain. Raises ProviderError.

        Each attempt ends by its deadline (``attempt_deadline``). Before each attempt after the
        first, ``renew(wait)`` (when given) must agree to it (the caller's claim is kept for
        the wait and one more attempt); when it does not, the failure so far is raised.
        """
        log.info("Asking the provider to confirm email verification for %s", email)
        answer = self._call(
            "POST", CONFIRM_PATH, {"email": email, "approved": "yes"}, unsafe=True, renew=renew
        )
        with self._judged(answer):
            data, request_id = self._success_data(answer)
            cleared = _string_list(data.get("clearedDomains"), allow_int=False)
            if cleared is None:
                raise self._bad_shape(answer, request_id, "clearedDomains is not a list of names")
            clients = _string_list(data.get("clientsNotified"), allow_int=True)
            if clients is None:
                raise self._bad_shape(answer, request_id, "clientsNotified is not a list of ids")
            payload = answer.payload
            return Cleared(
                cleared_domains=cleared,
                clients_notified=clients,
                message=self._redact(clean_text(data.get("message"), MAX_MESSAGE_CHARS) or ""),
                provider_request_id=request_id,
                timestamp=clean_text(payload.get("timestamp"), MAX_ID_CHARS),
            )

    def status(self) -> ProviderStatus:
        """The provider's read-only cache status; proves the key works. Raises ProviderError."""
        answer = self._call("GET", STATUS_PATH, None, unsafe=False)
        with self._judged(answer):
            data, request_id = self._success_data(answer)
            items = data.get("domains", [])
            if not isinstance(items, list):
                raise self._bad_shape(answer, request_id, "domains is not a list")
            names = (status_domain_name(item) for item in items)
            loading = data.get("loading", False)
            if not isinstance(loading, bool):
                raise self._bad_shape(answer, request_id, "loading is not true or false")
            return ProviderStatus(
                domains=tuple(name for name in names if name is not None),
                listed=len(items),
                loading=loading,
                last_checked=clean_text(data.get("lastChecked"), MAX_ID_CHARS),
            )

    def view(self, domain: str, domain_id: str | None = None) -> ProviderView:
        """The provider's email-verification view of ``domain``; raises ViewFailure.

        The domain's id comes from the list filtered by name, unless ``domain_id`` (from an
        earlier reading) is given, or another reading of the same domain in this process is
        under way: then its list call serves both (a read-back right after an approval reuses
        the id the request's lookup is finding), and so does its failure. A failure of the view
        itself carries the id, so the next reading need not list again. Every field is read
        leniently: a missing or mistyped one is left out, never a reason to refuse the reading;
        only a body that is not a JSON object, or one with no ``status``, is.
        """
        if domain_id is not None:
            return self._view_with_id(domain, domain_id)
        key = domain.rstrip(".").lower()
        with self._finding_lock:
            finding = self._finding.get(key)
            mine = finding is None
            if finding is None:
                finding = self._finding[key] = Future()
        try:
            if mine:
                try:
                    found = self._domain_id(domain)
                except BaseException as exc:
                    finding.set_exception(exc)
                    raise
                finding.set_result(found)
            else:
                found = self._joined_id(domain, finding)
            return self._view_with_id(domain, found)
        finally:
            if mine:  # shared until this reading is over, then never cached
                with self._finding_lock:
                    del self._finding[key]

    def _joined_id(self, domain: str, finding: Future[str]) -> str:
        """The id another reading of ``domain`` is finding. Its failure is this reading's too:
        waiting for it and then listing again could take longer than a reading may (see
        ``max_view_duration``: this wait, as long as the list calls, then the view call)."""
        try:
            return finding.result(timeout=(VIEW_CALLS - 1) * 2 * self.view_timeout)
        except ViewFailure as failure:
            raise ViewFailure(failure.unavailable) from failure
        except TimeoutError as exc:
            raise self._view_failure(domain, "timeout", "no answer in time") from exc

    def _view_with_id(self, domain: str, domain_id: str) -> ProviderView:
        """The view of the domain whose id is ``domain_id``: one GET. Its failure carries the id
        (but for a 404: an id the provider does not know is not worth keeping)."""
        try:
            return self._view_of(domain, domain_id)
        except ViewFailure as failure:
            unavailable = failure.unavailable
            if unavailable.kind == "not_found" or unavailable.domain_id is not None:
                raise
            raise ViewFailure(dataclasses.replace(unavailable, domain_id=domain_id)) from failure

    def _view_of(self, domain: str, domain_id: str) -> ProviderView:
        answer = self._read_v2(domain, VIEW_PATH.format(id=quote(domain_id, safe="")), None)
        with self._judged(answer):
            payload = answer.payload
            if isinstance(payload, dict) and "status" not in payload and "data" in payload:
                payload = payload["data"]  # an envelope, as the v1 API has: accepted as well
            if not isinstance(payload, dict):
                raise self._view_failure(
                    domain, "bad_response", "its answer is not a JSON object", answer.status
                )
            status = clean_text(payload.get("status"), 40)
            if status is None:
                raise self._view_failure(domain, "bad_response", "its answer has no status")
            verification = _object(payload.get("verification"))
            can_resend = _object(_object(payload.get("actions")).get("canResend")).get("allowed")
            return ProviderView(
                domain=domain,
                status=status.lower(),
                read_at=datetime.now(UTC),
                domain_id=domain_id,
                is_verified=_bool(payload.get("isVerified")),
                is_suspended=_bool(payload.get("isSuspended")),
                reason=self._redact_opt(clean_text(payload.get("reason"), MAX_MESSAGE_CHARS)),
                verified_at=clean_text(payload.get("verifiedAt"), MAX_ID_CHARS),
                last_checked_at=clean_text(payload.get("lastCheckedAt"), MAX_ID_CHARS),
                method=clean_text(verification.get("method"), 40),
                recipient=clean_text(verification.get("recipient"), MAX_ITEM_CHARS),
                expires_at=clean_text(verification.get("expiresAt"), MAX_ID_CHARS),
                can_resend=_bool(can_resend),
            )

    def view_access(self) -> ViewUnavailable | None:
        """None when the key may read the per-domain view (one ``GET v2/domains?limit=1``,
        read-only); else why it may not."""
        try:
            answer = self._read_v2("the account's domains", DOMAINS_PATH, {"limit": "1"})
        except ViewFailure as failure:
            return failure.unavailable
        self._settle(answer, "ok")  # any 2xx will do: only the key's access is asked about
        return None

    def _domain_id(self, domain: str) -> str:
        """The provider's id of ``domain`` (``data[].id`` of the list, filtered by name).

        The reference does not say in which form the list names an internationalised domain,
        so its ASCII (punycode) form is asked for first, then its Unicode form if that differs;
        a listed name matches in either form."""
        variants = domain_variants(domain.rstrip(".").lower())
        names = sorted(variants, key=lambda name: not name.isascii())  # the ASCII form first
        for name in names[:-1]:
            try:
                return self._listed_id(domain, name)
            except ViewFailure as failure:
                if failure.unavailable.kind != "not_found":
                    raise
        return self._listed_id(domain, names[-1])

    def _listed_id(self, domain: str, name: str) -> str:
        """The id the list filtered by ``name`` gives ``domain`` (listed in either IDNA form);
        raises ViewFailure (``not_found`` when it lists no such domain)."""
        answer = self._read_v2(domain, DOMAINS_PATH, {"name": name})
        with self._judged(answer):
            payload = answer.payload
            if not isinstance(payload, dict):  # an HTML page is no list, not an empty one
                raise self._view_failure(
                    domain, "bad_response", "its list of domains is not a JSON object"
                )
            items = payload.get("data")
            if items is not None and not isinstance(items, list):
                raise self._view_failure(
                    domain, "bad_response", "its list of domains is not a list"
                )
            wanted = set(domain_variants(domain.rstrip(".").lower()))
            for item in items or ():
                item = _object(item)
                listed = clean_text(item.get("name"), MAX_ITEM_CHARS)
                found = clean_text(item.get("id"), MAX_ID_CHARS)
                if (
                    listed is not None
                    and found
                    and wanted.intersection(domain_variants(listed.rstrip(".").lower()))
                ):
                    return found
            raise self._view_failure(domain, "not_found", "the provider has no domain by that name")

    def _read_v2(self, domain: str, path: str, params: Mapping[str, str] | None) -> _Answer:
        """One GET of the v2 API, with the key as a Bearer token; a 2xx answer (for the caller
        to judge, see :meth:`_judged`), or ViewFailure (counted here)."""
        try:
            answer = self._send(
                "GET", path, None, params=params, bearer=True, timeout=self.view_timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._view_failure(
                domain, "unreachable", f"could not connect ({type(exc).__name__})"
            ) from exc
        except httpx.TimeoutException as exc:
            raise self._view_failure(domain, "timeout", "no answer in time") from exc
        except httpx.TransportError as exc:
            raise self._view_failure(
                domain, "timeout", f"the connection broke ({type(exc).__name__})"
            ) from exc
        status = answer.status
        log.info("Provider GET %s answered %d", path.split("?")[0], status)
        if 200 <= status < 300 and not answer.too_large and not answer.undecodable:
            return answer
        code, detail, _ = _error_fields(answer.payload)
        said = f": {detail}" if detail else ""
        kind: UnavailableKind
        if status in (401, 403):
            kind, why = "no_scope", f"the API key may not read it (it needs {VIEW_SCOPE})"
        elif status == 404:
            kind, why = "not_found", "the provider has no such domain"
        elif status == 429:
            kind, why = "rate_limited", "the provider is limiting how often we call it"
        elif 500 <= status < 600:
            kind, why = "server_error", f"the provider failed{said}"
        else:
            kind, why = "bad_response", f"an answer this bot does not expect{said}"
        if code and kind in ("server_error", "bad_response"):
            why += f" (code {code})"
        self._settle(answer, kind)
        raise self._view_failure(domain, kind, why, status)

    def _view_failure(
        self, domain: str, kind: UnavailableKind, why: str, status: int | None = None
    ) -> ViewFailure:
        words = f" (HTTP {_status_words(status)})" if status is not None and status >= 300 else ""
        message = self._redact(clean_text(f"{why}{words}", MAX_MESSAGE_CHARS) or kind)
        # Informational: the request goes ahead without the reading, and says so.
        log.info("Provider view of %s unavailable: %s", domain, message)
        return ViewFailure(
            ViewUnavailable(
                domain=domain, kind=kind, message=message, read_at=datetime.now(UTC), status=status
            )
        )

    # -- one call, with the retries that are safe

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        unsafe: bool,
        renew: Callable[[float], bool] | None = None,
    ) -> _Answer:
        """Send until there is an answer to interpret; return it if it is a 2xx (for the caller
        to judge, see :meth:`_judged`), else raise ProviderError (counted here).

        ``unsafe``: the request changes something at the provider, so an error after sending
        leaves the outcome unknown. ``renew(wait)``: asked before each further attempt; no
        means the attempts end here, as if this one had been the last.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._send(method, path, body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the provider: safe to try again.
                wait = CONNECT_BACKOFF * 2 ** (attempt - 1)
                if attempt < self.max_attempts and (renew is None or renew(wait)):
                    log.warning(
                        "Provider %s %s attempt %d/%d could not connect (%s); retrying in %.1f s",
                        method,
                        path,
                        attempt,
                        self.max_attempts,
                        type(exc).__name__,
                        wait,
                    )
                    self._sleep(wait)
                    continue
                raise self._unreachable(exc, attempt) from exc
            except (httpx.UnsupportedProtocol, httpx.ProxyError, httpx.LocalProtocolError) as exc:
                # A wrong URL, a proxy that failed, a header we could not send: nothing was sent,
                # and trying again would fail the same way.
                raise self._unreachable(exc, attempt) from exc
            except httpx.TransportError as exc:
                # ReadTimeout, WriteTimeout, ReadError, WriteError, RemoteProtocolError, ...: the
                # request was (at least partly) sent. Never retried blindly.
                raise self._after_send(exc, method, path, unsafe=unsafe) from exc

            request_id = self._request_id(answer)
            log_level = logging.INFO if 200 <= answer.status < 300 else logging.WARNING
            log.log(
                log_level,
                "Provider %s %s attempt %d/%d answered %d (request id %s)",
                method,
                path,
                attempt,
                self.max_attempts,
                answer.status,
                request_id,
            )
            if answer.status == 429 and attempt < self.max_attempts:
                wait = parse_retry_after(answer.headers.get("retry-after"), time.time())
                wait = min(DEFAULT_RETRY_AFTER if wait is None else wait, self.max_retry_after)
                if renew is None or renew(wait):
                    log.warning("Provider rate limit: waiting %.1f s before trying again", wait)
                    self._settle(answer, "rate_limited")
                    self._sleep(wait)
                    continue
            if 200 <= answer.status < 300 and not answer.too_large and not answer.undecodable:
                return answer
            error = self._error_from_answer(answer, attempt)
            self._settle(answer, error.kind)
            raise error

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        params: Mapping[str, str] | None = None,
        bearer: bool = False,
        timeout: float | None = None,
    ) -> _Answer:
        """One exchange. Without an answer it is counted here (``unreachable`` when nothing was
        sent, else ``timeout``); an answer is counted by whoever judges it (:meth:`_settle`)."""
        timeout = self.timeout if timeout is None else timeout
        endpoint = _endpoint(path)
        started = time.perf_counter()
        try:
            answer = self._exchange(method, path, body, params, bearer, timeout)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
            httpx.ProxyError,
            httpx.LocalProtocolError,
        ):
            self._tell(endpoint, "unreachable", time.perf_counter() - started)  # nothing was sent
            raise
        except BaseException:
            self._tell(endpoint, "timeout", time.perf_counter() - started)
            raise
        answer = dataclasses.replace(
            answer, endpoint=endpoint, seconds=time.perf_counter() - started
        )
        request_id = self._request_id(answer)
        if request_id is not None:
            correlation.set_field("provider_request_id", request_id)
        return answer

    # -- the metrics: each exchange is told once, with what the bot made of it

    def _tell(self, endpoint: str, outcome: str, seconds: float) -> None:
        if self._observe is not None:
            self._observe(endpoint, outcome, seconds)

    def _settle(self, answer: _Answer, outcome: str) -> None:
        """Count the exchange that gave ``answer``: ``ok`` when it became a result, else the
        kind of failure it was taken for (a 200 the bot refuses is not ``ok``)."""
        self._tell(answer.endpoint, outcome, answer.seconds)

    @contextmanager
    def _judged(self, answer: _Answer) -> Iterator[None]:
        """Count ``answer``'s exchange once the block has read it: ``ok`` when the block
        returns, the kind of the ProviderError or ViewFailure it raises, ``error`` for anything
        else (a bug, which propagates and is logged)."""
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except ProviderError as exc:
            outcome = exc.kind
            raise
        except ViewFailure as exc:
            outcome = exc.unavailable.kind
            raise
        finally:
            self._settle(answer, outcome)

    def _exchange(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        bearer: bool,
        timeout: float,
    ) -> _Answer:
        request = self._client.build_request(
            method, path, json=body, params=params, timeout=httpx.Timeout(timeout)
        )
        if bearer:
            # The v2 API takes the key as a Bearer token, and only that.
            del request.headers["X-API-Key"]
            request.headers["Authorization"] = f"Bearer {self._api_key}"
        # httpx times each read, not the whole exchange: a provider that trickles its headers
        # or its body could hold a call open for ever. Each attempt ends by its wall-clock
        # deadline: the sockets honour it (see _DeadlineTransport: connecting, sending, the
        # headers), and so does the reading of the body below (for any transport).
        deadline = time.monotonic() + timeout
        with _until(deadline):
            return self._exchange_by(request, deadline)

    def _exchange_by(self, request: httpx.Request, deadline: float) -> _Answer:
        response = self._client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_bytes():
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the answer took longer than its deadline")
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        return _Answer(response.status_code, response.headers, b"", too_large=True)
                    chunks.append(chunk)
            except httpx.DecodingError:
                return _Answer(response.status_code, response.headers, b"", undecodable=True)
            return _Answer(response.status_code, response.headers, b"".join(chunks))
        finally:
            response.close()

    # -- building results and errors

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "[redacted]")
        return text

    def _redact_opt(self, text: str | None) -> str | None:
        return None if text is None else self._redact(text)

    def _error(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> ProviderError:
        return ProviderError(
            kind,
            self._redact(message),
            status=status,
            code=self._redact_opt(code),
            request_id=self._redact_opt(request_id),
            outcome_unknown=outcome_unknown,
        )

    def _request_id(self, answer: _Answer) -> str | None:
        _, _, request_id = _error_fields(answer.payload)
        return request_id or answer.header_request_id()

    def _unreachable(self, exc: httpx.TransportError, attempts: int) -> ProviderError:
        detail = clean_text(str(exc), MAX_MESSAGE_CHARS // 2) or type(exc).__name__
        tries = "attempt" if attempts == 1 else "attempts"
        return self._error(
            "unreachable",
            f"Could not reach the provider at {self.base_url} ({detail}) after {attempts} "
            f"{tries}. Nothing was sent, so nothing changed.",
        )

    def _after_send(
        self, exc: httpx.TransportError, method: str, path: str, *, unsafe: bool
    ) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
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
        return self._error("timeout", message, outcome_unknown=unsafe)

    def _error_from_answer(self, answer: _Answer, attempts: int) -> ProviderError:
        payload = answer.payload
        code, message, request_id = _error_fields(payload)
        if 200 <= answer.status < 300:
            kind: ErrorKind = "bad_response"  # too large or undecodable
        else:
            kind = _kind_for_status(answer.status)
        return self._error(
            kind,
            message or _explain(answer, payload, attempts),
            status=answer.status,
            code=code,
            request_id=request_id or answer.header_request_id(),
        )

    def _bad_shape(self, answer: _Answer, request_id: str | None, why: str) -> ProviderError:
        return self._error(
            "bad_response",
            f"The provider answered {_status_words(answer.status)} but not in the documented "
            f"shape: {why}.",
            status=answer.status,
            request_id=request_id,
        )

    def _success_data(self, answer: _Answer) -> tuple[dict[str, Any], str | None]:
        """The ``data`` object of a documented success answer, and the provider's request id."""
        payload = answer.payload
        if not isinstance(payload, dict):
            raise self._error(
                "bad_response",
                _explain(answer, payload, 1)
                if payload is None
                else f"The provider answered {_status_words(answer.status)} with JSON that is "
                "not an object.",
                status=answer.status,
                request_id=answer.header_request_id(),
            )
        code, provider_message, request_id = _error_fields(payload)
        request_id = request_id or answer.header_request_id()
        data = payload.get("data")
        if isinstance(data, dict) and payload.get("success") is True:
            if data.get("success", True) is True:
                return data, request_id
            if provider_message is None:
                _, provider_message, _ = _error_fields(data)
        said = f": {provider_message}" if provider_message else "."
        raise self._error(
            "bad_response",
            f"The provider answered {_status_words(answer.status)} but did not report "
            f"success{said}",
            status=answer.status,
            code=code,
            request_id=request_id,
        )
