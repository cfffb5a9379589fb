"""The real bot as a separate process (`python -m bot`, as the Procfile runs it), end to end.

Each test starts the bot with an environment built from scratch, in a temporary directory (so no
developer `.env` is read), against FakeSlack and FakeProvider running in this process on
127.0.0.1, and drives it as Slack would: signed HTTP requests, or Socket Mode envelopes.
The bot's stdout and stderr go to files, so they can be read while it runs and after it exits.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import (
    EMAIL,
    REQUIRED,
    ROOT,
    START_TIMEOUT,
    Workspace,
    base_env,
    bot_argv,
    make_workspace,
    procfile_command,
    run_once,
    state_of,
)

from bot.slack import ids
from bot.standins import payloads
from bot.standins.driver import Driver, SocketModeTransport
from bot.standins.provider import CONFIRM_PATH
from bot.standins.socket_mode import FakeSocketMode
from bot.standins.world import (
    APP_TOKEN,
    APPROVER,
    BOT_TOKEN,
    CHANNEL,
    PROVIDER_KEY,
    REQUESTER,
    SIGNING_SECRET,
)
from bot.store import open_store


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with make_workspace(tmp_path) as ws:
        yield ws


# --------------------------------------------------------------------------- the tests


def test_procfile_web_line_runs_python_m_bot() -> None:
    """The Procfile's web process is `python -m bot` (HTTP mode); every other test here starts
    the bot with exactly this command, so it is the command proven to serve."""
    assert procfile_command("web") == ["python", "-m", "bot"]
    assert bot_argv() == [sys.executable, "-m", "bot"]


def test_http_mode_serves_health_events_and_refuses_other_paths(workspace: Workspace) -> None:
    """GET /healthz answers 200 {"ok": true}; a signed /verify-email from a requester is acked
    and opens the modal with the email prefilled; unknown paths are 404, GET /slack/events 405."""
    bot = workspace.start(workspace.env())

    with httpx.Client(trust_env=False, timeout=5) as client:
        health = client.get(f"{bot.url}/healthz")
        assert health.status_code == 200
        assert health.json() == {"ok": True}
        assert client.get(f"{bot.url}/nope").status_code == 404
        assert client.post(f"{bot.url}/nope", content=b"x").status_code == 404
        get_events = client.get(f"{bot.url}/slack/events")
        assert get_events.status_code == 405
        assert get_events.headers["allow"] == "POST"

    driver = workspace.driver(bot)
    delivered = driver.command(REQUESTER, EMAIL)
    assert delivered.reply.status == 200
    assert delivered.reply.text == ""
    view = driver.modal(delivered)
    assert view["callback_id"] == ids.REQUEST_VIEW
    email_block = next(b for b in view["blocks"] if b.get("block_id") == ids.EMAIL_BLOCK)
    assert email_block["element"]["initial_value"] == EMAIL
    opened = workspace.slack.calls_to("views.open")
    assert [call.params["trigger_id"] for call in opened] == [delivered.trigger_id]


def test_whole_flow_through_the_process(workspace: Workspace) -> None:
    """Ask, approve: the message ends `succeeded` without buttons, the thread lists the cleared
    domain, and the provider got exactly one POST with the email, approved "yes" and the key."""
    bot = workspace.start(workspace.env())
    driver = workspace.driver(bot)

    message = driver.ask(REQUESTER, EMAIL)
    assert state_of(message) == "pending"
    clicked = driver.approve(APPROVER, message)
    assert clicked.reply.status == 200

    final = driver.final_message(message)
    assert state_of(final) == "succeeded"
    assert not [b for b in final["blocks"] if b.get("type") == "actions"]
    reply = driver.wait_thread_reply(message)
    assert "example.com" in json.dumps(reply["blocks"])
    assert f"<@{APPROVER}>" in json.dumps(reply["blocks"])

    calls = workspace.provider.calls
    assert len(calls) == 1
    (call,) = calls
    assert (call["method"], call["path"]) == ("POST", CONFIRM_PATH)
    assert call["json"] == {"email": EMAIL, "approved": "yes"}
    assert call["headers"]["x-api-key"] == PROVIDER_KEY


def test_forged_and_stale_requests_get_401_and_do_nothing(workspace: Workspace) -> None:
    """A request signed with the wrong secret, or correctly signed with a timestamp 10 minutes
    old, is refused with 401: no modal opens, no approval happens, the provider is not called."""
    bot = workspace.start(workspace.env())
    driver = workspace.driver(bot)
    slack = workspace.slack
    events = f"{bot.url}/slack/events"
    message = driver.ask(REQUESTER, EMAIL)
    opened_before = len(slack.calls_to("views.open"))
    stale = int(time.time()) - 600

    refused_triggers = []
    for secret, timestamp in ((SIGNING_SECRET + "-forged", None), (SIGNING_SECRET, stale)):
        trigger_id = slack.new_trigger_id()
        refused_triggers.append(trigger_id)
        command = payloads.slash_command(
            EMAIL,
            user_id=REQUESTER,
            trigger_id=trigger_id,
            response_url=slack.new_response_url(),
            command=ids.COMMAND,
        )
        click = payloads.block_actions(
            user_id=APPROVER,
            action_id=ids.APPROVE_ACTION,
            message=message,
            channel_id=CHANNEL,
            trigger_id=slack.new_trigger_id(),
            response_url=slack.new_response_url(),
        )
        for body in (command, click):
            reply = payloads.post_signed(events, body, secret, timestamp=timestamp)
            assert reply.status == 401, (secret, timestamp, reply)

    # A genuine Reject afterwards still finds the request pending: nothing claimed it.
    assert driver.reject(APPROVER, message, "duplicate").status == 200
    assert state_of(driver.final_message(message)) == "rejected"
    opened = slack.calls_to("views.open")
    assert len(opened) == opened_before + 1  # the reject modal only
    assert not [c for c in opened if c.params.get("trigger_id") in refused_triggers]
    assert workspace.provider.calls == []


def test_pending_request_survives_kill_9(workspace: Workspace) -> None:
    """A request posted by a process killed with SIGKILL is approved through a new process on
    the same DATABASE_URL: the provider is called once and the request succeeds."""
    env = workspace.env()
    first = workspace.start(env)
    message = workspace.driver(first).ask(REQUESTER, EMAIL)
    assert state_of(message) == "pending"
    # Kill it once it has finished with the request: a kill in the middle of a delivery leaves
    # that delivery leased to the dead process until its lease runs out (a slower, other path).
    with open_store(env["DATABASE_URL"]) as store:
        workspace.slack.wait_for(lambda: store.outbox_entries() == [] or None, what="deliveries")
    first.kill()
    assert first.proc.returncode == -signal.SIGKILL

    second = workspace.start(workspace.env(DATABASE_URL=env["DATABASE_URL"]))
    driver = workspace.driver(second)
    assert driver.approve(APPROVER, message).reply.status == 200
    assert state_of(driver.final_message(message)) == "succeeded"
    assert len(workspace.provider.calls) == 1
    assert workspace.provider.calls[0]["json"] == {"email": EMAIL, "approved": "yes"}


def test_missing_settings_exit_2_naming_each_one(tmp_path: Path) -> None:
    """With nothing set the bot exits 2 at once, naming every required setting, without a
    traceback."""
    started = time.monotonic()
    result = run_once(base_env(), tmp_path)
    elapsed = time.monotonic() - started

    assert result.returncode == 2, result.stderr
    assert elapsed < 5
    for name in REQUIRED:
        assert name in result.stderr, name
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_malformed_settings_never_print_secret_values(tmp_path: Path) -> None:
    """Malformed settings are named, but no secret value given (even a wrong one) is printed."""
    secrets = {
        "SLACK_BOT_TOKEN": "xoxp-supersecret-123",  # a user token where a bot token belongs
        "SLACK_SIGNING_SECRET": "signing-supersecret-456",
        "HOSTUP_API_KEY": "hostup-supersecret-789",
    }
    env = base_env() | secrets | {"APPROVERS": "alice,bob", "APPROVAL_CHANNEL": "#approvals"}
    result = run_once(env, tmp_path)

    assert result.returncode == 2, result.stderr
    for name in ("SLACK_BOT_TOKEN", "APPROVERS", "APPROVAL_CHANNEL"):
        assert name in result.stderr, name
    assert "Traceback" not in result.stderr
    for value in secrets.values():
        assert value not in result.stderr
        assert value not in result.stdout
    assert "supersecret" not in result.stderr + result.stdout


def test_settings_are_read_from_dotenv_in_cwd(workspace: Workspace) -> None:
    """With every setting only in `.env` in the working directory, the bot starts, uses them
    (auth.test reaches FakeSlack with the bot token) and answers /healthz."""
    env = workspace.env()
    basics = base_env()
    settings = {name: value for name, value in env.items() if name not in basics}
    (workspace.tmp_path / "cwd" / ".env").write_text(
        "".join(f"{name}={value}\n" for name, value in settings.items()), encoding="utf-8"
    )
    assert "PORT" in settings
    workspace.start(basics, port=int(settings["PORT"]))  # waits for /healthz on .env's PORT
    auth = workspace.slack.calls_to("auth.test")
    assert auth
    assert auth[0].token == BOT_TOKEN


def test_start_up_log_line_and_sigterm(workspace: Workspace) -> None:
    """The log has exactly one start-up line naming mode http, the port, the channel, the store
    and the provider's host, without secrets; SIGTERM makes the bot exit 0 within seconds."""
    env = workspace.env()
    bot = workspace.start(env)

    lines = [line for line in bot.stderr.splitlines() if "Starting verify-email bot" in line]
    assert len(lines) == 1, bot.stderr
    (line,) = lines
    assert f"mode=http port={bot.port}" in line
    assert f"channel={CHANNEL}" in line
    assert f"store=sqlite:{workspace.tmp_path / 'bot.db'}" in line
    assert f"provider=127.0.0.1:{workspace.provider.port}" in line
    for secret in (BOT_TOKEN, SIGNING_SECRET, PROVIDER_KEY):
        assert secret not in bot.stderr

    started = time.monotonic()
    assert bot.terminate(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert "SIGTERM received" in bot.stderr


def test_secrets_never_reach_logs_or_slack(tmp_path: Path) -> None:
    """Through a success, a provider 401 and a forged request, none of the bot token, signing
    secret or provider key appears in the bot's output, in anything it sent to Slack (messages,
    DMs, updates, modals) or in response_url posts."""
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-e2e-7f3a9c1d5e",
        "SLACK_SIGNING_SECRET": "sign-e2e-4b8d2e6f0a",
        "HOSTUP_API_KEY": "key-e2e-9c1e5a7b3d",
    }
    workspace = make_workspace(
        tmp_path, bot_token=secrets["SLACK_BOT_TOKEN"], provider_key=secrets["HOSTUP_API_KEY"]
    )
    with workspace as ws:
        bot = ws.start(ws.env(SLACK_SIGNING_SECRET=secrets["SLACK_SIGNING_SECRET"]))
        driver = ws.driver(bot, secrets["SLACK_SIGNING_SECRET"])

        first = driver.ask(REQUESTER, EMAIL)
        driver.approve(APPROVER, first)
        assert state_of(driver.final_message(first)) == "succeeded"

        ws.provider.script("unauthorized")
        second = driver.ask(REQUESTER, "bob@example.org")
        driver.approve(APPROVER, second)
        assert state_of(driver.final_message(second)) == "failed"
        assert "401" in json.dumps(driver.wait_thread_reply(second)["blocks"])
        # The outcome DM is the last thing the approval sends.
        ws.slack.wait_for(lambda: len(ws.slack.messages(REQUESTER)) == 4, what="4 DMs")

        forged = payloads.post_signed(
            f"{bot.url}/slack/events",
            payloads.slash_command(
                EMAIL,
                user_id=REQUESTER,
                trigger_id=ws.slack.new_trigger_id(),
                response_url=ws.slack.new_response_url(),
                command=ids.COMMAND,
            ),
            "not-the-secret",
        )
        assert forged.status == 401
        # An approver's refusal goes to a response_url: one more place to look.
        refused = driver.approve(REQUESTER, second)
        assert "approvers" in driver.answer(refused).lower()

        assert bot.terminate() == 0
        output = bot.stdout + bot.stderr
        assert (
            "approved by" in output
        )  # the log was captured, so its absence of secrets means something
        sent = json.dumps([call.params for call in ws.slack.calls])
        responses = json.dumps([post.body for post in ws.slack.responses])
        assert EMAIL in sent
        assert ws.slack.responses
        for name, value in secrets.items():
            assert value not in output, name
            assert value not in sent, name
            assert value not in responses, name


def test_socket_mode_process_acks_command_and_opens_modal(workspace: Workspace) -> None:
    """With SLACK_APP_TOKEN set and no signing secret, the process connects over Socket Mode;
    a /verify-email envelope is acked and opens the modal with the email prefilled."""
    slack = workspace.slack
    with FakeSocketMode(slack) as socket_mode:
        bot = workspace.start(
            workspace.env(SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None),
            healthy=False,
        )
        try:
            socket_mode.wait_connected(timeout=START_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"no Socket Mode connection; stderr:\n{bot.stderr}")
        assert "mode=socket-mode" in bot.stderr

        driver = Driver(slack, SocketModeTransport(socket_mode), CHANNEL)
        delivered = driver.command(REQUESTER, EMAIL)
        assert delivered.reply.status == 200
        assert delivered.reply.text == ""
        view = driver.modal(delivered)
        email_block = next(b for b in view["blocks"] if b.get("block_id") == ids.EMAIL_BLOCK)
        assert email_block["element"]["initial_value"] == EMAIL
        assert [c.params["trigger_id"] for c in slack.calls_to("views.open")] == [
            delivered.trigger_id
        ]
        assert bot.terminate() == 0


def test_socket_mode_process_serves_health_readiness_and_metrics_on_port(
    workspace: Workspace,
) -> None:
    """In Socket Mode the process still serves GET /healthz, /readyz (the store and the
    websocket both up) and /metrics on PORT, and no /slack/events (Slack's requests come over
    the websocket); /readyz turns 503 naming slack once the websocket is gone."""
    with FakeSocketMode(workspace.slack) as socket_mode:
        bot = workspace.start(
            workspace.env(SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None), healthy=True
        )
        socket_mode.wait_connected(timeout=START_TIMEOUT)
        with httpx.Client(trust_env=False, timeout=5) as client:
            ready = client.get(f"{bot.url}/readyz")
            assert (ready.status_code, ready.json()) == (
                200,
                {"ok": True, "store": True, "slack": True},
            )
            metrics = client.get(f"{bot.url}/metrics")
            assert metrics.status_code == 200
            assert "verify_email_requests_created_total 0.0" in metrics.text
            assert "verify_email_maintenance_rounds_total" in metrics.text
            assert client.post(f"{bot.url}/slack/events", content=b"{}").status_code == 404
            socket_mode.stop()
            deadline = time.monotonic() + START_TIMEOUT
            while (gone := client.get(f"{bot.url}/readyz")).status_code == 200:
                assert time.monotonic() < deadline, "readyz still ok without the websocket"
                time.sleep(0.1)  # polling a live process, not waiting out a race
            assert gone.status_code == 503 and gone.json()["slack"] is False
            assert client.get(f"{bot.url}/healthz").status_code == 200  # still serving
        assert bot.terminate() == 0


def test_json_logs_are_one_object_a_line_with_correlation_fields_and_no_secret(
    workspace: Workspace,
) -> None:
    """LOG_FORMAT=json: every line of stderr is a JSON object with time, level, logger and
    message; the lines about a request carry its id, the Slack team, user and action, and the
    provider's requestId; no secret appears, nor the reason the requester typed (no payload is
    logged)."""
    env = workspace.env(LOG_FORMAT="json", LOG_LEVEL="info")
    bot = workspace.start(env)
    driver = workspace.driver(bot)
    reason = "T-1 customer-called-about-it"
    message = driver.ask(REQUESTER, EMAIL, reason=reason)
    driver.approve(APPROVER, message)
    driver.final_message(message)
    assert bot.terminate() == 0
    lines = [line for line in bot.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # each line parses on its own
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    assert reason not in bot.stderr
    calling = [r for r in records if "calling the provider" in r["message"]]
    assert calling, lines
    assert {"request_id", "team", "user", "action"} <= set(calling[0]), calling[0]
    assert calling[0]["user"] == APPROVER and calling[0]["action"] == ids.APPROVE_ACTION
    answered = [r for r in records if "confirmed attempt" in r["message"]]
    assert answered and "provider_request_id" in answered[0], answered
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "HOSTUP_API_KEY"):
        assert env[name] not in bot.stderr, name


# An address a person may type (a quoted local part may hold any character but a quote, a
# backslash, CR and LF) that the bot logs: "Request … for <email> by <user>". Inside it, a
# line separator (U+2028), a vertical tab and a terminal escape, each of which splits a line or
# rewrites the screen for some reader, around what looks like a log line of its own.
FORGED_LINE = "2026-01-01 00:00:00,000 INFO bot: forged"
FORGING_EMAIL = f'"a\u2028{FORGED_LINE}\x0b\x1b[2J"@example.com'
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_an_address_built_to_forge_a_log_line_is_refused_and_forges_none(
    workspace: Workspace, log_format: str
) -> None:
    """An email address whose quoted local part carries a line separator, a vertical tab and a
    terminal escape around a fake log line is refused in the form, saying why (the address is
    the one text a person types that a log line names, so it never reaches one); the bot's
    stderr holds none of those characters raw and still reads as one record a line (each line
    a JSON object, or a text line starting with its time and level), none the fake one.
    (bot.logs escapes such characters all the same: tests/e2e/test_operability.py.)"""
    bot = workspace.start(workspace.env(LOG_FORMAT=log_format, LOG_LEVEL="info"))
    driver = workspace.driver(bot)
    form = driver.modal(driver.command(REQUESTER, ""))  # the empty form: the address typed in it
    reply = driver.submit_request(REQUESTER, form, email=FORGING_EMAIL, reason="T-1")
    assert reply.status == 200 and isinstance(reply.body, dict), reply
    assert reply.body["response_action"] == "errors", reply
    assert set(reply.body["errors"]) == {ids.EMAIL_BLOCK}, reply  # the address, saying why
    assert bot.terminate() == 0
    assert workspace.slack.messages(CHANNEL) == []  # nothing was asked for
    output = bot.stderr
    for raw in ("\u2028", "\x0b", "\x1b", "\r"):
        assert raw not in output, repr(raw)
    lines = output.split("\n")
    assert lines[-1] == "" and output.splitlines() == lines[:-1]  # no other line break
    assert not any(each.startswith(FORGED_LINE) for each in lines)
    assert not any("forged" in line for line in lines)
    if log_format == "json":
        assert all(isinstance(json.loads(line), dict) for line in lines[:-1])
    else:
        assert all(TEXT_LINE.match(line) for line in lines[:-1]), lines


def _dockerfile_json(instruction: str) -> list[str]:
    """The exec-form (JSON) argument list of a Dockerfile instruction (continuations joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith(instruction + " "):
            argv = json.loads(line[line.index("[") :])
            assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), line
            return argv
    raise AssertionError(f"no {instruction} in the Dockerfile")


def test_the_container_runs_the_bot_as_this_suite_does_and_its_healthcheck_works(
    workspace: Workspace,
) -> None:
    """The image (not buildable here: no container engine) runs `python -m bot`, the command
    every test in this file starts, as a non-root user; its HEALTHCHECK command, run as it is
    against a live bot with the image's PORT, exits 0, and exits non-zero once the bot is gone."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "\nFROM python:3.11-slim\n" in dockerfile
    assert "\nUSER bot\n" in dockerfile
    assert _dockerfile_json("CMD") == ["python", "-m", "bot"] == ["python", *bot_argv()[1:]]
    healthcheck = _dockerfile_json("HEALTHCHECK")
    assert healthcheck[0] == "python" and "/healthz" in healthcheck[-1]
    env = workspace.env()
    bot = workspace.start(env)
    check_env = base_env() | {"PORT": env["PORT"]}
    argv = [sys.executable, *healthcheck[1:]]
    ok = subprocess.run(argv, env=check_env, capture_output=True, timeout=30, check=False)  # noqa: S603 - the Dockerfile's own command
    assert ok.returncode == 0, ok.stderr
    assert bot.terminate() == 0
    gone = subprocess.run(argv, env=check_env, capture_output=True, timeout=30, check=False)  # noqa: S603 - the same
    assert gone.returncode != 0
