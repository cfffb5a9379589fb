"""A local stand-in for Slack's Socket Mode endpoint (a WebSocket server on 127.0.0.1).

`FakeSocketMode` plays Slack's side of a Socket Mode connection: attached to a `FakeSlack`,
`apps.connections.open` answers a `ws://127.0.0.1:PORT/link/?ticket=…&app_id=…` URL (each
ticket is good for one connection, as Slack's are); on connect it sends Slack's `hello`; then
the test or the sandbox pushes envelopes (`send_envelope`) and waits for the app's acks
(`wait_for_ack`). slack_sdk's built-in client (the one Bolt's `SocketModeHandler` uses)
connects to it over plain ws://; the server answers its pings.

The `websockets` package is a dev dependency only: it is imported when a server starts, so
importing this module (or `bot.standins`) does not need it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

from bot.standins.slack import FakeSlack

if TYPE_CHECKING:
    from websockets.http11 import Request, Response
    from websockets.sync.server import Server, ServerConnection

log = logging.getLogger(__name__)

# Interactions whose ack may carry a response payload (e.g. view_submission's response_action).
_ACCEPTS_RESPONSE = {"view_submission", "block_suggestion"}


class FakeSocketMode:
    """Slack's Socket Mode WebSocket endpoint on 127.0.0.1; thread-safe."""

    def __init__(
        self, slack: FakeSlack | None = None, *, app_id: str = "A1", ping_interval: float = 0.5
    ) -> None:
        """`slack`: the FakeSlack whose `apps.connections.open` should hand out this server.

        `ping_interval`: seconds between the server's pings. Short on purpose: slack_sdk's
        built-in client holds a lock in a blocking recv (3 s timeout on plain sockets) that its
        `close()` waits for, and any frame from the server ends that wait.
        """
        self.slack = slack
        self.app_id = app_id
        self.ping_interval = ping_interval
        self._cond = threading.Condition()  # guards the state below
        self._tickets: set[str] = set()
        self._connections: list[ServerConnection] = []
        self._acks: dict[str, dict[str, Any]] = {}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Listen on a free port in a daemon thread and attach to the FakeSlack, if any."""
        if self._server is not None:
            return self
        from websockets.sync.server import serve  # dev dependency: imported only when used

        self._server = serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._check_ticket,
            compression=None,  # slack_sdk's built-in client does not negotiate extensions
            ping_interval=self.ping_interval,
            close_timeout=1,
            logger=log,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-socket-mode", daemon=True
        )
        self._thread.start()
        if self.slack is not None:
            self.slack.attach_socket_mode(self.new_url)
        return self

    def stop(self) -> None:
        """Close every connection (code 1001, as a server restart) and stop; idempotent.

        Close the app's Socket Mode client first, or it will try to reconnect.
        """
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if self.slack is not None:
            self.slack.attach_socket_mode(None)
        if server is not None:
            server.shutdown()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def new_url(self) -> str:
        """A connection URL with a fresh one-time ticket, as apps.connections.open answers."""
        if self._server is None:
            raise RuntimeError("FakeSocketMode is not started")
        port = self._server.socket.getsockname()[1]
        ticket = str(uuid.uuid4())
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------------- talking

    @property
    def connection_count(self) -> int:
        """How many clients are connected now."""
        with self._cond:
            return len(self._connections)

    def wait_connected(self, timeout: float = 5.0, count: int = 1) -> None:
        """Block until at least `count` clients are connected and greeted with `hello`."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._connections) >= count, timeout):
                raise TimeoutError(f"FakeSocketMode: no connected client within {timeout} s")

    def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
    ) -> str:
        """Send `payload` in an envelope to the newest connection; returns the envelope_id.

        `type` is "slash_commands" (payload: the command's fields, see
        payloads.slash_command_payload), "interactive" (block_actions, view_submission...) or
        "events_api". `accepts_response_payload` defaults as Slack sets it: true for slash
        commands and for view_submission / block_suggestion, false otherwise.
        """
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in _ACCEPTS_RESPONSE
            )
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
            "payload": payload,
        }
        self._newest_connection().send(json.dumps(envelope))
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The app's ack of an envelope (`{"envelope_id": …, "payload"?: …}`), waiting for it."""
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self._acks, timeout):
                raise TimeoutError(f"FakeSocketMode: no ack of {envelope_id} within {timeout} s")
            return self._acks[envelope_id]

    def acks(self) -> dict[str, dict[str, Any]]:
        """Every ack received so far, by envelope_id."""
        with self._cond:
            return dict(self._acks)

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every client to reconnect, as Slack does before recycling a connection."""
        message = json.dumps(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        )
        with self._cond:
            connections = list(self._connections)
        for connection in connections:
            connection.send(message)

    # ------------------------------------------------------------------ serving

    def _newest_connection(self) -> ServerConnection:
        with self._cond:
            if not self._connections:
                raise RuntimeError("FakeSocketMode: no Socket Mode client is connected")
            return self._connections[-1]

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the WebSocket handshake unless it presents a ticket this server issued."""
        query = parse_qs(urlsplit(request.path).query)
        ticket = query.get("ticket", [""])[0]
        with self._cond:
            if ticket in self._tickets:
                self._tickets.discard(ticket)
                return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or used ticket\n")

    def _handle(self, connection: ServerConnection) -> None:
        """One client: greet it, then record what it sends until it goes away."""
        from websockets.exceptions import ConnectionClosed

        with self._cond:
            count = len(self._connections) + 1
        hello = {
            "type": "hello",
            "num_connections": count,
            "debug_info": {
                "host": "applink-fake",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        try:
            connection.send(json.dumps(hello))
            with self._cond:
                self._connections.append(connection)
                self._cond.notify_all()
            for message in connection:
                self._record(message if isinstance(message, str) else message.decode())
        except ConnectionClosed:
            log.debug("fake socket mode: client went away")  # the built-in client just drops
        finally:
            with self._cond:
                if connection in self._connections:
                    self._connections.remove(connection)
                self._cond.notify_all()

    def _record(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        with self._cond:
            if isinstance(message, dict) and "envelope_id" in message:
                self._acks[str(message["envelope_id"])] = message
            self._cond.notify_all()
