"""Operability: /metrics before and after real flows, /readyz, and the log formats.

The metrics tests scrape ``GET /metrics`` of the real bot (in this process, over HTTP on
loopback, against the stand-ins) before and after a flow and check the deltas. The processes'
own health, readiness and JSON logs are in tests/e2e/test_process.py.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain import correlation
from bot.domain.model import State, utcnow
from bot.logs import configure, escape_controls
from bot.standins.provider import Response
from bot.standins.world import (
    APP_TOKEN,
    APPROVER,
    BOT_TOKEN,
    CHANNEL,
    PROVIDER_KEY,
    REQUESTER,
    SIGNING_SECRET,
    World,
)

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


def freeze(world: World, scraped_after: timedelta) -> datetime:
    """Stop the bot's clock at a whole second and let /metrics read the store
    ``scraped_after`` later, so the ages it serves are exact. Returns the frozen moment."""
    moment = utcnow().replace(microsecond=0)
    world.services.approvals.clock = lambda: moment
    world.services.metrics.watch_store(world.services.store, clock=lambda: moment + scraped_after)
    return moment


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` (something the bot does in its own threads) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def test_a_successful_flow_moves_the_metrics_it_should(world):
    """One request approved and cleared: created and finished{succeeded} +1, one confirm call
    ok (with its latency), the lookup's and read-back's view calls, Slack calls by method, one
    ack of each kind; while it waits, the oldest pending age is exactly how long ago (by the
    clock the scrape reads) it was made; nothing pending or waiting afterwards."""
    freeze(world, scraped_after=timedelta(seconds=90))
    before = scrape(world)
    assert value(before, "verify_email_pending_oldest_age_seconds") == 0
    message = world.driver.ask(REQUESTER, EMAIL)
    during = scrape(world)
    assert value(during, "verify_email_requests", state="pending") == 1
    by_operation = "verify_email_requests_by_operation"
    assert value(during, by_operation, operation="confirm", state="pending") == 1
    assert value(during, by_operation, operation="resend", state="pending") == 0
    assert value(during, "verify_email_pending_oldest_age_seconds") == 90
    assert value(during, "verify_email_store_up") == 1
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
    assert value(after, by_operation, operation="confirm", state="succeeded") == 1
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


def test_a_200_the_bot_refuses_counts_as_that_failure_not_ok(world):
    """An HTTP 200 the bot does not take as a result is counted by what the bot made of it:
    a proxy's HTML page and a ``success: false`` body from confirm are confirm{bad_response},
    and an HTML page where the domain list should be is domains{bad_response}; none is ok."""
    before = scrape(world)
    world.provider.enqueue_view(Response.html(200))  # the lookup's first v2 call: the list
    world.provider.enqueue(Response.html(200))
    page = world.driver.ask(REQUESTER, EMAIL)
    world.driver.approve(APPROVER, page)
    world.driver.final_message(page)
    world.provider.enqueue(Response.not_successful())
    refused = world.driver.ask(REQUESTER, "bob@example.com")
    world.driver.approve(APPROVER, refused)
    world.driver.final_message(refused)
    after = scrape(world)
    calls = "verify_email_provider_calls_total"
    assert delta(before, after, calls, endpoint="confirm", outcome="bad_response") == 2
    assert delta(before, after, calls, endpoint="confirm", outcome="ok") == 0
    assert delta(before, after, calls, endpoint="domains", outcome="bad_response") == 1
    assert delta(before, after, "verify_email_provider_call_seconds_count", endpoint="confirm") == 2
    states = {r.state for r in world.services.store.list_requests()}
    assert states and states <= {State.FAILED, State.UNKNOWN}


def test_a_slack_outage_shows_in_errors_and_the_outbox_backlog(world):
    """A whole Slack outage while a request is made: the refused calls are counted by method
    and error, the messages Slack is owed wait in the outbox, the oldest exactly as old as the
    scrape's clock says; once Slack is back, a maintenance round delivers them and the backlog
    is 0 again."""
    moment = freeze(world, scraped_after=timedelta(seconds=90))
    before = scrape(world)
    sent = world.driver.command(REQUESTER, EMAIL)
    view = world.driver.modal(sent)
    world.slack.outage(600)
    world.driver.submit_request(REQUESTER, view, reason="T-1")
    world.slack.wait_for(
        lambda: any(c.method == "chat.postMessage" and not c.ok for c in world.slack.calls) or None,
        what="a refused post",
    )
    # The listener's last step is recording the provider's view; wait for it to be done.
    [request] = world.services.store.list_requests()
    eventually(lambda: world.services.store.get(request.id).view is not None, "lookup recorded")
    during = scrape(world)
    refused = delta(
        before,
        during,
        "verify_email_slack_calls_total",
        method="chat.postMessage",
        error="service_unavailable",
    )
    assert refused >= 1
    assert value(during, "verify_email_outbox_waiting") >= 1
    assert value(during, "verify_email_outbox_oldest_age_seconds") == 90
    assert value(during, "verify_email_requests", state="pending") == 1
    assert not world.slack.messages(CHANNEL)

    world.slack.outage(0)  # Slack is back
    later = moment + timedelta(hours=1)  # every retry is due by then
    world.services.approvals.clock = lambda: later
    world.services.metrics.watch_store(world.services.store, clock=lambda: later)
    assert world.services.maintenance.run_round()
    eventually(
        lambda: (
            world.services.maintenance.run_round()
            and value(scrape(world), "verify_email_outbox_waiting") == 0
        ),
        "empty outbox",
    )
    after = scrape(world)
    assert value(after, "verify_email_outbox_oldest_age_seconds") == 0
    assert world.driver.request_message(EMAIL)  # the request is in the channel at last


def test_maintenance_rounds_are_counted_with_failures(world):
    """Each round of the maintenance loop counts; a round the store fails (it is closed here)
    counts as a failure too, and the scrape still answers, with the store marked down."""
    maintenance = world.services.maintenance
    before = scrape(world)
    assert maintenance.run_round() is True
    world.services.store.close()  # the store is gone: every read and write raises StoreError
    assert maintenance.run_round() is False
    after = scrape(world)
    assert delta(before, after, "verify_email_maintenance_rounds_total") == 2
    assert delta(before, after, "verify_email_maintenance_failures_total") == 1
    assert value(after, "verify_email_store_up") == 0


def test_readyz_reports_each_check_and_healthz_stays_cheap(world):
    """GET /readyz answers 200 with the store's check (HTTP mode has no websocket to check),
    503 naming Slack when its connection is down, and 503 naming the store when the store
    cannot be written; GET /healthz answers 200 throughout, without asking the store."""

    def get(path: str) -> httpx.Response:
        return httpx.get(f"{world.url}{path}", timeout=5, trust_env=False)

    ready = get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ok": True, "store": True})
    world.services.slack_connected = lambda: False
    down = get("/readyz")
    assert (down.status_code, down.json()) == (503, {"ok": False, "store": True, "slack": False})
    world.services.slack_connected = None
    pings: list[str] = []
    ping = world.services.store.ping

    def counted_ping() -> None:
        pings.append("ping")
        ping()

    world.services.store.ping = counted_ping
    assert (get("/healthz").status_code, get("/healthz").json()) == (200, {"ok": True})
    assert pings == []  # /healthz never touched the store
    world.services.store.close()
    gone = get("/readyz")
    assert (gone.status_code, gone.json()) == (503, {"ok": False, "store": False})
    assert len(pings) == 1
    healthz = get("/healthz")
    assert (healthz.status_code, healthz.json()) == (200, {"ok": True})


def sqlite_connections(store: Any) -> list[sqlite3.Connection]:
    """Every SQLite connection the store holds, whatever it calls them."""
    return [v for v in vars(store).values() if isinstance(v, sqlite3.Connection)]


def set_progress_handlers(store: Any, handler: Any) -> None:
    """Install (or, with None, remove) ``handler`` on each of the store's connections, each
    under the lock that guards it. Changing a handler blocks on the connection's mutex while
    holding the GIL, and a statement running in another thread calls its handler, which needs
    the GIL: done without the store's lock, the two threads would wait for each other."""
    for conn in sqlite_connections(store):
        lock = store._probe_lock if conn is store._probe_conn else store._lock
        with lock:
            conn.set_progress_handler(handler, 1)


def test_readyz_and_metrics_answer_while_a_slow_write_holds_the_lock(world):
    """A slow write holds the store's write lock (its process-wide lock and SQLite's): GET
    /readyz still answers 200 with the store up at once, and GET /metrics serves the store's
    figures; so they do when another process (a raw connection) holds SQLite's write lock."""
    store = world.services.store
    message = world.driver.ask(REQUESTER, EMAIL)
    holding, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        with store._write():
            holding.set()
            release.wait(timeout=30)

    writer = threading.Thread(target=slow_write)
    writer.start()
    try:
        assert holding.wait(timeout=10)
        ready = httpx.get(f"{world.url}/readyz", timeout=2, trust_env=False)
        assert (ready.status_code, ready.json()) == (200, {"ok": True, "store": True})
        samples = scrape_within(world, 2)
        assert value(samples, "verify_email_store_up") == 1
        assert value(samples, "verify_email_requests", state="pending") == 1
    finally:
        release.set()
        writer.join(timeout=30)
    other = sqlite3.connect(world.database_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ready = httpx.get(f"{world.url}/readyz", timeout=2, trust_env=False)
        assert (ready.status_code, ready.json()) == (200, {"ok": True, "store": True})
        assert value(scrape_within(world, 2), "verify_email_store_up") == 1
        other.execute("ROLLBACK")
    finally:
        other.close()
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)


def scrape_within(world: World, seconds: float) -> Samples:
    reply = httpx.get(f"{world.url}/metrics", timeout=seconds, trust_env=False)
    assert reply.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def test_an_ack_does_not_wait_behind_a_metrics_scrape(world):
    """A /metrics scrape held in the middle of its store query (a huge store, a slow disk)
    does not hold up an acknowledgement that reads the store: the request form's submission
    (which checks for an open request before its ack) is answered while the scrape is still
    held, and the scrape completes once let go."""
    store = world.services.store
    view = world.driver.modal(world.driver.command(REQUESTER, EMAIL))
    scraping = threading.local()
    inside, release = threading.Event(), threading.Event()
    figures = store.metric_figures

    def flagged_figures() -> Any:
        scraping.on = True
        try:
            return figures()
        finally:
            scraping.on = False

    def handler() -> int:
        if getattr(scraping, "on", False):
            inside.set()
            release.wait(timeout=30)
        return 0  # carry on (non-zero would interrupt the query)

    store.metric_figures = flagged_figures
    set_progress_handlers(store, handler)
    scraped: list[Samples] = []
    scraper = threading.Thread(target=lambda: scraped.append(scrape_within(world, 40)))
    scraper.start()
    try:
        assert inside.wait(timeout=10), "the scrape never reached the store"
        submitted: list[Any] = []
        submitter = threading.Thread(
            target=lambda: submitted.append(
                world.driver.submit_request(REQUESTER, view, reason="TICKET-1")
            )
        )
        submitter.start()
        submitter.join(timeout=5)
        assert submitted, "the submission's ack waited behind the scrape"
        assert (submitted[0].status, submitted[0].body) == (200, "")  # acknowledged, no errors
        assert scraper.is_alive()  # the scrape was still held all along
    finally:
        release.set()
        scraper.join(timeout=30)
        set_progress_handlers(store, None)
    assert value(scraped[0], "verify_email_store_up") == 1
    assert world.driver.request_message(EMAIL)  # and the request went on to be posted


def test_metrics_still_answer_when_the_store_is_down(world):
    """With the store down, GET /metrics still answers 200: verify_email_store_up is 0, the
    figures read from the store are left out (not served as false zeros), and this process's
    own counters are still there."""
    message = world.driver.ask(REQUESTER, EMAIL)
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    up = scrape(world)
    assert value(up, "verify_email_store_up") == 1
    assert value(up, "verify_email_requests_created_total") == 1
    world.services.store.close()
    down = scrape(world)
    assert value(down, "verify_email_store_up") == 0
    store_derived = (
        "verify_email_requests_created_total",
        "verify_email_requests_finished_total",
        "verify_email_requests",
        "verify_email_pending_oldest_age_seconds",
        "verify_email_outbox_waiting",
        "verify_email_outbox_oldest_age_seconds",
    )
    assert not [name for name, _ in down if name in store_derived]
    calls = "verify_email_provider_calls_total"
    assert value(down, calls, endpoint="confirm", outcome="ok") == 1


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


def test_debug_logs_carry_no_payload_reason_or_secret(tmp_path, restore_logging):
    """At LOG_LEVEL=DEBUG (set before the app is built, as ``python -m bot`` does) the bot's
    own debug lines are written, but no library's: slack_sdk would log every Web API request
    and answer in full, so the reason a person typed (which Slack did receive) appears in no
    line, and no line so much as tried to print a secret (nothing had to be redacted)."""
    reason = "TICKET-4711 customer-phoned-twice"
    out = io.StringIO()
    configure("json", "DEBUG", (BOT_TOKEN, SIGNING_SECRET, PROVIDER_KEY, APP_TOKEN), stream=out)
    with World(database_path=tmp_path / "bot.db") as world:
        logging.getLogger("bot.test").debug("the bot's own debug line")
        message = world.driver.ask(REQUESTER, EMAIL, reason=reason)
        world.driver.approve(APPROVER, message)
        world.driver.final_message(message)
        world.slack.wait_for(
            lambda: len(world.slack.messages(REQUESTER)) >= 2 or None, what="the outcome DM"
        )
        sent = json.dumps([call.params for call in world.slack.calls])
    text = out.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    assert reason in sent  # it went through slack_sdk, whose debug lines would show it
    assert any((r["level"], r["logger"]) == ("DEBUG", "bot.test") for r in records)
    assert any("calling the provider" in r["message"] for r in records)
    assert reason not in text
    for secret in (BOT_TOKEN, SIGNING_SECRET, PROVIDER_KEY, APP_TOKEN):
        assert secret not in text
    assert "[redacted]" not in text
    library = [r for r in records if not r["logger"].startswith("bot")]
    assert all(r["level"] != "DEBUG" for r in library), library[:3]


LEVEL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) ")


def test_log_level_warning_leaves_out_info_lines(tmp_path, restore_logging):
    """LOG_LEVEL=WARNING: a whole request, which logs INFO lines at LOG_LEVEL=INFO, writes no
    line below WARNING (the bot's or a library's); a warning still gets through."""
    quiet, chatty = io.StringIO(), io.StringIO()
    configure("text", "WARNING", stream=quiet)
    with World(database_path=tmp_path / "bot.db") as world:
        world.driver.ask(REQUESTER, EMAIL)
        logging.getLogger("bot.test").warning("a warning")
        configure("text", "INFO", stream=chatty)
        world.driver.ask(REQUESTER, "bob@example.com")
    levels = [LEVEL.match(line) for line in quiet.getvalue().splitlines()]
    assert all(levels) and {m.group(1) for m in levels if m} == {"WARNING"}
    assert "a warning" in quiet.getvalue()
    assert any(
        " INFO bot.domain.approval: Request " in line for line in chatty.getvalue().splitlines()
    )
