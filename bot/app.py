"""create_app(settings, services) -> Bolt App, and the whole ID -> handler map.

Dependencies (Slack client, store, provider client, role checker) are built once, at the edge,
by ``build_services`` and passed in: nothing here runs at import time.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot import ids
from bot.approvals import ApprovalPolicy, Approvals, Store
from bot.hostup import HostupClient
from bot.listeners import actions, commands, views
from bot.maintenance import Maintenance
from bot.notify import Notifier
from bot.outbox import Outbox
from bot.roles import Roles
from bot.settings import Settings
from bot.store import StoreError, open_store

log = logging.getLogger(__name__)

# Bolt's sync App runs listeners on a 5-thread pool by default, and the HTTP thread waits for
# the listener's ack(): five slow approvals would hold every thread and delay every ack. Each
# approval holds a listener thread for one provider call (at most HOSTUP_TIMEOUT, 15 s by
# default), so the pool is sized for a busy burst of clicks, not for CPU.
LISTENER_THREADS = 64
DELIVERY_THREADS = 16
SLACK_TIMEOUT = 10  # seconds for one Slack Web API call
SLACK_RATE_LIMIT_RETRIES = 3


@dataclass
class Services:
    settings: Settings
    client: WebClient
    store: Store
    provider: HostupClient
    roles: Roles
    approvals: Approvals
    notifier: Notifier
    outbox: Outbox
    maintenance: Maintenance
    # Runs Bolt's listeners; see LISTENER_THREADS.
    executor: ThreadPoolExecutor
    # Sends the "calling the provider…" update while the listener calls the provider. Its own
    # pool: a listener waits on it, so it must never queue behind listeners.
    delivery_executor: ThreadPoolExecutor

    def healthy(self) -> bool:
        """True when the store answers: without it no request can be taken or approved."""
        try:
            self.store.ping()
        except StoreError as exc:
            log.warning("Health check: store unavailable: %s", exc)
            return False
        return True

    def close(self) -> None:
        """Let in-flight listeners (an approval mid-call) finish, then close the clients."""
        self.maintenance.stop()
        self.executor.shutdown(wait=True)
        self.delivery_executor.shutdown(wait=True)
        self.provider.close()
        self.store.close()


def slack_client(settings: Settings) -> WebClient:
    client = WebClient(
        token=settings.SLACK_BOT_TOKEN.get_secret_value(),
        base_url=settings.SLACK_API_URL,
        timeout=SLACK_TIMEOUT,
    )
    # Slack's 429s carry Retry-After; the SDK waits and retries them for us.
    client.retry_handlers.append(
        RateLimitErrorRetryHandler(max_retry_count=SLACK_RATE_LIMIT_RETRIES)
    )
    return client


def build_services(settings: Settings) -> Services:
    client = slack_client(settings)
    store = open_store(settings.DATABASE_URL)
    provider = HostupClient(
        settings.HOSTUP_API_URL,
        settings.HOSTUP_API_KEY.get_secret_value(),
        settings.HOSTUP_TIMEOUT,
    )
    roles = Roles(client, settings.APPROVERS, settings.requesters)
    approvals = Approvals(
        store,
        provider,
        ApprovalPolicy(allow_self_approval=settings.ALLOW_SELF_APPROVAL, ttl=settings.request_ttl),
    )
    notifier = Notifier(client, store, settings.APPROVAL_CHANNEL)
    outbox = Outbox(store, notifier, clock=lambda: approvals.clock())
    maintenance = Maintenance(approvals, outbox, max_call_seconds=provider.max_duration)
    executor = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener")
    return Services(
        settings,
        client,
        store,
        provider,
        roles,
        approvals,
        notifier,
        outbox,
        maintenance,
        executor,
        ThreadPoolExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="delivery"),
    )


def create_app(settings: Settings, services: Services) -> App:
    signing_secret = settings.SLACK_SIGNING_SECRET
    app = App(
        client=services.client,
        signing_secret=signing_secret.get_secret_value() if signing_secret else None,
        # Socket Mode messages arrive over an authenticated websocket and carry no signature.
        request_verification_enabled=not settings.socket_mode,
        # auth.test once at start: a bad token stops start-up instead of the first request.
        token_verification_enabled=True,
        listener_executor=services.executor,
    )

    # The whole ID -> handler map:
    #   command  /verify-email           -> commands.verify_email_command (opens REQUEST_VIEW)
    #   view     REQUEST_VIEW            -> views.request_submitted
    #   action   APPROVE_ACTION          -> actions.approve_clicked
    #   action   REJECT_ACTION           -> actions.reject_clicked (opens REJECT_VIEW)
    #   action   RETRY_ACTION            -> actions.retry_clicked (unknown -> executing)
    #   view     REJECT_VIEW             -> views.reject_submitted
    commands.register(app, services, ids.COMMAND)
    views.register(app, services)
    actions.register(app, services)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Bodies carry user text but no secrets; the type names what failed.
        kind = body.get("type") or body.get("command") or "request"
        log.error("Unhandled error while handling %s", kind, exc_info=error)

    return app
