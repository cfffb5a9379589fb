"""HTTP serving (waitress, a production WSGI server) and Socket Mode."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
HTTP_THREADS = 16  # waitress threads; each only waits for a listener's ack, never the provider

StartResponse = Callable[..., Any]


class WsgiApp:
    """Routes ``POST /slack/events`` to Bolt and answers ``GET /healthz``."""

    def __init__(self, bolt_app: App, health: Callable[[], bool] | None = None) -> None:
        self.slack = SlackRequestHandler(bolt_app, path=EVENTS_PATH)
        self.health = health

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH and method in {"GET", "HEAD"}:
            healthy = self.health() if self.health else True
            body = json.dumps({"ok": healthy}).encode()
            status = "200 OK" if healthy else "503 Service Unavailable"
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path == EVENTS_PATH and method != "POST":
            body = b"Slack sends POST requests here.\n"
            start_response(
                "405 Method Not Allowed",
                [
                    ("Allow", "POST"),
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        return self.slack(environ, start_response)


class HttpServer:
    """A waitress server on host:port (port 0 picks a free one), run here or in a thread."""

    def __init__(self, wsgi_app: WsgiApp, host: str, port: int) -> None:
        from waitress.server import create_server

        self._server = create_server(
            wsgi_app,
            host=host,
            port=port,
            threads=HTTP_THREADS,
            ident="verify-email-bot",
            clear_untrusted_proxy_headers=True,
            channel_timeout=60,
        )
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
        self._server.trigger.pull_trigger(self._server.close)
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
        self._handler.connect()
        return self

    def stop(self) -> None:
        self._handler.close()


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
