"""The bot's dependencies, built once at the edge and passed in: ``build_services(settings)``.

Nothing here runs at import time. Listeners reach what the Slack edge needs through Bolt's
context (``Services.slack_deps``, see bot/slack/app.py), the command line and the tests through
the returned :class:`Services`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web import SlackResponse

from bot.domain import correlation
from bot.domain.policy import DEFAULT_BULK_APPROVALS, Policy, load_policy
from bot.domain.service import ApprovalPolicy, Approvals
from bot.maintenance import Maintenance, interrupted_bound, lease_seconds
from bot.metrics import Metrics
from bot.provider.client import HostupClient
from bot.runner import BatchRunner
from bot.settings import Settings
from bot.slack.deps import SlackDeps
from bot.slack.home import Home
from bot.slack.notices import KINDS, notices_for
from bot.slack.notifier import Notifier
from bot.slack.outbox import Outbox
from bot.slack.roles import Roles
from bot.slack.step_failures import StepFailures
from bot.store import BaseSQLStore, StoreError, open_store

log = logging.getLogger(__name__)

# Bolt's sync App runs listeners on a 5-thread pool by default, and the HTTP thread waits for
# the listener's ack(): five slow approvals would hold every thread and delay every ack. Each
# approval holds a listener thread for one provider call (at most HOSTUP_TIMEOUT, 15 s by
# default), so the pool is sized for a busy burst of clicks, not for CPU.
LISTENER_THREADS = 64
DELIVERY_THREADS = 16
SLACK_TIMEOUT = 10  # seconds for one Slack Web API call
SLACK_RATE_LIMIT_RETRIES = 3


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context variables, so the
    correlation fields bound where Slack's request arrived (bot.domain.correlation) follow it
    into the listener thread, and nothing a task binds outlives it."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class MeteredWebClient(WebClient):
    """slack_sdk's client, counting every Web API call by method and error for the metrics."""

    observe: Callable[[str, str], None] | None = None

    def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> SlackResponse:
        error = "ok"
        try:
            return super().api_call(api_method, *args, **kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            if self.observe is not None:
                self.observe(api_method, error)


class OutboxDelivery:
    """The service's Delivery port: the outbox, now or alongside on a pool of its own (a
    listener waits on it, so it must never queue behind listeners); then the Home tabs of
    those who have it open."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor
        self.outbox: Outbox | None = None  # set once built: the outbox needs the service too
        self.home: Home | None = None

    def deliver(self, request_id: str) -> None:
        with correlation.bound(request_id=request_id):
            self._outbox().deliver(request_id)
            if self.home is not None:
                self.home.refresh(request_id)

    def deliver_alongside(self, request_id: str, after: float = 0.0) -> Callable[[], None]:
        finished = threading.Event()

        def deliver_later() -> None:
            finished.wait(after)  # the caller's work done first: nothing to wait for
            self._outbox().deliver(request_id)

        future = self.executor.submit(deliver_later)

        def finish() -> None:
            finished.set()
            future.result()

        return finish

    def _outbox(self) -> Outbox:
        if self.outbox is None:
            raise RuntimeError("OutboxDelivery used before its outbox was set")
        return self.outbox


@dataclass
class Services:
    settings: Settings
    client: WebClient
    store: BaseSQLStore
    provider: HostupClient
    roles: Roles
    approvals: Approvals
    notifier: Notifier
    outbox: Outbox
    home: Home
    maintenance: Maintenance
    # Runs approved bulk requests' items (started by serve; tests and the sandbox drain it).
    runner: BatchRunner
    # Fails a Workflow Builder step run whose request could not be made, durably.
    step_failures: StepFailures
    # Runs Bolt's listeners; see LISTENER_THREADS.
    executor: ThreadPoolExecutor
    # Sends the "calling the provider…" update while a listener calls the provider.
    delivery_executor: ThreadPoolExecutor
    metrics: Metrics
    # Publishes the Home tabs kept current (bot.slack.home), off the listeners' threads.
    home_executor: ThreadPoolExecutor | None = None
    # Socket Mode: whether the websocket to Slack is up (set once connected; HTTP: None).
    slack_connected: Callable[[], bool] | None = None

    def slack_deps(self) -> SlackDeps:
        """What the Slack app (bot.slack.app.create_app) and its listeners use of these."""
        return SlackDeps(
            approvals=self.approvals,
            notifier=self.notifier,
            home=self.home,
            client=self.client,
            metrics=self.metrics,
            executor=self.executor,
            step_failures=self.step_failures,
        )

    def healthy(self) -> bool:
        """What /healthz reports: the process serves, so True; nothing else is asked. It is
        cheap on purpose (a liveness probe restarts what fails it, and restarting cannot fix a
        store that is down): the store and Slack's connection are for :meth:`ready`."""
        return True

    def store_answers(self) -> bool:
        """True when the store can be written now (a ping, in a write transaction)."""
        try:
            self.store.ping()
        except StoreError as exc:
            log.warning("Readiness check: store unavailable: %s", exc)
            return False
        return True

    def ready(self) -> dict[str, bool]:
        """What /readyz reports: the store answers and (Socket Mode) Slack's connection is up."""
        checks = {"store": self.store_answers()}
        if self.slack_connected is not None:
            checks["slack"] = self.slack_connected()
        return checks

    def close(self) -> None:
        """Let in-flight listeners (an approval mid-call) finish, then close the clients."""
        self.maintenance.stop()
        self.runner.stop()
        self.executor.shutdown(wait=True)
        self.delivery_executor.shutdown(wait=True)
        if self.home_executor is not None:
            self.home_executor.shutdown(wait=True)
        self.provider.close()
        self.store.close()


def slack_client(settings: Settings, metrics: Metrics | None = None) -> WebClient:
    client = MeteredWebClient(
        token=settings.SLACK_BOT_TOKEN.get_secret_value(),
        base_url=settings.SLACK_API_URL,
        timeout=SLACK_TIMEOUT,
    )
    # Slack's 429s carry Retry-After; the SDK waits and retries them for us.
    client.retry_handlers.append(
        RateLimitErrorRetryHandler(max_retry_count=SLACK_RATE_LIMIT_RETRIES)
    )
    if metrics is not None:
        client.observe = metrics.slack_call
    return client


def load_rules(settings: Settings) -> Policy | None:
    """The approval rules of POLICY_FILE (None when it is unset: the settings decide); raises
    PolicyError, naming the file's line and the reason, for a file that cannot be used."""
    if settings.POLICY_FILE is None:
        return None
    rules = load_policy(
        settings.POLICY_FILE,
        approvers=settings.APPROVERS,
        approvals_required=settings.APPROVALS_REQUIRED,
        remind_every=settings.REMIND_EVERY,
    )
    log.info(
        "Approval rules from %s (policy %s): %s",
        settings.POLICY_FILE,
        rules.policy_hash,
        ", ".join(rule.name for rule in rules.all_rules),
    )
    return rules


def build_services(settings: Settings) -> Services:
    """The whole bot, wired. Raises PolicyError for a POLICY_FILE that cannot be used (before
    anything is opened), StoreError for a store that cannot be."""
    rules = load_rules(settings)
    metrics = Metrics(enabled=settings.METRICS)
    client = slack_client(settings, metrics)
    store = open_store(settings.DATABASE_URL, announce=notices_for)
    metrics.watch_store(store, kinds=KINDS)
    provider = HostupClient(
        settings.HOSTUP_API_URL,
        settings.HOSTUP_API_KEY.get_secret_value(),
        settings.HOSTUP_TIMEOUT,
        observe=metrics.provider_call,
    )
    roles = Roles(client, settings.APPROVERS, settings.requesters)
    delivery_executor = ContextExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="delivery")
    delivery = OutboxDelivery(delivery_executor)
    approvals = Approvals(
        store,
        provider,
        roles,
        delivery,
        ApprovalPolicy(
            allow_self_approval=settings.ALLOW_SELF_APPROVAL,
            ttl=settings.request_ttl,
            approvals_required=settings.APPROVALS_REQUIRED,
            remind_every=settings.REMIND_EVERY,
            lease=timedelta(
                seconds=lease_seconds(settings.INTERRUPTED_AFTER, provider.attempt_deadline)
            ),
            resend_language=settings.RESEND_LANGUAGE,
            bulk_max=settings.BULK_MAX,
            bulk_approvals_required=(
                rules.bulk_approvals_required if rules is not None else DEFAULT_BULK_APPROVALS
            ),
            bulk_rate=settings.BULK_RATE,
            bulk_concurrency=settings.BULK_CONCURRENCY,
            bulk_progress_every=settings.BULK_PROGRESS_EVERY,
        ),
        rules=rules,
    )
    runner = BatchRunner(approvals, threads=settings.BULK_CONCURRENCY)
    approvals.on_queued = runner.wake
    notifier = Notifier(client, settings.APPROVAL_CHANNEL)
    outbox = Outbox(
        store,
        notifier,
        on_unpostable=approvals.close_unposted,
        clock=lambda: approvals.clock(),
        approvals_required=settings.APPROVALS_REQUIRED,
        approvers=settings.APPROVERS,
    )
    delivery.outbox = outbox
    home_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="home")
    home = Home(
        approvals,
        store,
        client,
        settings.APPROVAL_CHANNEL,
        clock=lambda: approvals.clock(),
        executor=home_executor,
    )
    delivery.home = home
    if 0 < settings.INTERRUPTED_AFTER <= provider.attempt_deadline:
        log.warning(
            "INTERRUPTED_AFTER=%s is a lease no longer than one provider attempt (%.0f s, "
            "HOSTUP_TIMEOUT): a live call can be taken for an interrupted one. Leave it unset "
            "outside soaks and tests.",
            settings.INTERRUPTED_AFTER,
            provider.attempt_deadline,
        )
    step_failures = StepFailures(store, notifier, clock=lambda: approvals.clock())
    maintenance = Maintenance(
        approvals,
        outbox,
        step_failures=step_failures,
        interrupted_after=interrupted_bound(settings.INTERRUPTED_AFTER, provider.max_duration),
        on_round=metrics.maintenance_round,
    )
    executor = ContextExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener")
    return Services(
        settings,
        client,
        store,
        provider,
        roles,
        approvals,
        notifier,
        outbox,
        home,
        maintenance,
        runner,
        step_failures,
        executor,
        delivery_executor,
        metrics,
        home_executor,
    )
