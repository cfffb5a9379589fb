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
            start_response(status, [("Content-Type", "application/json"),
                                     ("Content-Length", str(len(body)))])
            return [body]
        if path == EVENTS_PATH and method != "POST":
            body = b"Slack sends POST requests here.\n"
            start_response("405 Method Not Allowed", [("Allow", "POST"),
                                                      ("Content-Type", "text/plain"),
                                                      ("Content-Length", str(len(body)))])
            return [body]
        return self.slack(environ, start_response)


def make_http_server(wsgi_app: WsgiApp, host: str, port: int) -> Any:
    """A waitress server bound to host:port (port 0 picks a free one: see ``.effective_port``)."""
    from waitress.server import create_server

    return create_server(
        wsgi_app,
        host=host,
        port=port,
        threads=HTTP_THREADS,
        ident="verify-email-bot",
        clear_untrusted_proxy_headers=True,
        channel_timeout=60,
    )


def serve_http(wsgi_app: WsgiApp, host: str, port: int,
               on_ready: Callable[[Any], None] | None = None) -> None:
    server = make_http_server(wsgi_app, host, port)
    stop = threading.Event()

    def shut_down(signum: int, frame: FrameType | None) -> None:
        log.info("Signal %s received, shutting down", signal.Signals(signum).name)
        stop.set()
        server.close()

    signal.signal(signal.SIGTERM, shut_down)
    if on_ready:
        on_ready(server)
    try:
        server.run()
    except KeyboardInterrupt:
        log.info("Interrupted, shutting down")
    except OSError:
        if not stop.is_set():  # closing the server during asyncore's select raises EBADF
            raise


def serve_socket_mode(bolt_app: App, app_token: str) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(bolt_app, app_token)
    stop = threading.Event()

    def shut_down(signum: int, frame: FrameType | None) -> None:
        log.info("Signal %s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    handler.connect()
    try:
        stop.wait()
    finally:
        handler.close()
