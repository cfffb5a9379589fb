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

and the v2 resend action (scope ``write:domains``; ``lang`` en or sv; no body, or ``{}``)::

    POST /api/v2/domains/{id}/email-verification/actions/resend?lang=sv
        -> {"ok": true, "domain": {"id", "name"}, "verification": {"recipient",
            "method": "email"}, "sentAt": …}
        (403 without the scope, 404 for an unknown id, 400 invalid_request for a bad lang or a
        body, RESEND_BLOCKED_STATUS / RESEND_BLOCKED_CODE when the domain's view says
        canResend false: the reference names no code for that, see provider_answers)

A request without the configured ``X-API-Key`` (v1) or Bearer token (v2) gets 401 problem
details. Every request to the v1 API is recorded in :attr:`FakeProvider.calls`, every one to
the v2 view in :attr:`FakeProvider.view_calls`, every one to the resend action in
:attr:`FakeProvider.resend_calls` (and every email it sent in :meth:`FakeProvider.resends`).
By default every call succeeds (but a resend: a domain's record says canResend false unless
``default_can_resend`` or :meth:`set_domain` says otherwise); to script failures, queue answers,
which are used one per request, in order, before the default comes back (``enqueue``/``script``
for the v1 API, ``enqueue_view``/``script_view`` for the view, ``enqueue_resend``/
``script_resend`` for the resend action)::

    with FakeProvider(api_key="k") as provider:
        provider.enqueue(Response.error(400, "Email is required"))
        provider.script("rate_limited", times=2)     # a named mode, see MODES
        provider.enqueue(Response.hang(5))           # answer normally, 5 s late
        provider.enqueue(Response.close_after_read())
        provider.cleared_domains = ["a.example", "b.example"]
        provider.clients_notified = [3704, "3705"]
        provider.delay = 0.2                         # before every v1 answer
        provider.view_delay = 0.1                    # before every answer of the v2 view
        provider.resend_delay = 0.1                  # before every answer of the resend
        provider.rate_limit(20)                      # 429 beyond 20 confirms/resends a second
        provider.script_resend("close_after_read")   # sends the email, the answer is lost
        client = HostupClient(provider.url, "k", timeout=1)

Handlers run on their own daemon threads, so a delayed or hanging answer never holds up other
requests, and :meth:`FakeProvider.stop` wakes them so it never waits for them.

What it answers (paths, scripted answers, a domain's record) is in
:mod:`bot.standins.provider_answers`, re-exported here; its HTTP server and handler are in
:mod:`bot.standins.provider_http`. Its rate limit (:meth:`FakeProvider.rate_limit`) is
:mod:`bot.standins.provider_limit`. (Over 500 lines: the one class that holds the stand-in's
state for the v1 API, the view, the resend action and the rate limit over both actions, each
with its thin scripting methods.)
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from bot.standins.provider_answers import (
    CONFIRM_PATH,
    DOMAINS_PATH,
    MODES,
    PREFIX,
    RESEND_BLOCKED_CODE,
    RESEND_BLOCKED_STATUS,
    RESEND_MODES,
    RESEND_SCOPE,
    RESEND_SUFFIX,
    STATUS_PATH,
    VIEW_MODES,
    VIEW_SCOPE,
    VIEW_STATUSES,
    VIEW_SUFFIX,
    DomainRecord,
    ErrorShape,
    Response,
    is_resend,
    is_v2,
    new_request_id,
    now,
    now_plus_days,
    problem,
    rate_limited_problem,
    resend_answer,
)
from bot.standins.provider_http import Handler, Server
from bot.standins.provider_limit import RateLimit, RateLimitCode, Verdict, too_many

# The names the tests, the sandbox and the benchmarks import from here.
__all__ = [
    "CONFIRM_PATH",
    "DOMAINS_PATH",
    "MODES",
    "PREFIX",
    "RESEND_BLOCKED_CODE",
    "RESEND_BLOCKED_STATUS",
    "RESEND_MODES",
    "RESEND_SCOPE",
    "RESEND_SUFFIX",
    "STATUS_PATH",
    "VIEW_MODES",
    "VIEW_SCOPE",
    "VIEW_STATUSES",
    "DomainRecord",
    "ErrorShape",
    "FakeProvider",
    "Response",
    "problem",
    "rate_limited_problem",
]

log = logging.getLogger(__name__)


class FakeProvider:
    """The stand-in provider: a threaded HTTP server on 127.0.0.1, on a free port.

    Settable at any time: ``delay`` (seconds before every answer of the v1 API),
    ``view_delay`` (the same for the v2 view), ``resend_delay`` (the same for the resend
    action), ``cleared_domains`` (None: the domain of the
    email), ``clients_notified``, ``status_domains`` (names, listed by the status endpoint as
    objects ``{"domain": name}``: the reference documents an array of objects without their
    fields), ``status_items`` (when not None, the items sent as they are); for the v2 API,
    ``scopes`` (the key's: without ``read:domains`` the view answers 403, without
    ``write:domains`` the resend does), ``unknown_domains`` (names the account does not hold),
    ``status_after_confirm``, ``default_can_resend`` (what a domain's record first says of
    canResend) and, per domain, :meth:`set_domain`. A rate limit over confirm and resend calls
    (:meth:`rate_limit`), the 429s it sent counted in :attr:`rate_limited_count`; the latency
    is ``delay`` and ``resend_delay``.
    """

    def __init__(self, api_key: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key
        self.delay: float = 0.0
        self.view_delay: float = 0.0
        self.resend_delay: float = 0.0
        self.cleared_domains: list[str] | None = None
        self.clients_notified: list[str | int] = ["3704"]
        self.status_domains: list[str] = ["example.com"]
        self.status_items: list[Any] | None = None
        # The v2 view: every domain asked about is on the account, pending, unless set here.
        self.scopes: set[str] = {VIEW_SCOPE, RESEND_SCOPE}
        self.unknown_domains: set[str] = set()
        # canResend of a domain's record when it is first made (the reference's example: false).
        self.default_can_resend = False
        # When set, a confirm that arrives (answered or not) turns its domain to this status.
        self.status_after_confirm: str | None = None
        self._domains: dict[str, DomainRecord] = {}
        self._view_calls: list[dict[str, Any]] = []
        self._view_queue: deque[Response] = deque()
        self._resend_calls: list[dict[str, Any]] = []
        self._resend_queue: deque[Response] = deque()
        # Every verification email the resend action sent: domain, id, recipient, lang, sentAt.
        self._resent: list[dict[str, Any]] = []
        self._address = (host, port)
        self._lock = threading.Condition()
        self._calls: list[dict[str, Any]] = []
        self._queue: deque[Response] = deque()
        self._in_flight: dict[int, tuple[str, int]] = {}  # id(call) -> (path, client port)
        self._stopping = threading.Event()
        # The rate limit over confirm and resend calls (None: none), see rate_limit.
        self._limit: RateLimit | None = None
        self._limit_code: RateLimitCode = "rate_limit_exceeded"
        self._limit_headers_on_success = False
        self._rate_limited = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("The stand-in provider is already running.")
        self._stopping.clear()
        self._server = Server(self._address, Handler, self)
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

    def rate_limit(
        self,
        calls_per_second: float | None,
        *,
        burst: int | None = None,
        clock: Callable[[], float] | None = None,
        code: RateLimitCode = "rate_limit_exceeded",
        headers_on_success: bool = False,
    ) -> None:
        """Accept at most ``burst`` (default: ``calls_per_second``) confirm and resend calls
        (one count for both, as a per-key limit would) in any ``burst / calls_per_second``
        seconds, by ``clock`` (monotonic seconds); answer the others with the documented 429
        (problem ``code``, Retry-After and X-RateLimit-*, see
        :mod:`bot.standins.provider_limit`), before any scripted answer, after the key is
        checked. ``headers_on_success``: send the X-RateLimit headers on the accepted calls'
        answers too (the reference documents them on 429s). None: no limit."""
        limit = None
        if calls_per_second is not None:
            limit = RateLimit(calls_per_second, burst=burst, clock=clock or time.monotonic)
        with self._lock:
            self._limit = limit
            self._limit_code = code
            self._limit_headers_on_success = headers_on_success

    @property
    def rate_limited_count(self) -> int:
        """How many calls the rate limit answered 429 (scripted 429s not counted)."""
        with self._lock:
            return self._rate_limited

    def reset(self) -> None:
        """Forget recorded calls, queued answers and the count of 429s the rate limit sent."""
        with self._lock:
            self._calls.clear()
            self._queue.clear()
            self._view_calls.clear()
            self._view_queue.clear()
            self._resend_calls.clear()
            self._resend_queue.clear()
            self._resent.clear()
            self._rate_limited = 0

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

    def enqueue_resend(self, *responses: Response) -> None:
        """Answer the next requests to the resend action with these, in order. One whose
        ``action`` is not ``answer`` (a hang, a closed connection) still sends the email, as
        the real action would have before its answer was lost."""
        with self._lock:
            self._resend_queue.extend(responses)

    def script_resend(self, mode: str, *, times: int = 1) -> None:
        """Queue the named failure of the resend action; ``mode`` is a key of
        :data:`RESEND_MODES`."""
        try:
            make = RESEND_MODES[mode]
        except KeyError:
            raise ValueError(f"Unknown mode {mode!r}; known: {', '.join(RESEND_MODES)}") from None
        self.enqueue_resend(*(make() for _ in range(times)))

    @property
    def resend_calls(self) -> list[dict[str, Any]]:
        """Every request to the resend action so far, as :attr:`calls` records them (and
        ``query``), answered or not."""
        with self._lock:
            return [dict(call) for call in self._resend_calls]

    def resends(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every verification email the resend action sent (to ``name``'s domain), oldest
        first: ``domain``, ``id``, ``recipient``, ``lang`` (None: not given, the provider's
        default en) and ``sent_at``. A scripted error sends none; a lost answer does."""
        key = None if name is None else name.lower()
        with self._lock:
            return [dict(sent) for sent in self._resent if key is None or sent["domain"] == key]

    def wait_for_resend_calls(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` requests to the resend action have arrived."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._resend_calls) >= count, timeout):
                have = len(self._resend_calls)
                raise TimeoutError(f"FakeProvider: {have} of {count} resend calls in {timeout} s")
            return [dict(call) for call in self._resend_calls]

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
                    last_checked_at=now(),
                    expires_at=now_plus_days(7),
                    can_resend=self.default_can_resend,
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
                record.verified_at = now()
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
            path = call["path"]
            if is_resend(path):
                self._resend_calls.append(call)
            else:
                (self._view_calls if is_v2(path) else self._calls).append(call)
            self._in_flight[id(call)] = (call["path"], call["client_port"])
            self._lock.notify_all()

    def _answered(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._in_flight.pop(id(call), None)
            self._lock.notify_all()

    def _next_scripted(self, path: str) -> Response | None:
        with self._lock:
            if is_resend(path):
                queue = self._resend_queue
            else:
                queue = self._view_queue if is_v2(path) else self._queue
            return queue.popleft() if queue else None

    def _delay_for(self, path: str) -> float:
        """Seconds before every answer to ``path``: ``resend_delay``, ``view_delay`` or
        ``delay``."""
        if is_resend(path):
            return self.resend_delay
        return self.view_delay if is_v2(path) else self.delay

    def _limited(self, path: str) -> tuple[Response | None, dict[str, str]]:
        """The rate limit's word on a call to ``path`` that arrived now (the key checked): the
        429 to answer (None: go on), and the headers to add to any other answer."""
        with self._lock:
            limit, code, on_success = self._limit, self._limit_code, self._limit_headers_on_success
        if limit is None or not (path == CONFIRM_PATH or is_resend(path)):
            return None, {}
        verdict: Verdict = limit.take()
        if verdict.allowed:
            return None, verdict.headers(refused=False) if on_success else {}
        with self._lock:
            self._rate_limited += 1
        return too_many(verdict, path, code), {}

    def _resend_arrived(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> Response:
        """A request to the resend action arrived (the caller authenticated): what it answers,
        the email sent (and recorded) when that is its 200, whether or not the answer gets
        back."""
        if method != "POST":
            return problem(405, "method_not_allowed", "Use POST.", path)
        domain_id = path.removeprefix(DOMAINS_PATH + "/").removesuffix(RESEND_SUFFIX)
        with self._lock:
            record = next((r for r in self._domains.values() if r.id == domain_id), None)
            if "/" in domain_id:
                record = None
            response = resend_answer(record, path, query, body, set(self.scopes))
            if response.status == 200 and record is not None and isinstance(response.body, dict):
                langs = query.get("lang")
                self._resent.append(
                    {
                        "domain": record.name,
                        "id": record.id,
                        "recipient": response.body["verification"]["recipient"],
                        "lang": langs[0] if langs else None,
                        "sent_at": response.body["sentAt"],
                    }
                )
                self._lock.notify_all()
        return response

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
            data = {"domains": domains, "loading": False, "lastChecked": now()}
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
        return {"success": True, "timestamp": now(), "requestId": new_request_id(), "data": data}
