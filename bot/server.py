"""HTTP serving (waitress, a production WSGI server) and Socket Mode."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FrameType
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl

from slack_bolt import App, BoltContext
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context
from slack_bolt.response import BoltResponse

from bot.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
METRICS_CONTENT_TYPE = CONTENT_TYPE  # Prometheus's text exposition format
HTTP_THREADS = 16  # waitress threads; each only waits for a listener's ack, never the provider

StartResponse = Callable[..., Any]
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_MEDIA_TYPE = "application/json"


# ---------------------------------------------------------------------------------------------
# Where the HTTP body becomes a BoltRequest
#
# Bolt's own parser (slack_bolt.request.internals.parse_body) decides that a form body is an
# interactivity payload when the *substring* "payload" appears anywhere in it, then looks for a
# `payload` field and, when there is none, returns an empty body. A slash command whose text
# (or the email in it: payload@example.com) contains that word therefore reaches no listener,
# and Slack shows the person an error; a payload that is not JSON raises instead. Slack's real
# bodies are simpler than that guess: slash commands and interactions are form-encoded (an
# interaction is the single field `payload=<JSON>`), Events API requests are JSON. So the bot
# parses the form properly, by field and not by substring, and hands Bolt the result.
# Signature verification is untouched: Bolt checks the signature on `raw_body`, the bytes as
# they came, which this keeps.


def parse_slack_body(raw_body: str, content_type: str | None) -> dict[str, Any]:
    """The body Slack POSTed, as a dict: form fields, an interaction's payload, or JSON.

    Decided by the Content-Type Slack sends and the form's fields, never by what the text
    contains. Anything that is not a JSON object where one is expected gives ``{}``: Bolt then
    still verifies the signature and answers as for any request no listener handles.
    """
    if not raw_body:
        return {}
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSON_MEDIA_TYPE or (
        media_type != FORM_MEDIA_TYPE and raw_body.lstrip().startswith("{")
    ):
        return _json_object(raw_body)
    fields = dict(parse_qsl(raw_body, keep_blank_values=True))
    # An interaction carries its JSON in `payload`; a slash command always has `command`, and
    # anything a person typed is inside `text`, percent-encoded, never a field of its own.
    if "payload" in fields and "command" not in fields:
        return _json_object(fields["payload"])
    return fields


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class SlackHttpRequest(BoltRequest):
    """A BoltRequest from an HTTP body, parsed by :func:`parse_slack_body` instead of Bolt's."""

    def __init__(
        self,
        *,
        body: str,
        query: str | Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        # Bolt's parser never sees the body: it could drop it, or raise on one that is not JSON.
        super().__init__(
            body="",
            query=query if isinstance(query, str) or query is None else dict(query),
            headers=dict(headers) if headers is not None else None,
            mode="http",
        )
        self.raw_body = body
        self.body = parse_slack_body(body, self.content_type)
        self.context = build_context(BoltContext(dict(context or {})), self.body)

    def to_copyable(self) -> SlackHttpRequest:
        return SlackHttpRequest(
            body=self.raw_body,
            query=self.query,
            headers=self.headers,
            context=self.context.to_copyable(),
        )


class SlackEventsHandler(SlackRequestHandler):
    """Bolt's WSGI adapter, building each request with :class:`SlackHttpRequest`."""

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        return self.app.dispatch(
            SlackHttpRequest(
                body=request.get_body(),
                query=request.query_string,
                headers=request.get_headers(),
            )
        )


class WsgiApp:
    """Routes ``POST /slack/events`` to Bolt (when there is one: in Socket Mode Slack's requests
    come over the websocket) and answers ``GET /healthz`` (cheap: 200 while the process serves,
    nothing else asked), ``GET /readyz`` (each readiness check, 503 unless all pass) and
    ``GET /metrics`` (Prometheus's text format)."""

    def __init__(
        self,
        bolt_app: App | None,
        health: Callable[[], bool] | None = None,
        ready: Callable[[], dict[str, bool]] | None = None,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.slack = SlackEventsHandler(bolt_app, path=EVENTS_PATH) if bolt_app else None
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


class HttpServer:
    """A waitress server on host:port (port 0 picks a free one), run here or in a thread."""

    def __init__(self, wsgi_app: WsgiApp, host: str, port: int) -> None:
        from waitress.server import create_server

        server = create_server(
            wsgi_app,
            host=host,
            port=port,
            threads=HTTP_THREADS,
            ident="verify-email-bot",
            clear_untrusted_proxy_headers=True,
            channel_timeout=60,
        )
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
