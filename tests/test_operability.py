"""Operability: /metrics before and after real flows, /readyz, and the log formats.

The metrics tests scrape ``GET /metrics`` of the real bot (in this process, over HTTP on
loopback, against the stand-ins) before and after a flow and check the deltas. The processes'
own health, readiness and JSON logs are in tests/test_process.py.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain import correlation
from bot.logs import configure, escape_controls
from bot.standins.provider import Response
from bot.standins.world import APPROVER, REQUESTER, World

EMAIL = "alice@example.com"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(world: World) -> Samples:
    reply = httpx.get(f"{world.url}/metrics", timeout=5, trust_env=False)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    with World(database_path=tmp_path / "bot.db", settings={"HOSTUP_TIMEOUT": 0.5}) as w:
        yield w


def test_a_successful_flow_moves_the_metrics_it_should(world):
    """One request approved and cleared: created and finished{succeeded} +1, one confirm call
    ok (with its latency), the lookup's and read-back's view calls, Slack calls by method, one
    ack of each kind; nothing pending or waiting afterwards."""
    before = scrape(world)
    message = world.driver.ask(REQUESTER, EMAIL)
    during = scrape(world)
    assert value(during, "verify_email_requests", state="pending") == 1
    assert value(during, "verify_email_pending_oldest_age_seconds") >= 0
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    world.driver.wait_thread_reply(message)
    world.slack.wait_for(
        lambda: len(world.slack.messages(REQUESTER)) >= 2 or None, what="the outcome DM"
    )
    after = scrape(world)
    assert delta(before, after, "verify_email_requests_created_total") == 1
    assert delta(before, after, "verify_email_requests_finished_total", state="succeeded") == 1
    assert delta(before, after, "verify_email_requests_finished_total", state="failed") == 0
    assert value(after, "verify_email_requests", state="pending") == 0
    assert value(after, "verify_email_pending_oldest_age_seconds") == 0
    calls = "verify_email_provider_calls_total"
    assert delta(before, after, calls, endpoint="confirm", outcome="ok") == 1
    assert delta(before, after, calls, endpoint="domains", outcome="ok") == 1
    assert delta(before, after, calls, endpoint="view", outcome="ok") == 2
    latency = "verify_email_provider_call_seconds_count"
    assert delta(before, after, latency, endpoint="confirm") == 1
    slack = "verify_email_slack_calls_total"
    assert delta(before, after, slack, method="chat.postMessage", error="ok") >= 3
    assert delta(before, after, slack, method="views.open", error="ok") == 1
    acks = "verify_email_ack_seconds_count"
    for kind in ("command", "view", "action"):
        assert delta(before, after, acks, kind=kind) == 1, kind
    assert value(after, "verify_email_outbox_waiting") == 0


def test_a_provider_error_and_a_timeout_are_counted_by_kind(world):
    """A 400 counts as confirm{rejected} and finished{failed}; a timeout as confirm{timeout}
    and leaves one request unknown."""
    before = scrape(world)
    world.provider.script("bad_request")
    refused = world.driver.ask(REQUESTER, EMAIL)
    world.driver.approve(APPROVER, refused)
    world.driver.final_message(refused)
    world.provider.enqueue(Response.hang(30))
    timed_out = world.driver.ask(REQUESTER, "bob@example.com")
    world.driver.approve(APPROVER, timed_out)
    world.driver.final_message(timed_out)
    after = scrape(world)
    calls = "verify_email_provider_calls_total"
    assert delta(before, after, calls, endpoint="confirm", outcome="rejected") == 1
    assert delta(before, after, calls, endpoint="confirm", outcome="timeout") == 1
    assert delta(before, after, "verify_email_requests_finished_total", state="failed") == 1
    assert value(after, "verify_email_requests", state="unknown") == 1


def test_a_slack_outage_shows_in_errors_and_the_outbox_backlog(world):
    """Slack refusing every post: the errors are counted by method and error, and the messages
    it owes wait in the outbox, the oldest with an age."""
    world.slack.fail_next("chat.postMessage", error="service_unavailable", times=100)
    before = scrape(world)
    sent = world.driver.command(REQUESTER, EMAIL)
    world.driver.submit_request(REQUESTER, world.driver.modal(sent), reason="T-1")
    world.slack.wait_for(
        lambda: any(c.method == "chat.postMessage" and not c.ok for c in world.slack.calls) or None,
        what="a refused post",
    )
    after = scrape(world)
    refused = delta(
        before,
        after,
        "verify_email_slack_calls_total",
        method="chat.postMessage",
        error="service_unavailable",
    )
    assert refused >= 1
    assert value(after, "verify_email_outbox_waiting") >= 1
    assert value(after, "verify_email_outbox_oldest_age_seconds") >= 0
    assert value(after, "verify_email_requests", state="pending") == 1


def test_maintenance_rounds_are_counted_with_failures(world):
    """Each maintenance round counts; one that fails counts as a failure too."""
    maintenance = world.services.maintenance
    metrics = world.services.metrics
    before = scrape(world)
    metrics.maintenance_round(True)
    metrics.maintenance_round(False)
    after = scrape(world)
    assert delta(before, after, "verify_email_maintenance_rounds_total") == 2
    assert delta(before, after, "verify_email_maintenance_failures_total") == 1
    assert maintenance.on_round == metrics.maintenance_round  # the loop reports to them


def test_readyz_reports_each_check_and_healthz_stays_cheap(world):
    """GET /readyz answers 200 with the store's check (HTTP mode has no websocket to check);
    when the store cannot be written, 503 naming it."""
    ready = httpx.get(f"{world.url}/readyz", timeout=5, trust_env=False)
    assert (ready.status_code, ready.json()) == (200, {"ok": True, "store": True})
    world.services.slack_connected = lambda: False
    down = httpx.get(f"{world.url}/readyz", timeout=5, trust_env=False)
    assert (down.status_code, down.json()) == (503, {"ok": False, "store": True, "slack": False})
    assert httpx.get(f"{world.url}/healthz", timeout=5, trust_env=False).status_code == 200


def test_metrics_off_serves_no_metrics_and_counts_nothing(tmp_path):
    """METRICS=false: GET /metrics is 404 and a flow counts nothing; health and readiness stay."""
    with World(database_path=tmp_path / "bot.db", settings={"METRICS": False}) as world:
        message = world.driver.ask(REQUESTER, EMAIL)
        world.driver.approve(APPROVER, message)
        world.driver.final_message(message)
        reply = httpx.get(f"{world.url}/metrics", timeout=5, trust_env=False)
        assert reply.status_code == 404
        assert world.services.metrics.exposition() == b""
        registry = world.services.metrics.registry
        confirm = {"endpoint": "confirm", "outcome": "ok"}
        assert registry.get_sample_value("verify_email_provider_calls_total", confirm) is None
        assert registry.get_sample_value("verify_email_requests_created_total") is None
        ready = httpx.get(f"{world.url}/readyz", timeout=5, trust_env=False)
        assert ready.status_code == 200


# ---------------------------------------------------------------------------------------------
# Log formats


def capture(log_format: str, secrets: tuple[str, ...] = ()) -> tuple[io.StringIO, Any]:
    out = io.StringIO()
    handler = configure(log_format, "INFO", secrets, stream=out)
    return out, handler


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_the_bound_fields_and_no_secret(restore_logging):
    out, _ = capture("json", secrets=("xoxb-very-secret-token",))
    with correlation.bound(request_id="0123456789abcdef", team="T1", user="U1", action="a"):
        correlation.set_field("provider_request_id", "req_1")
        logging.getLogger("bot.test").info("token %s\nforged", "xoxb-very-secret-token")
    logging.getLogger("bot.test").warning("outside")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "token [redacted]\nforged"
    assert (first["level"], first["logger"]) == ("INFO", "bot.test")
    assert first["time"].endswith("Z")
    assert {k: first[k] for k in correlation.FIELDS} == {
        "request_id": "0123456789abcdef",
        "team": "T1",
        "user": "U1",
        "action": "a",
        "provider_request_id": "req_1",
    }
    assert not set(correlation.FIELDS) & set(second)  # nothing leaks out of the block
    assert "xoxb-very-secret-token" not in out.getvalue()


def test_a_sweep_names_the_request_it_changes(world, restore_logging):
    """The expiry sweep runs in no Slack request, yet its lines name the request it expired."""
    from datetime import timedelta

    from bot.domain.model import utcnow

    message = world.driver.ask(REQUESTER, EMAIL)
    out, _ = capture("json")
    moment = utcnow() + timedelta(days=2)
    world.services.approvals.clock = lambda: moment
    assert world.services.maintenance.run_once()["expired"] == 1
    world.driver.final_message(message)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    [expired] = [r for r in records if "expired without a decision" in r["message"]]
    assert expired["request_id"] in expired["message"]
    assert "user" not in expired  # nobody clicked


def test_text_lines_escape_line_breaks_and_show_the_fields(restore_logging):
    out, _ = capture("text", secrets=("hk_live_secret",))
    with correlation.bound(request_id="r1", user="U1"):
        logging.getLogger("bot.test").info("reason: x\n2026-01-01 INFO bot: forged hk_live_secret")
    [line] = out.getvalue().splitlines()
    assert "\\n2026-01-01 INFO bot: forged [redacted]" in line
    assert line.endswith("[request_id=r1 user=U1]")


def test_a_traceback_stays_in_its_record(restore_logging):
    """An exception's traceback is kept, escaped onto the record's one line in text."""
    out, _ = capture("text")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bot.test").exception("failed")
    [line] = out.getvalue().splitlines()
    assert "failed\\nTraceback" in line and "ValueError: boom" in line


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("a\nb", "a\\nb"), ("a\rb", "a\\rb"), ("\x1b[31m", "\\x1b[31m"), ("ok é", "ok é")],
)
def test_control_characters_are_escaped(raw, shown):
    assert escape_controls(raw) == shown


def test_log_settings_are_checked(monkeypatch):
    """LOG_FORMAT and LOG_LEVEL take their documented values (any case), and refuse others."""
    from bot.settings import SettingsError, load_settings

    base = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "HOSTUP_API_KEY": "k",
        "APPROVERS": "U0APPROVER",
        "APPROVAL_CHANNEL": "C0APPROVALS",
    }
    for name, val in base.items():
        monkeypatch.setenv(name, val)
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings(_env_file=None)
    assert (settings.LOG_FORMAT, settings.LOG_LEVEL) == ("json", "DEBUG")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None)
    assert any("LOG_FORMAT" in p for p in refused.value.problems)
