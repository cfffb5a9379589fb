"""HTTP serving (waitress, a production WSGI server) and Socket Mode.

What one client may cost is bounded here, before anything parses a request: bytes, headers,
connections, the time a request may take to arrive; bot/slack/http_request.py then checks the
signature and parses the body of a POST to /slack/events."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, Protocol, cast

from slack_bolt import App
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from waitress.channel import HTTPChannel

from bot.metrics import CONTENT_TYPE
from bot.slack.app import SIGNATURE_VERIFIED
from bot.slack.http_request import (
    MalformedBody,
    SlackHttpRequest,
    signature_problem,
)

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
METRICS_CONTENT_TYPE = CONTENT_TYPE  # Prometheus's text exposition format
HTTP_THREADS = 16  # waitress threads; each only waits for a listener's ack, never the provider

# What one client may cost the HTTP server (see HttpServer). Slack's bodies are a few KB (a
# view submission, the largest, stays well under 100 KB) and its headers under 2 KB.
MAX_BODY_BYTES = 1024 * 1024  # larger bodies get 413 before they are read, chunked ones too
MAX_HEADER_BYTES = 32 * 1024  # larger request lines and headers get 431
BODY_IN_MEMORY_BYTES = 64 * 1024  # an arriving body beyond this waits in a temp file, not memory
CONNECTION_LIMIT = 500  # open connections; a waiting one holds a socket and buffers, no thread
REQUEST_DEADLINE = 10.0  # seconds a request may take to arrive, from its first byte (or connect)
StartResponse = Callable[..., Any]


class SlackEventsHandler:
    """``POST /slack/events``: the body read within MAX_BODY_BYTES, its signature verified,
    then parsed (:class:`SlackHttpRequest`) and dispatched to Bolt marked as verified."""

    def __init__(
        self, app: App, signing_secret: str, clock: Callable[[], float] = time.time
    ) -> None:
        if not signing_secret:
            raise ValueError("a signing secret is needed to verify Slack's requests")
        self.app = app
        self.signing_secret = signing_secret
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return self._refuse(start_response, "400 Bad Request", "no valid Content-Length")
        if length > MAX_BODY_BYTES:
            # waitress answers this itself before reading; this is for any other server.
            return self._refuse(start_response, "413 Request Entity Too Large", "body too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        problem = signature_problem(
            self.signing_secret,
            raw,
            environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
            environ.get("HTTP_X_SLACK_SIGNATURE"),
            self.clock(),
        )
        if problem is not None:
            return self._refuse(start_response, "401 Unauthorized", problem)
        request = WsgiHttpRequest(environ)
        try:
            bolt_request = SlackHttpRequest(
                body=raw.decode("utf-8"),
                query=request.query_string,
                headers=request.get_headers(),
                context={SIGNATURE_VERIFIED: True},
            )
        except UnicodeDecodeError:
            return self._refuse(start_response, "400 Bad Request", "signed body is not UTF-8")
        except MalformedBody as exc:
            return self._refuse(start_response, "400 Bad Request", f"signed body is {exc}")
        response = self.app.dispatch(bolt_request)
        wsgi = WsgiHttpResponse(response.status, response.headers, response.body)
        start_response(wsgi.status, wsgi.get_headers())
        return wsgi.get_body()

    @staticmethod
    def _refuse(start_response: StartResponse, status: str, reason: str) -> list[bytes]:
        log.warning("Refused a POST to %s (%s): %s", EVENTS_PATH, status, reason)
        return _text(start_response, status, f"{status.split(' ', 1)[1]}.")


class WsgiApp:
    """Routes ``POST /slack/events`` to Bolt (when there is one: in Socket Mode Slack's requests
    come over the websocket) and answers ``GET /healthz`` (cheap: 200 while the process serves,
    nothing else asked), ``GET /readyz`` (each readiness check, 503 unless all pass) and
    ``GET /metrics`` (Prometheus's text format). Slack's requests are verified before they
    are parsed (:class:`SlackEventsHandler`)."""

    def __init__(
        self,
        bolt_app: App | None,
        health: Callable[[], bool] | None = None,
        ready: Callable[[], dict[str, bool]] | None = None,
        metrics: Callable[[], bytes] | None = None,
        *,
        signing_secret: str | None = None,
    ) -> None:
        # The signing secret is required with a Bolt app: the requests are verified here.
        self.slack = SlackEventsHandler(bolt_app, signing_secret or "") if bolt_app else None
        self.health = health
        self.ready = ready
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        reading = method in {"GET", "HEAD"}
        if path == HEALTH_PATH and reading:
            healthy = self.health() if self.health else True
            return _json(start_response, {"ok": healthy}, healthy)
        if path == READY_PATH and reading:
            checks = self.ready() if self.ready else {}
            ok = all(checks.values())
            return _json(start_response, {"ok": ok, **checks}, ok)
        if path == METRICS_PATH and reading and self.metrics is not None:
            body = self.metrics()
            start_response(
                "200 OK",
                [("Content-Type", METRICS_CONTENT_TYPE), ("Content-Length", str(len(body)))],
            )
            return [body]
        if path == EVENTS_PATH and self.slack is not None:
            if method != "POST":
                return _text(
                    start_response,
                    "405 Method Not Allowed",
                    "Slack sends POST requests here.",
                    [("Allow", "POST")],
                )
            return self.slack(environ, start_response)
        return _text(start_response, "404 Not Found", "Not found.")


def _json(start_response: StartResponse, value: dict[str, Any], ok: bool) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(
        "200 OK" if ok else "503 Service Unavailable",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _text(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = f"{text}\n".encode()
    start_response(
        status,
        [*(headers or []), ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


class _Trigger(Protocol):
    def pull_trigger(self, thunk: Callable[[], None] | None = None) -> None: ...


class _WaitressServer(Protocol):
    """What the bot uses of the server waitress builds for one host and port.

    (types-waitress types create_server's result as a union of server classes that lacks
    effective_port, and types their trigger as an int; this is what waitress really has.)
    """

    effective_port: int
    trigger: _Trigger

    def run(self) -> None: ...

    def close(self) -> None: ...


class DeadlineChannel(HTTPChannel):
    """waitress's connection, closed when a request takes longer than ``deadline`` seconds to
    arrive whole, counted from its first byte (a new connection's first request: from the
    connection's opening).

    waitress's own ``channel_timeout`` counts only silence, so a client sending a byte every few
    seconds holds its connection as long as it likes. waitress reads a request in its loop and
    hands it to a thread only once it is whole, so a slow client holds no thread, only this
    connection; the loop asks every connection whether it is readable at least once a second
    (``asyncore_loop_timeout``), which is where the deadline is checked.
    """

    deadline: float = REQUEST_DEADLINE

    def __init__(
        self,
        server: Any,
        sock: Any,
        addr: Any,
        adj: Any,
        map: Any = None,  # noqa: A002 - waitress's name
    ) -> None:
        # When the request now arriving started to; None between requests (keep-alive, where
        # waitress's channel_timeout applies).
        self.request_started: float | None = time.monotonic()
        super().__init__(server, sock, addr, adj, map)

    def received(self, data: bytes) -> bool:
        if data and self.request is None and self.request_started is None:
            self.request_started = time.monotonic()
        result = super().received(data)
        if self.request is None:  # the request arrived whole (or was refused): none pending
            self.request_started = None
        return result

    def readable(self) -> bool:
        started = self.request_started
        if started is not None and not self.requests and time.monotonic() - started > self.deadline:
            self.will_close = True  # the loop closes it on its next turn (writable() says so)
        return super().readable()


def connection_limit() -> int:
    """CONNECTION_LIMIT, or half the process's file descriptors when that is fewer: the rest
    stay for the store, the clients to Slack and the provider, and the logs."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(1, min(CONNECTION_LIMIT, soft // 2))


class HttpServer:
    """A waitress server on host:port (port 0 picks a free one), run here or in a thread.

    Bounded against clients on the open internet: a body of MAX_BODY_BYTES or more gets 413
    (by Content-Length before it is read, or once a chunked one reaches it), headers over
    MAX_HEADER_BYTES 431; at most :func:`connection_limit` connections (polled, so beyond
    select()'s 1024 descriptors), each closed when a request takes more than
    ``request_deadline`` seconds to arrive (:class:`DeadlineChannel`) or after 60 s of silence
    between requests.
    """

    def __init__(
        self,
        wsgi_app: WsgiApp,
        host: str,
        port: int,
        *,
        request_deadline: float = REQUEST_DEADLINE,
    ) -> None:
        from waitress.server import BaseWSGIServer, create_server

        class Channel(DeadlineChannel):
            deadline = request_deadline

        sockets: dict[int, Any] = {}
        server = create_server(
            wsgi_app,
            map=sockets,
            host=host,
            port=port,
            threads=HTTP_THREADS,
            ident="verify-email-bot",
            clear_untrusted_proxy_headers=True,
            channel_timeout=60,
            cleanup_interval=5,  # how often channel_timeout is checked
            # waitress refuses a body whose length is max_request_body_size or more.
            max_request_body_size=MAX_BODY_BYTES + 1,
            max_request_header_size=MAX_HEADER_BYTES,
            inbuf_overflow=BODY_IN_MEMORY_BYTES,
            connection_limit=connection_limit(),
            asyncore_use_poll=True,
        )
        for dispatcher in list(sockets.values()):
            if isinstance(dispatcher, BaseWSGIServer):
                dispatcher.channel_class = Channel
        self._server = cast(_WaitressServer, server)
        self.host = host
        self.port: int = self._server.effective_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        """Serve until ``stop()`` (or SIGTERM/SIGINT when run in the main thread)."""
        self._server.run()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self.run, name="http-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close; safe from any thread, or from a signal handler."""
        # Closing from inside the server's own loop (via its trigger) avoids racing its select.
        try:
            self._server.trigger.pull_trigger(self._server.close)
        except OSError as exc:
            # The trigger's pipe is gone, so the loop is no longer selecting on it: close here.
            log.warning("HTTP server's wake-up pipe is closed (%s); closing directly", exc)
            self._server.close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def serve_http(server: HttpServer) -> None:
    """Serve in the main thread until SIGTERM or SIGINT; in-flight listeners finish first."""

    def shut_down(signum: int, frame: FrameType | None) -> None:
        log.info("Signal %s received, shutting down", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    server.run()


class SocketModeServer:
    """Bolt's Socket Mode handler, sized like the HTTP server, with start/stop."""

    def __init__(self, bolt_app: App, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        # Each incoming message holds one of these threads until its listener acks.
        self._handler = SocketModeHandler(bolt_app, app_token, concurrency=HTTP_THREADS)

    def start(self) -> SocketModeServer:
        self._handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        return self

    def stop(self) -> None:
        self._handler.close()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated

    def connected(self) -> bool:
        """Whether the websocket to Slack is up now (what /readyz reports)."""
        return bool(self._handler.client.is_connected())


def serve_socket_mode(server: SocketModeServer) -> None:
    """Stay connected until SIGTERM or SIGINT."""
    stop = threading.Event()

    def shut_down(signum: int, frame: FrameType | None) -> None:
        log.info("Signal %s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    server.start()
    try:
        stop.wait()
    finally:
        server.stop()
