"""The real bot as a separate process (`python -m bot`, as the Procfile runs it), for the
end-to-end tests that start it (tests/e2e/test_process.py, test_leases.py, test_replicas.py,
test_startup.py): an environment built from scratch, the stand-ins it is wired to, and a handle
on each process (its output goes to files, read while it runs and after it exits)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.standins.driver import Driver, HttpTransport
from bot.standins.provider import FakeProvider
from bot.standins.slack import FakeSlack
from bot.standins.world import (
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

ROOT = Path(__file__).resolve().parents[1]
PROCFILE = ROOT / "Procfile"
# Only what a process needs to run at all; never a proxy, never a developer's settings.
BASIC_ENV = ("PATH", "HOME", "SYSTEMROOT", "SystemRoot", "TMPDIR", "TEMP", "TMP", "LANG")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
REQUIRED = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "HOSTUP_API_KEY",
    "APPROVERS",
    "APPROVAL_CHANNEL",
)
EMAIL = "alice@example.com"


# --------------------------------------------------------------------------- the process


def procfile_command(process_type: str = "web") -> list[str]:
    """The command the Procfile gives for `process_type`, split as a shell would."""
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process_type:
            return shlex.split(command)
    raise AssertionError(f"Procfile has no {process_type}: line")


def bot_argv() -> list[str]:
    """The Procfile's web command, run with this interpreter (the venv's `python`)."""
    command = procfile_command()
    assert command[0] == "python", command
    return [sys.executable, *command[1:]]


def base_env() -> dict[str, str]:
    env = {name: os.environ[name] for name in BASIC_ENV if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    # The working tree's `bot`, as when the Procfile runs from the repository root (the cwd is
    # elsewhere here so that no developer .env is read).
    env["PYTHONPATH"] = str(ROOT)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BotProcess:
    """One `python -m bot` process; its output goes to files next to its cwd."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str, port: int) -> None:
        self.cwd = cwd
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = cwd.parent / f"{cwd.name}-{name}.stdout"
        self.stderr_path = cwd.parent / f"{cwd.name}-{name}.stderr"
        # The child gets its own copies of these descriptors; ours close at once.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed argv
                bot_argv(), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Poll GET /healthz until it answers 200; fail with the bot's stderr otherwise."""
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=0.5) as client:
            while True:
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"bot not healthy within {timeout} s; stderr:\n{self.stderr}")
                try:  # pause between attempts, noticing at once if the bot died
                    code = self.proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail(f"bot exited with {code} before serving; stderr:\n{self.stderr}")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind in the bot."""
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)


@dataclass
class Workspace:
    """The stand-ins, and a way to start bot processes wired to them."""

    slack: FakeSlack
    provider: FakeProvider
    tmp_path: Path
    start: Callable[..., BotProcess]

    def env(self, **overrides: str | None) -> dict[str, str]:
        """A complete HTTP-mode environment; a None override leaves that setting out."""
        values: dict[str, str | None] = {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "HOSTUP_API_KEY": self.provider.api_key,
            "HOSTUP_API_URL": self.provider.url,
            "HOSTUP_TIMEOUT": "5",
            "APPROVERS": APPROVER_GROUP,
            "REQUESTERS": REQUESTER_GROUP,
            "APPROVAL_CHANNEL": CHANNEL,
            "DATABASE_URL": f"sqlite:///{self.tmp_path / 'bot.db'}",
            "PORT": str(free_port()),
        }
        values.update(overrides)
        env = base_env()
        env.update({name: value for name, value in values.items() if value is not None})
        return env

    def driver(self, bot: BotProcess, signing_secret: str = SIGNING_SECRET) -> Driver:
        transport = HttpTransport(f"{bot.url}/slack/events", signing_secret)
        return Driver(self.slack, transport, CHANNEL)


@contextmanager
def make_workspace(
    tmp_path: Path, bot_token: str = BOT_TOKEN, provider_key: str = PROVIDER_KEY
) -> Iterator[Workspace]:
    """Start the stand-ins (set up as bot.standins.world sets them up) and clean up after."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    processes: list[BotProcess] = []

    def start(env: dict[str, str], *, port: int | None = None, healthy: bool = True) -> BotProcess:
        """Start a bot; `port` is where it listens, when PORT is not in `env` (e.g. in .env)."""
        port = port if port is not None else int(env.get("PORT", "0"))
        bot = BotProcess(env, cwd, f"bot{len(processes) + 1}", port)
        processes.append(bot)
        if healthy:
            bot.wait_healthy()
        return bot

    with (
        FakeSlack(bot_token=bot_token, app_token=APP_TOKEN) as slack,
        FakeProvider(provider_key) as provider,
    ):
        slack.add_channel(CHANNEL, name="email-approvals")
        slack.set_usergroup(APPROVER_GROUP, [APPROVER, "U0APPROVER2"])
        slack.set_usergroup(REQUESTER_GROUP, [REQUESTER])
        try:
            yield Workspace(slack, provider, tmp_path, start)
        finally:
            for bot in processes:
                bot.close()


def run_once(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the bot to completion (for start-up failures), with a bound on how long it may take."""
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed argv
        bot_argv(),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def state_of(message: dict[str, Any]) -> str:
    """The `state: …` the request message shows."""
    found = re.search(r"state: (\w+)", json.dumps(message.get("blocks", [])))
    assert found, message
    return found.group(1)
