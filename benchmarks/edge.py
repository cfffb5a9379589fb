#!/usr/bin/env python3
"""What one client on the internet can make the bot's HTTP port spend (issue 18, points 1-3).

Runs the bot as in production (``python -m bot serve``, a process of its own, HTTP mode) against
the local stand-ins, and plays the attacker from this process over raw sockets:

1. an unsigned 20 MiB POST to /slack/events, by Content-Length and chunked: the answer, how much
   of the body the client got to send, the bot's peak RSS growth (sampled from /proc every few
   ms), its CPU seconds, and what it wrote to its log (bytes, longest line);
2. 200 connections that send a request line and then nothing: how long GET /healthz takes, and
   how long a signed slash command takes to be acknowledged, while they are open.

    .venv/bin/python benchmarks/edge.py

Linux only (reads /proc through psutil). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import run as bench  # benchmarks/run.py: the bot's process, its environment, the stand-ins

from bot.slack import ids  # noqa: E402 - after run put the repository root on sys.path
from bot.standins import payloads  # noqa: E402
from bot.standins.provider import FakeProvider  # noqa: E402
from bot.standins.slack import FakeSlack  # noqa: E402
from bot.standins.world import (  # noqa: E402
    APP_TOKEN,
    APPROVER,
    APPROVER_GROUP,
    BOT_TOKEN,
    CHANNEL,
    PROVIDER_KEY,
    REQUESTER,
    REQUESTER_GROUP,
    SIGNING_SECRET,
)

MIB = 1024 * 1024


class Peak:
    """The bot process's highest RSS while active, sampled every 2 ms, and its CPU seconds."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.stop = threading.Event()

    def __enter__(self) -> Peak:
        self.base = self.peak = self.process.memory_info().rss
        cpu = self.process.cpu_times()
        self.cpu0 = cpu.user + cpu.system
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # the bot may still be working on what it read
        self.stop.set()
        self.thread.join()
        cpu = self.process.cpu_times()
        self.cpu = cpu.user + cpu.system - self.cpu0


def large_post(port: int, chunked: bool, size: int = 20 * MIB) -> tuple[str, int]:
    """An unsigned ``size``-byte form POST; (the status line, bytes of body sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    sock.sendall(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n" + framing + b"\r\n\r\n"
    )
    answer = bytearray()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                answer.extend(chunk)
        except OSError:
            pass

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
        pass
    reader.join(60)
    sock.close()
    return bytes(answer).split(b"\r\n", 1)[0].decode(errors="replace"), sent


def timed_healthz(port: int, timeout: float) -> str:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
    except OSError as exc:
        return f"no answer within {timeout:.0f} s ({type(exc).__name__})"
    finally:
        conn.close()
    return f"{status} in {(time.perf_counter() - started) * 1000:.0f} ms"


def timed_command(port: int, slack: FakeSlack, timeout: float) -> str:
    body = payloads.slash_command(
        "alice@example.com",
        user_id=REQUESTER,
        trigger_id=slack.new_trigger_id(),
        response_url=slack.new_response_url(),
        command=ids.COMMAND,
    )
    url = f"http://127.0.0.1:{port}/slack/events"
    started = time.perf_counter()
    try:
        reply = payloads.post_signed(url, body, SIGNING_SECRET, timeout=timeout)
    except (OSError, httpx.TransportError) as exc:
        return f"no answer within {timeout:.0f} s ({type(exc).__name__})"
    return f"{reply.status} in {(time.perf_counter() - started) * 1000:.0f} ms"


def main() -> int:
    slack = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    provider = FakeProvider(PROVIDER_KEY)
    with tempfile.TemporaryDirectory(prefix="edge-") as tmp, slack, provider:
        workdir = Path(tmp)
        slack.add_channel(CHANNEL, name="email-approvals")
        slack.set_usergroup(APPROVER_GROUP, [APPROVER])
        slack.set_usergroup(REQUESTER_GROUP, [REQUESTER])
        env = bench.base_env()
        env.update(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.api_url,
                "HOSTUP_API_KEY": PROVIDER_KEY,
                "HOSTUP_API_URL": provider.url,
                "APPROVERS": APPROVER_GROUP,
                "REQUESTERS": REQUESTER_GROUP,
                "APPROVAL_CHANNEL": CHANNEL,
                "DATABASE_URL": f"sqlite:///{workdir / 'bot.db'}",
                "PORT": str(bench.free_port()),
            }
        )
        app = bench.AppProcess(bench.BOT, env, workdir, "bot")
        try:
            app.wait_serving()
            for chunked in (False, True):
                log_before = app.stderr_path.stat().st_size
                with Peak(app.pid) as peak:
                    status, sent = large_post(app.port, chunked)
                text = app.stderr_path.read_bytes()[log_before:]
                longest = max((len(line) for line in text.splitlines()), default=0)
                print(
                    f"20 MiB unsigned POST, {'chunked' if chunked else 'Content-Length'}: "
                    f"{status!r}; client sent {sent / MIB:.1f} MiB; bot RSS "
                    f"+{(peak.peak - peak.base) / MIB:.1f} MiB at peak; bot CPU "
                    f"{peak.cpu:.2f} s; log +{len(text)} bytes, longest line {longest} bytes"
                )
            held = []
            for _ in range(200):
                sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
                sock.sendall(b"POST /slack/events HTTP/1.1\r\n")
                held.append(sock)
            healthz = timed_healthz(app.port, 5)
            ack = timed_command(app.port, slack, 5)
            print(f"200 silent connections open: GET /healthz {healthz}")
            print(f"200 silent connections open: slash command ack {ack}")
            for sock in held:
                sock.close()
        finally:
            app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
