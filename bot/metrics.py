"""Prometheus metrics, served at ``GET /metrics`` on PORT (prometheus-client, its own registry).

Two kinds, and the difference matters with several replicas:

* **Derived from the store** when scraped, so they survive a restart and read the same on every
  replica (aggregate them with ``max``, not ``sum``): ``verify_email_requests_created_total``,
  ``verify_email_requests_finished_total{state}``, ``verify_email_requests{state}``,
  ``verify_email_pending_oldest_age_seconds``, ``verify_email_outbox_waiting``,
  ``verify_email_outbox_oldest_age_seconds`` and ``verify_email_outbox_given_up_total{kind}``
  (what the outbox gave up telling Slack: refused for good, or not taken for 7 days). When the
  store does not answer a scrape, these are left out of it (an absent series, not a false
  zero) and ``verify_email_store_up`` is 0.
* **Counted by this process** since it started (each replica serves its own: ``sum`` them, and
  use ``rate()``, which copes with restarts): provider calls by endpoint and outcome and their
  latency, Slack Web API calls by method and error, acknowledgement latency by kind (command,
  view, action, event), maintenance rounds and their failures.

Nothing here is imported by the domain; the pieces that count take plain callbacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from bot.domain.model import FINAL_STATES, Operation, State, StoreFigures, utcnow
from bot.domain.ports import StoreError

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds: a provider call is bounded by HOSTUP_TIMEOUT (15 s by default) and its retries.
PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
# Seconds: Slack gives up on an acknowledgement after 3 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)


class FigureSource(Protocol):
    def metric_figures(self) -> StoreFigures: ...


class _StoreCollector(Collector):
    def __init__(
        self, source: FigureSource, clock: Callable[[], datetime], kinds: Sequence[str]
    ) -> None:
        self.source = source
        self.clock = clock
        self.kinds = tuple(kinds)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "verify_email_store_up",
            "1 when the store answered this scrape, 0 when it did not (the figures read from "
            "it are then left out).",
        )
        try:
            figures = self.source.metric_figures()
        except StoreError as exc:
            # The scrape still serves this process's own counters; readiness says the rest.
            log.warning("Metrics: the store did not answer, its figures are left out: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self.clock()
        created = CounterMetricFamily(
            "verify_email_requests_created", "Requests asked for, ever (from the store)."
        )
        created.add_metric([], figures.created)
        yield created
        finished = CounterMetricFamily(
            "verify_email_requests_finished",
            "Requests that reached a final state, by state (from the store).",
            labels=["state"],
        )
        for state in sorted(FINAL_STATES):
            finished.add_metric([state.value], figures.by_state.get(state, 0))
        yield finished
        current = GaugeMetricFamily(
            "verify_email_requests",
            "Requests in each state now (from the store).",
            labels=["state"],
        )
        for state in State:
            current.add_metric([state.value], figures.by_state.get(state, 0))
        yield current
        by_operation = GaugeMetricFamily(
            "verify_email_requests_by_operation",
            "Requests in each state now, by the operation they ask for (from the store).",
            labels=["operation", "state"],
        )
        for operation in Operation:
            for state in State:
                count = figures.by_operation.get((operation.value, state), 0)
                by_operation.add_metric([operation.value, state.value], count)
        yield by_operation
        yield _age(
            "verify_email_pending_oldest_age_seconds",
            "Age of the oldest pending request; 0 when none is pending.",
            figures.oldest_pending,
            now,
        )
        waiting = GaugeMetricFamily(
            "verify_email_outbox_waiting", "Messages to Slack not delivered yet (from the store)."
        )
        waiting.add_metric([], figures.outbox_waiting)
        yield waiting
        yield _age(
            "verify_email_outbox_oldest_age_seconds",
            "Age of the oldest message to Slack not delivered yet; 0 when none waits.",
            figures.oldest_outbox,
            now,
        )
        given_up = CounterMetricFamily(
            "verify_email_outbox_given_up",
            "Messages to Slack given up on, ever, by notice kind: Slack refused them for good, "
            "or did not take them for 7 days (from the store; each is audited on its request).",
            labels=["kind"],
        )
        # Every kind from 0, so a first give-up is an increase (not a new series).
        for kind in sorted(set(self.kinds) | set(figures.given_up)):
            given_up.add_metric([kind], figures.given_up.get(kind, 0))
        yield given_up


def _age(name: str, documentation: str, since: datetime | None, now: datetime) -> Metric:
    gauge = GaugeMetricFamily(name, documentation)
    gauge.add_metric([], max(0.0, (now - since).total_seconds()) if since else 0.0)
    return gauge


class Metrics:
    """The bot's metrics in a registry of their own (so several bots in one test process do
    not share counters)."""

    def __init__(self, enabled: bool = True) -> None:
        # Disabled (METRICS=false): the callbacks do nothing and there is nothing to serve.
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self.provider_calls = Counter(
            "verify_email_provider_calls",
            "Provider API calls by endpoint and outcome (ok, or how it failed).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.provider_seconds = Histogram(
            "verify_email_provider_call_seconds",
            "Provider API call latency, by endpoint.",
            ["endpoint"],
            buckets=PROVIDER_BUCKETS,
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "verify_email_slack_calls",
            "Slack Web API calls by method and error (ok when Slack accepted it).",
            ["method", "error"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "verify_email_ack_seconds",
            "Time from Slack's request arriving to its acknowledgement, by kind.",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.maintenance_rounds = Counter(
            "verify_email_maintenance_rounds",
            "Maintenance rounds (expiry, reminders, interrupted calls, outbox), run here.",
            registry=self.registry,
        )
        self.maintenance_failures = Counter(
            "verify_email_maintenance_failures",
            "Maintenance rounds that failed (the next one tries again).",
            registry=self.registry,
        )
        self._store: _StoreCollector | None = None

    def watch_store(
        self,
        source: FigureSource,
        clock: Callable[[], datetime] = utcnow,
        *,
        kinds: Sequence[str] = (),
    ) -> None:
        """Serve the store-derived metrics from ``source``, read on each scrape; the outbox's
        give-ups are counted for each of ``kinds`` (every kind of notice) from 0."""
        if not self.enabled:
            return
        if self._store is not None:
            self.registry.unregister(self._store)
        self._store = _StoreCollector(source, clock, kinds)
        self.registry.register(self._store)

    # -- the callbacks the instrumented pieces call

    def provider_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        if not self.enabled:
            return
        self.provider_calls.labels(endpoint, outcome).inc()
        self.provider_seconds.labels(endpoint).observe(seconds)

    def slack_call(self, method: str, error: str) -> None:
        if self.enabled:
            self.slack_calls.labels(method, error).inc()

    def acked(self, kind: str, seconds: float) -> None:
        if self.enabled:
            self.ack_seconds.labels(kind).observe(seconds)

    def maintenance_round(self, ok: bool) -> None:
        if not self.enabled:
            return
        self.maintenance_rounds.inc()
        if not ok:
            self.maintenance_failures.inc()

    def exposition(self) -> bytes:
        """The text exposition format, as ``GET /metrics`` serves it (nothing when off)."""
        return generate_latest(self.registry) if self.enabled else b""

    @property
    def serve(self) -> Callable[[], bytes] | None:
        """What ``GET /metrics`` serves (None: no such route, metrics are off)."""
        return self.exposition if self.enabled else None


def ack_kind(body: dict[str, Any]) -> str:
    """What Slack sent, for the ack histogram: command, view, action, event or other."""
    if "command" in body:
        return "command"
    kind = body.get("type")
    if kind in ("view_submission", "view_closed"):
        return "view"
    if kind in ("block_actions", "interactive_message", "shortcut", "message_action"):
        return "action"
    if kind == "event_callback":
        return "event"
    return "other"


def timed(observe: Callable[[float], None]) -> Callable[[], None]:
    """Start a timer; the returned function stops it and observes the seconds."""
    started = time.perf_counter()
    return lambda: observe(time.perf_counter() - started)
