"""The stand-in provider's HTTP server: a threaded server on loopback, and the handler that
records each request in its :class:`~bot.standins.provider.FakeProvider`, then answers it as
scripted or as the real endpoint would (through the provider's own methods)."""

from __future__ import annotations

import dataclasses
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from bot.standins.provider_answers import (
    CONFIRM_PATH,
    MAX_REQUEST_BYTES,
    Response,
    body_bytes,
    is_resend,
    is_v2,
    phrase,
    problem,
)

if TYPE_CHECKING:
    from bot.standins.provider import FakeProvider

log = logging.getLogger(__name__)


class Server(ThreadingHTTPServer):
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


class Handler(BaseHTTPRequestHandler):
    server: Server
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
            self._answer(provider, call, method, path, query, parsed, raw)
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
        raw: bytes,
    ) -> None:
        v2 = is_v2(path)
        acted: Response | None = None  # a resend's answer, decided (and acted on) on arrival
        paced: dict[str, str] = {}  # the rate limit's headers on an accepted call's answer
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
            # Beyond the rate limit (when one is set) the 429 comes first: nothing is done.
            limited, paced = provider._limited(path)
            response = limited or provider._next_scripted(path) or Response(action="normal")
            if path == CONFIRM_PATH and method == "POST" and response.action != "answer":
                # It acts, whether or not its answer gets back (a hang, a closed connection).
                provider._confirm_arrived(parsed)
            elif is_resend(path) and response.action != "answer":
                # It sends the email, whether or not its answer gets back.
                acted = provider._resend_arrived(method, path, query, raw)
        delay = provider._delay_for(path)
        if provider._wait(delay + response.delay) or not provider._opened(response.gate):
            self.close_connection = True
            return
        if response.action == "close":
            self.close_connection = True
            return
        if response.action == "normal":
            trickle = response.trickle
            if acted is not None:
                response = acted
            elif v2:
                response = provider._view_answer(method, path, query)
            else:
                response = provider._normal(method, path, parsed)
            if trickle > 0:
                self._trickle(provider, call, response, trickle)
                return
        with provider._lock:
            call["status"] = response.status
        if paced:
            response = dataclasses.replace(response, headers={**response.headers, **paced})
        self._send(response)

    def _trickle(
        self, provider: FakeProvider, call: dict[str, Any], response: Response, every: float
    ) -> None:
        """Send the status line and headers a byte at a time, then the body; stop when the
        client hangs up (``call["abandoned"]``) or the stand-in stops."""
        payload = body_bytes(response)
        head = (
            f"HTTP/1.0 {response.status} {phrase(response.status)}\r\n"
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
        payload = body_bytes(response)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
