"""The bot's HTTP port faces the internet: what one client can make it spend, and log.

End to end, over real HTTP against the real bot on loopback (the stand-ins behind it), with raw
sockets playing the attacker: bodies too large (by Content-Length and chunked), malformed bodies,
unsigned and forged requests carrying what people type, and clients that open connections and
then send nothing, or a byte at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlencode

import psutil
import pytest
from slack_bolt import BoltRequest

from bot.logs import CorrelationFilter, TextFormatter
from bot.slack import ids
from bot.slack.app import create_app
from bot.slack.server import HttpServer, WsgiApp
from bot.standins import payloads
from bot.standins.world import REQUESTER, SIGNING_SECRET, World

MIB = 1024 * 1024
EVENTS = "/slack/events"
FORM = payloads.FORM


@pytest.fixture
def world(tmp_path, caplog) -> Iterator[World]:
    """The real bot on loopback (SQLite: nothing here depends on the store), its log records
    captured at INFO with the correlation fields the bot's log handler would add."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(CorrelationFilter())
    with World(database_path=tmp_path / "bot.db") as w:
        yield w


def _port(world: World) -> int:
    return int(world.url.rsplit(":", 1)[1])


def _lines(caplog) -> list[str]:
    """Every captured record as the bot's text format renders it: message, traceback and the
    correlation fields bound when it was logged."""
    formatter = TextFormatter(CorrelationFilter())
    return [formatter.format(record) for record in caplog.records]


def _fields(caplog) -> list[dict[str, str]]:
    """The correlation fields each captured record carried."""
    names = ("request_id", "team", "user", "action", "provider_request_id")
    return [
        {name: value for name in names if (value := getattr(r, name, None)) is not None}
        for r in caplog.records
    ]


class RssPeak:
    """The highest resident size of this process (where the bot runs) while active, sampled
    every few milliseconds, above what it was when entered."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> RssPeak:
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.base


def _status(response: bytes) -> int:
    """The status code of a raw HTTP response (0 when there was none)."""
    line = response.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0


def _send_large(port: int, chunked: bool, size: int = 20 * MIB) -> tuple[int, int]:
    """POST ``size`` bytes of an unsigned form body to /slack/events, by Content-Length or
    chunked, reading the answer meanwhile; returns (status, bytes of body the client got to
    send before the server stopped taking them)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    sock.sendall(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: " + FORM.encode() + b"\r\n"
        b"X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=00\r\n" + framing + b"\r\n\r\n"
    )
    answer: list[bytes] = []

    def read() -> None:
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass  # reset once the server closed with our bytes unread: what came before counts
        answer.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    block = b"text=" + b"a" * (64 * 1024 - 5)
    sent = 0
    try:
        while sent < size:
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection: the point
    reader.join(30)
    sock.close()
    return _status(answer[0] if answer else b""), sent


# ---------------------------------------------------------------------------------- 1. bodies


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_20_mib_body_is_refused_with_413_without_being_read(world, caplog, chunked):
    """An unsigned 20 MiB POST, announced by Content-Length or chunked, gets 413 from the server
    before it is read: the client could not send most of it, the bot's process did not grow
    by more than a few MB, no thread parsed it and no log line carries it."""
    with RssPeak() as rss:
        status, sent = _send_large(_port(world), chunked)
    assert status == 413
    # The server stopped reading at 1 MiB; what else got out sits in the sockets' buffers.
    assert sent < 12 * MIB, sent
    assert rss.growth < 8 * MIB, f"RSS grew by {rss.growth / MIB:.1f} MiB"
    assert all(len(line) < 300 for line in _lines(caplog))
    assert "aaaaaaaa" not in caplog.text


def test_a_signed_body_just_under_the_limit_is_still_served(world):
    """The cap is well above what Slack sends: a signed slash command of almost 1 MiB (kept in
    a temp file by the server as it arrives) is verified, parsed and acknowledged."""
    trigger_id = world.slack.new_trigger_id()
    command = payloads.slash_command(
        "alice@example.com " + "x" * (MIB - 2048),
        user_id=REQUESTER,
        trigger_id=trigger_id,
        response_url=world.slack.new_response_url(),
        command=ids.COMMAND,
    )
    assert MIB - 2048 < len(command) < MIB
    assert payloads.post_signed(f"{world.url}{EVENTS}", command, SIGNING_SECRET).status == 200


def test_request_headers_beyond_32_kib_get_431(world):
    """A request line and headers over 32 KiB are refused (431), not buffered up to 256 KiB."""
    conn = http.client.HTTPConnection("127.0.0.1", _port(world), timeout=5)
    conn.request("GET", "/healthz", headers={"X-Padding": "p" * (40 * 1024)})
    assert conn.getresponse().status == 431
    conn.close()


def _sign(body: bytes) -> dict[str, str]:
    """Slack's v0 signature headers for any bytes (slack_sdk's signer wants UTF-8)."""
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


MARK = "Zq7-MARK"
MALFORMED = {
    # 200,000 nested arrays: json's parser recurses once a level.
    "nested-json": (b"[" * 200_000, "application/json"),
    "nested-payload": (b"payload=" + b"%5B" * 200_000, FORM),
    "invalid-utf8": (b"command=%2Fverify-email&text=" + MARK.encode() + b"\xff\xfe\x80", FORM),
    "payload-not-json": (f"payload=not-json-{MARK}".encode(), FORM),
    "payload-not-object": (f'payload=["{MARK}"]'.encode(), FORM),
    "json-not-json": (f'{{"type": "event_callback", "x": {MARK}'.encode(), "application/json"),
}


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_body_gets_a_4xx_and_one_short_warning(world, caplog, name, signed):
    """Each malformed body, signed (with the real secret) or not, gets 400 or 401, exactly one
    short WARNING line, no traceback and nothing of the body in the logs."""
    body, content_type = MALFORMED[name]
    headers = {"Content-Type": content_type}
    if signed:
        headers.update(_sign(body))
    caplog.clear()
    conn = http.client.HTTPConnection("127.0.0.1", _port(world), timeout=10)
    conn.request("POST", EVENTS, body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    assert status == (400 if signed else 401)
    # (waitress.queue's "Task queue depth is 1" says its threads were all busy a moment: about
    # the machine's load, here the rest of the suite, not about this request.)
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "waitress.queue"
    ]
    assert len(warnings) == 1, [r.getMessage()[:200] for r in warnings]
    assert len(_lines(caplog)[-1]) < 200
    assert not any(r.exc_info or r.exc_text for r in caplog.records)
    assert MARK not in caplog.text and "[[[[" not in caplog.text and "%5B%5B" not in caplog.text


# ------------------------------------------------------------ 2. nothing of an unverified request


def test_an_unverified_request_leaves_nothing_of_itself_in_the_logs(world, caplog):
    """Slash commands and clicks that are unsigned, signed with another secret, or signed five
    minutes too late are refused with 401; no log line carries their reason, trigger_id,
    response_url or legacy token, nor a correlation field taken from them. A genuine command
    afterwards does get its fields: they are bound once the signature checks out."""
    secret_bits = {
        "reason": "REASON-people-typed-4d2",
        "trigger_id": "TRIGGER-9f1",
        "response_url": "https://hooks.slack.test/RESPONSE-URL-77",
        "token": "LEGACY-TOKEN-a5e",
    }
    command = payloads.slash_command(
        f"alice@example.com {secret_bits['reason']}",
        user_id="U0FORGEDUSER",
        team_id="T0FORGEDTEAM",
        trigger_id=secret_bits["trigger_id"],
        response_url=secret_bits["response_url"],
        command=ids.COMMAND,
        token=secret_bits["token"],
    )
    click = urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "token": secret_bits["token"],
                    "user": {"id": "U0FORGEDUSER", "team_id": "T0FORGEDTEAM"},
                    "team": {"id": "T0FORGEDTEAM"},
                    "trigger_id": secret_bits["trigger_id"],
                    "response_url": secret_bits["response_url"],
                    "actions": [{"action_id": ids.APPROVE_ACTION, "value": "x"}],
                    "state": {"values": {"r": {"r": {"value": secret_bits["reason"]}}}},
                }
            )
        }
    ).encode()
    url = f"{world.url}{EVENTS}"
    stale = int(time.time()) - 600
    for body in (command, click):
        for secret, timestamp in (("not-the-secret", None), (SIGNING_SECRET, stale)):
            reply = payloads.post_signed(url, body, secret, timestamp=timestamp)
            assert reply.status == 401
        conn = http.client.HTTPConnection("127.0.0.1", _port(world), timeout=10)
        conn.request("POST", EVENTS, body=body, headers={"Content-Type": FORM})
        assert conn.getresponse().status == 401
        conn.close()
    text = "\n".join(_lines(caplog))
    for name, value in secret_bits.items():
        assert value not in text, name
    for fields in _fields(caplog):
        assert "U0FORGEDUSER" not in fields.values() and "T0FORGEDTEAM" not in fields.values()
    refusals = [r for r in caplog.records if "Refused" in r.getMessage()]
    assert len(refusals) == 6 and all(not _fields_of(r) for r in refusals)

    # The control: a genuine request is logged about with its own fields.
    caplog.clear()
    world.driver.ask(REQUESTER, "bob@example.com")
    assert any(f.get("user") == REQUESTER for f in _fields(caplog)), _fields(caplog)


def _fields_of(record: logging.LogRecord) -> dict[str, str]:
    names = ("request_id", "team", "user", "action", "provider_request_id")
    return {n: v for n in names if (v := getattr(record, n, None)) is not None}


def test_the_app_refuses_an_http_request_that_was_not_verified(world, caplog):
    """Bolt's own signature check is off (it logged bodies): the app itself refuses any HTTP
    request that did not come through the verifying server, with a constant WARNING line."""
    app = create_app(world.settings, world.services.slack_deps())
    body = payloads.slash_command(
        "alice@example.com",
        user_id=REQUESTER,
        trigger_id="T-1",
        response_url="https://hooks.slack.test/x",
        command=ids.COMMAND,
    ).decode()
    headers: dict[str, str | Sequence[str]] = {**payloads.sign(body.encode(), "x")}
    response = app.dispatch(BoltRequest(body=body, headers=headers))
    assert response.status == 401
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "Refused an HTTP request whose signature was not verified"
    ]


# ------------------------------------------------------------------------------ 3. slow clients


def _silent(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send a request line and then nothing."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /slack/events HTTP/1.1\r\n")
        held.append(sock)
    return held


class Trickle:
    """Connections that send a request's headers one byte every 50 ms, never finishing."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = [
            socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)
        ]
        self.stop = threading.Event()
        self.closed_after: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        header = b"POST /slack/events HTTP/1.1\r\nX-Slow: " + b"s" * 100_000
        live = list(self.socks)
        for i in range(len(header)):
            for sock in list(live):
                try:
                    sock.send(header[i : i + 1])
                except OSError:
                    live.remove(sock)
                    self.closed_after.append(time.monotonic() - started)
            if not live or self.stop.wait(0.05):
                return

    def __enter__(self) -> Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def test_200_silent_connections_stop_neither_healthz_nor_an_ack(world):
    """With 200 connections that sent a request line and then nothing, and 20 that trickle
    their headers, GET /healthz answers within 1 s and a signed slash command is acknowledged
    within Slack's 3 s."""
    port = _port(world)
    held = _silent(port, 200)
    try:
        with Trickle(port, 20):
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200
            conn.close()
            assert time.monotonic() - started < 1.0

            trigger_id = world.slack.new_trigger_id()
            command = payloads.slash_command(
                "alice@example.com",
                user_id=REQUESTER,
                trigger_id=trigger_id,
                response_url=world.slack.new_response_url(),
                command=ids.COMMAND,
            )
            started = time.monotonic()
            reply = payloads.post_signed(f"{world.url}{EVENTS}", command, SIGNING_SECRET, timeout=3)
            assert reply.status == 200
            assert time.monotonic() - started < 3.0
            world.slack.wait_for_call("views.open", where=lambda p: p["trigger_id"] == trigger_id)
    finally:
        for sock in held:
            sock.close()


def test_a_request_that_trickles_is_cut_off_at_its_deadline():
    """waitress's channel_timeout counts only silence; a request that keeps sending a byte every
    50 ms, or a connection that sends nothing, is closed once it has taken longer than the
    request deadline (1 s here), while a keep-alive connection idle between two requests is
    not."""
    server = HttpServer(WsgiApp(None), "127.0.0.1", 0, request_deadline=1.0).start()
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        keep_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        keep_alive.request("GET", "/healthz")
        assert keep_alive.getresponse().read() == b'{"ok": true}'
        with Trickle(server.port, 3) as trickle:
            trickle.thread.join(timeout=10)
            assert len(trickle.closed_after) == 3
            assert all(0.9 <= after < 6.0 for after in trickle.closed_after), trickle.closed_after
        assert silent.recv(1) == b""  # closed by the server, long before the 5 s timeout
        keep_alive.request("GET", "/healthz")  # idle for longer than the deadline: still open
        assert keep_alive.getresponse().status == 200
        keep_alive.close()
        silent.close()
    finally:
        server.stop()
