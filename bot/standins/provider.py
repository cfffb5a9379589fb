"""A local stand-in for the provider's email-verification API, over real HTTP on loopback.

Used by the end-to-end tests and by ``python -m bot sandbox``. It answers like the provider's
public API reference says, under the same ``/api`` prefix::

    POST /api/email-verification/confirmed   {"email": ..., "approved": "yes"} -> documented 200
    GET  /api/email-verification/status      -> {"success": true, "data": {"domains": [...], ...}}

and the v2 per-domain view (``Authorization: Bearer <key>``, scope ``read:domains``, errors as
RFC 7807 problem details)::

    GET  /api/v2/domains?name=example.com              -> {"data": [{"id": "dom_…", "name": …}],
                                                           "hasMore": false, "nextCursor": null}
    GET  /api/v2/domains/{id}/email-verification       -> {"status": "pending", "isVerified": …}

A request without the configured ``X-API-Key`` (v1) or Bearer token (v2) gets 401 problem
details. Every request to the v1 API is recorded in :attr:`FakeProvider.calls`, every one to
the v2 view in :attr:`FakeProvider.view_calls`. By default every call succeeds; to script
failures, queue answers, which are used one per request, in order, before the default comes
back (``enqueue``/``script`` for the v1 API, ``enqueue_view``/``script_view`` for the view)::

    with FakeProvider(api_key="k") as provider:
        provider.enqueue(Response.error(400, "Email is required"))
        provider.script("rate_limited", times=2)     # a named mode, see MODES
        provider.enqueue(Response.hang(5))           # answer normally, 5 s late
        provider.enqueue(Response.close_after_read())
        provider.cleared_domains = ["a.example", "b.example"]
        provider.clients_notified = [3704, "3705"]
        provider.delay = 0.2                         # before every v1 answer
        provider.view_delay = 0.1                    # before every answer of the v2 view
        client = HostupClient(provider.url, "k", timeout=1)

Handlers run on their own daemon threads, so a delayed or hanging answer never holds up other
requests, and :meth:`FakeProvider.stop` wakes them so it never waits for them.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

PREFIX = "/api"
CONFIRM_PATH = f"{PREFIX}/email-verification/confirmed"
STATUS_PATH = f"{PREFIX}/email-verification/status"
DOMAINS_PATH = f"{PREFIX}/v2/domains"
VIEW_SUFFIX = "/email-verification"
VIEW_SCOPE = "read:domains"
MAX_REQUEST_BYTES = 1_000_000
# The statuses the per-domain view documents.
VIEW_STATUSES = ("verified", "unverified", "pending", "expired", "unknown")

ErrorShape = Literal["documented", "problem"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_request_id() -> str:
    return str(uuid.uuid4())


def _now_plus_days(days: int) -> str:
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_v2(path: str) -> bool:
    return path == DOMAINS_PATH or path.startswith(DOMAINS_PATH + "/")


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.upper().replace(" ", "_").replace("-", "_")
    except ValueError:
        return f"HTTP_{status}"


def _phrase(status: int) -> str:
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
        message = message or f"{_phrase(status)} (stand-in provider)"
        code = code or _code_for(status)
        if shape == "problem":
            body: dict[str, Any] = {
                "type": f"https://cloud.hostup.se/problems/{code.lower().replace('_', '-')}",
                "title": _phrase(status),
                "status": status,
                "detail": message,
                "code": code,
                "requestId": _new_request_id(),
            }
            return cls(status, body, "application/problem+json", dict(headers or {}))
        body = {
            "code": code,
            "error": _phrase(status),
            "message": message,
            "requestId": _new_request_id(),
            "timestamp": _now(),
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
            f"<!DOCTYPE html><html><head><title>{status} {_phrase(status)}</title></head>"
            f"<body><h1>{status} {_phrase(status)}</h1><hr><p>nginx</p></body></html>"
        )
        return cls(status, page, "text/html; charset=utf-8")

    @classmethod
    def wrong_shape(cls) -> Response:
        """200 with JSON that is not the documented answer."""
        return cls(200, {"ok": True, "result": "done"})

    @classmethod
    def not_successful(cls, message: str = "Nothing to clear") -> Response:
        """200 whose body says it did not succeed."""
        body = {"success": False, "message": message, "requestId": _new_request_id()}
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


def problem(status: int, code: str, detail: str, instance: str = "/api/v2/...") -> Response:
    """An RFC 7807 problem document as the v2 API sends it (developer.hostup.se/errors)."""
    body = {
        "type": f"https://developer.hostup.se/errors/{code}",
        "title": _phrase(status),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "requestId": f"req_{uuid.uuid4().hex[:26]}",
        "timestamp": _now(),
    }
    return Response(status, body, "application/problem+json")


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
                "canResend": {
                    "allowed": self.can_resend,
                    "reason": None if self.can_resend else "Not available for this domain.",
                }
            },
        }


class FakeProvider:
    """The stand-in provider: a threaded HTTP server on 127.0.0.1, on a free port.

    Settable at any time: ``delay`` (seconds before every answer of the v1 API),
    ``view_delay`` (the same for the v2 view), ``cleared_domains`` (None: the domain of the
    email), ``clients_notified``, ``status_domains`` (names, listed by the status endpoint as
    objects ``{"domain": name}``: the reference documents an array of objects without their
    fields), ``status_items`` (when not None, the items sent as they are); for the v2 view,
    ``scopes`` (the key's: without ``read:domains`` it answers 403), ``unknown_domains``
    (names the account does not hold), ``status_after_confirm`` and, per domain,
    :meth:`set_domain`.
    """

    def __init__(self, api_key: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key
        self.delay: float = 0.0
        self.view_delay: float = 0.0
        self.cleared_domains: list[str] | None = None
        self.clients_notified: list[str | int] = ["3704"]
        self.status_domains: list[str] = ["example.com"]
        self.status_items: list[Any] | None = None
        # The v2 view: every domain asked about is on the account, pending, unless set here.
        self.scopes: set[str] = {VIEW_SCOPE}
        self.unknown_domains: set[str] = set()
        # When set, a confirm that arrives (answered or not) turns its domain to this status.
        self.status_after_confirm: str | None = None
        self._domains: dict[str, DomainRecord] = {}
        self._view_calls: list[dict[str, Any]] = []
        self._view_queue: deque[Response] = deque()
        self._address = (host, port)
        self._lock = threading.Condition()
        self._calls: list[dict[str, Any]] = []
        self._queue: deque[Response] = deque()
        self._in_flight: dict[int, tuple[str, int]] = {}  # id(call) -> (path, client port)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("The stand-in provider is already running.")
        self._stopping.clear()
        self._server = _Server(self._address, _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes delayed and hanging handlers so this never waits on them."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The stand-in provider is not running.")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give the client, with the ``/api`` prefix the real one has."""
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    # -- scripting and inspection

    def enqueue(self, *responses: Response) -> None:
        """Answer the next requests with these, in order; then the default comes back."""
        with self._lock:
            self._queue.extend(responses)

    def script(self, mode: str, *, times: int = 1) -> None:
        """Queue the named failure ``times`` times; ``mode`` is a key of :data:`MODES`."""
        try:
            make = MODES[mode]
        except KeyError:
            raise ValueError(f"Unknown mode {mode!r}; known: {', '.join(MODES)}") from None
        self.enqueue(*(make() for _ in range(times)))

    def reset(self) -> None:
        """Forget recorded calls and queued answers."""
        with self._lock:
            self._calls.clear()
            self._queue.clear()
            self._view_calls.clear()
            self._view_queue.clear()

    def enqueue_view(self, *responses: Response) -> None:
        """Answer the next requests to the v2 view with these, in order."""
        with self._lock:
            self._view_queue.extend(responses)

    def script_view(self, mode: str, *, times: int = 1) -> None:
        """Queue the named failure of the v2 view; ``mode`` is a key of :data:`VIEW_MODES`."""
        try:
            make = VIEW_MODES[mode]
        except KeyError:
            raise ValueError(f"Unknown mode {mode!r}; known: {', '.join(VIEW_MODES)}") from None
        self.enqueue_view(*(make() for _ in range(times)))

    def domain(self, name: str) -> DomainRecord:
        """The record of ``name`` (created pending, as the reference's example, on first use);
        change its fields to change what the view says."""
        key = name.lower()
        with self._lock:
            record = self._domains.get(key)
            if record is None:
                record = DomainRecord(
                    name=key,
                    id="dom_" + uuid.uuid5(uuid.NAMESPACE_DNS, key).hex[:26],
                    recipient=f"hostmaster@{key}",
                    reason=(
                        f"A verification email has been sent to hostmaster@{key}. Follow the "
                        "link in that message to verify the registrant's email address."
                    ),
                    last_checked_at=_now(),
                    expires_at=_now_plus_days(7),
                )
                self._domains[key] = record
            return record

    def set_domain(self, name: str, **fields: Any) -> DomainRecord:
        """Set what the view says of ``name`` (``status=``, ``recipient=``, …). A domain set
        verified loses its reason unless one is given: the reference returns verified when
        there is no attention item, and names reason text for pending, expired or suspended."""
        record = self.domain(name)
        with self._lock:
            for key, value in fields.items():
                if not hasattr(record, key):
                    raise AttributeError(f"DomainRecord has no field {key!r}")
                setattr(record, key, value)
            if record.status == "verified" and record.verified_at is None:
                record.verified_at = _now()
            if fields.get("status") == "verified" and "reason" not in fields:
                record.reason = None
        return record

    @property
    def view_calls(self) -> list[dict[str, Any]]:
        """Every request to the v2 view so far, as :attr:`calls` records them (and ``query``)."""
        with self._lock:
            return [dict(call) for call in self._view_calls]

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every request so far, oldest first: ``method``, ``path``, ``headers`` (names in
        lower case), ``json`` (the parsed body, or None), ``body`` (the raw bytes) and
        ``status`` (what it was answered with; None while unanswered or when never)."""
        with self._lock:
            return [dict(call) for call in self._calls]

    # -- used by the handler

    def wait_for_calls(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` requests have arrived (answered or not); the calls."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._calls) >= count, timeout):
                raise TimeoutError(
                    f"FakeProvider: {len(self._calls)} of {count} calls within {timeout} s"
                )
            return [dict(call) for call in self._calls]

    def wait_for_view_calls(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` requests to the v2 view have arrived; those calls."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._view_calls) >= count, timeout):
                raise TimeoutError(
                    f"FakeProvider: {len(self._view_calls)} of {count} view calls in {timeout} s"
                )
            return [dict(call) for call in self._view_calls]

    def in_flight(self, path: str | None = None) -> list[int]:
        """The client ports of the requests (to ``path``) being answered now, a hanging or
        delayed one included: the soak finds the replica in the middle of a call by them."""
        with self._lock:
            return [port for p, port in self._in_flight.values() if path is None or p == path]

    def wait_in_flight(self, path: str, timeout: float) -> list[int]:
        """Block until a request to ``path`` is being answered (at most ``timeout`` s); the
        client ports of those being answered then, or [] if none came."""
        with self._lock:
            self._lock.wait_for(lambda: bool(self.in_flight(path)), timeout)
            return self.in_flight(path)

    def _record(self, call: dict[str, Any]) -> None:
        with self._lock:
            (self._view_calls if _is_v2(call["path"]) else self._calls).append(call)
            self._in_flight[id(call)] = (call["path"], call["client_port"])
            self._lock.notify_all()

    def _answered(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._in_flight.pop(id(call), None)
            self._lock.notify_all()

    def _next_scripted(self, path: str) -> Response | None:
        with self._lock:
            queue = self._view_queue if _is_v2(path) else self._queue
            return queue.popleft() if queue else None

    def _confirm_arrived(self, body: Any) -> None:
        """A confirm reached the provider: the domain turns ``status_after_confirm``, if set."""
        after = self.status_after_confirm
        email = body.get("email") if isinstance(body, dict) else None
        if after is None or not isinstance(email, str) or "@" not in email:
            return
        self.set_domain(email.rpartition("@")[2], status=after)

    def _view_answer(self, method: str, path: str, query: dict[str, list[str]]) -> Response:
        """What the v2 API answers (the caller was authenticated)."""
        if method != "GET":
            return problem(405, "method_not_allowed", "Use GET.", path)
        if VIEW_SCOPE not in self.scopes:
            return problem(403, "forbidden", f"This API key lacks the {VIEW_SCOPE} scope.", path)
        if path == DOMAINS_PATH:
            names = query.get("name") or []
            with self._lock:
                unknown = set(self.unknown_domains)
            data = [
                self.domain(name).listing()
                for name in names[:1]
                if name.lower() not in unknown and name
            ]
            # A cursor-paginated list (the reference); filtered by exact name, one page.
            return Response(200, {"data": data, "hasMore": False, "nextCursor": None})
        domain_id = path.removeprefix(DOMAINS_PATH + "/").removesuffix(VIEW_SUFFIX)
        with self._lock:
            record = next((r for r in self._domains.values() if r.id == domain_id), None)
        if record is None or not path.endswith(VIEW_SUFFIX) or "/" in domain_id:
            return problem(404, "not_found", "No domain matching the given ID was found.", path)
        with self._lock:
            return Response(200, record.view())

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the server is stopping meanwhile."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _opened(self, gate: threading.Event | None) -> bool:
        """Wait for ``gate`` (if any); False if the server stops first."""
        while gate is not None and not gate.wait(0.05):
            if self._stopping.is_set():
                return False
        return True

    def _authorised(self, key: str | None) -> bool:
        return key is not None and hmac.compare_digest(key.encode(), self.api_key.encode())

    def _normal(self, method: str, path: str, body: Any) -> Response:
        """The answer the real endpoint gives."""
        if path not in (CONFIRM_PATH, STATUS_PATH):
            return Response.error(404, f"No route for {method} {path}", shape="problem")
        if path == STATUS_PATH:
            if method != "GET":
                return Response.error(405, "Use GET", shape="problem")
            with self._lock:
                domains: list[Any] = (
                    list(self.status_items)
                    if self.status_items is not None
                    else [{"domain": name} for name in self.status_domains]
                )
            data = {"domains": domains, "loading": False, "lastChecked": _now()}
            return Response(200, self._success(data))
        if method != "POST":
            return Response.error(405, "Use POST", shape="problem")
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            return Response.error(400, "Email is required")
        email: str = body["email"]
        local, at, domain = email.rpartition("@")
        if not (local and at and domain):
            return Response.error(400, "Email is invalid")
        if body.get("approved") != "yes":
            return Response.error(400, 'approved must be "yes"')
        with self._lock:
            cleared = list(self.cleared_domains or [domain.lower()])
            clients = list(self.clients_notified)
        data = {
            "success": True,
            "message": "Verification caches cleared",
            "clearedDomains": cleared,
            "clientsNotified": clients,
        }
        return Response(200, self._success(data))

    @staticmethod
    def _success(data: dict[str, Any]) -> dict[str, Any]:
        return {"success": True, "timestamp": _now(), "requestId": _new_request_id(), "data": data}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of approvals connects at once
    # Do not join handler threads on close: a hanging one must not hold up stop().
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        provider: FakeProvider,
    ) -> None:
        self.provider = provider
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, closed socket) is normal here; no traceback on stderr.
        log.debug("stand-in provider: error while answering %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # One request per connection: nothing lingers on a kept-alive socket after stop().
    protocol_version = "HTTP/1.0"
    server_version = "FakeHostup/1.0"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("stand-in provider: " + format, *args)

    def _handle(self) -> None:
        provider = self.server.provider
        raw = self._read_body()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            parsed = None
        method = self.command
        path, _, query_text = self.path.partition("?")
        query = parse_qs(query_text)
        headers = {name.lower(): value for name, value in self.headers.items()}
        call: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "json": parsed,
            "body": raw,
            "status": None,  # the status it was answered with, once it is (None: no answer)
            "client_port": self.client_address[1],  # which process called (the soak's kills)
        }
        provider._record(call)
        try:
            self._answer(provider, call, method, path, query, parsed)
        finally:
            provider._answered(call)

    def _answer(
        self,
        provider: FakeProvider,
        call: dict[str, Any],
        method: str,
        path: str,
        query: dict[str, list[str]],
        parsed: Any,
    ) -> None:
        v2 = _is_v2(path)
        if v2:
            bearer = self.headers.get("Authorization", "")
            token = bearer[7:] if bearer.startswith("Bearer ") else None
            allowed = provider._authorised(token)
        else:
            allowed = provider._authorised(self.headers.get("X-API-Key"))
        if not allowed:
            if v2:
                response = problem(401, "unauthorized", "Authentication required.", path)
            else:
                response = Response.error(401, "Invalid or missing API key", shape="problem")
        else:
            response = provider._next_scripted(path) or Response(action="normal")
            if path == CONFIRM_PATH and method == "POST" and response.action != "answer":
                # It acts, whether or not its answer gets back (a hang, a closed connection).
                provider._confirm_arrived(parsed)
        delay = provider.view_delay if v2 else provider.delay
        if provider._wait(delay + response.delay) or not provider._opened(response.gate):
            self.close_connection = True
            return
        if response.action == "close":
            self.close_connection = True
            return
        if response.action == "normal":
            trickle = response.trickle
            response = (
                provider._view_answer(method, path, query)
                if v2
                else provider._normal(method, path, parsed)
            )
            if trickle > 0:
                self._trickle(provider, call, response, trickle)
                return
        with provider._lock:
            call["status"] = response.status
        self._send(response)

    def _trickle(
        self, provider: FakeProvider, call: dict[str, Any], response: Response, every: float
    ) -> None:
        """Send the status line and headers a byte at a time, then the body; stop when the
        client hangs up (``call["abandoned"]``) or the stand-in stops."""
        payload = _payload(response)
        head = (
            f"HTTP/1.0 {response.status} {_phrase(response.status)}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "X-Stand-In: trickling headers, one byte at a time\r\n\r\n"
        ).encode()
        self.close_connection = True
        try:
            for i in range(len(head)):
                self.wfile.write(head[i : i + 1])
                if provider._wait(every):
                    return
            self.wfile.write(payload)
        except OSError:
            with provider._lock:
                call["abandoned"] = True
                provider._lock.notify_all()
            return
        with provider._lock:
            call["status"] = response.status

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(min(max(length, 0), MAX_REQUEST_BYTES)) if length > 0 else b""

    def _send(self, response: Response) -> None:
        payload = _payload(response)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _payload(response: Response) -> bytes:
    body = response.body
    if isinstance(body, dict | list):
        return json.dumps(body).encode()
    if isinstance(body, str):
        return body.encode()
    return body
