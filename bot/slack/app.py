"""create_app(settings, deps) -> Bolt App, and the whole ID -> handler map (ROUTES).

Handlers are module-level functions in bot/slack/listeners/; a button's is wrapped in
``button`` and a form's in ``form`` (bot/slack/listeners/interactions.py), which ack, read the
request id and word a refusal. Each finds the Slack edge's dependencies (bot.slack.deps) in
Bolt's context, where a middleware puts them for every request. Nothing here runs at import
time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse

from bot.domain import correlation
from bot.metrics import Metrics, ack_kind
from bot.settings import Settings
from bot.slack import ids
from bot.slack.deps import DEPS_KEY, SlackDeps
from bot.slack.listeners import actions, bulk, commands, events, step, views
from bot.slack.listeners.interactions import button, form
from bot.slack.step import STEP_CALLBACK_ID

log = logging.getLogger(__name__)

# Put in a request's Bolt context by bot.slack.server.SlackEventsHandler once the request's
# signature checked out, before its body was parsed. An HTTP request without it is refused
# here, before any middleware or listener sees it (Socket Mode's come over an authenticated
# websocket and carry no signature).
SIGNATURE_VERIFIED = "verify_email_signature_verified"


@dataclass(frozen=True)
class Route:
    """Slack sends ``kind`` with this ``id`` (a command, a callback_id, an action_id): call
    ``handler``."""

    kind: Literal["command", "view", "action", "event", "function"]
    id: str
    handler: Callable[..., None]
    what: str


ROUTES: tuple[Route, ...] = (
    Route("command", ids.COMMAND, commands.verify_email_command, "opens REQUEST_VIEW (BULK_VIEW)"),
    Route(
        "view",
        ids.REQUEST_VIEW,
        form(views.request_submitted, ids.EMAIL_BLOCK, about_request=False),
        "stores and posts a request",
    ),
    Route(
        "view",
        ids.BULK_VIEW,
        form(bulk.bulk_submitted, ids.BULK_LIST_BLOCK, about_request=False),
        "reads the list (pasted, attached), stores and posts a bulk request",
    ),
    Route(
        "action", ids.APPROVE_ACTION, button(actions.approve_clicked), "claims, calls the provider"
    ),
    Route("action", ids.REJECT_ACTION, button(actions.reject_clicked), "opens REJECT_VIEW"),
    Route("action", ids.RETRY_ACTION, button(actions.retry_clicked), "unknown -> executing again"),
    Route(
        "view",
        ids.REJECT_VIEW,
        form(views.reject_submitted, ids.REJECT_REASON_BLOCK),
        "rejects the request",
    ),
    Route(
        "action", ids.CANCEL_ACTION, button(actions.cancel_clicked), "the requester withdraws it"
    ),
    Route(
        "action", ids.CHECK_ACTION, button(actions.check_clicked), "reads the provider's view again"
    ),
    Route("action", ids.RESOLVE_ACTION, button(actions.resolve_clicked), "opens RESOLVE_VIEW"),
    Route(
        "view",
        ids.RESOLVE_VIEW,
        form(views.resolve_submitted, ids.RESOLVE_NOTE_BLOCK),
        "unknown -> resolved",
    ),
    Route("event", "app_home_opened", events.home_opened, "publishes the Home tab"),
    Route(
        "function",
        STEP_CALLBACK_ID,
        step.step_executed,
        "a Workflow Builder step: makes the request (or fails the run)",
    ),
)


class SlackApp(App):
    """Bolt's App, whose dispatch (every request from Slack, in HTTP mode and in Socket Mode
    alike, returning once the listener has acked) refuses an HTTP request whose signature was
    not verified, times the acknowledgement, and binds the correlation fields
    (bot.domain.correlation) in the thread the request arrived on, once it is known to be
    Slack's. The listener pool runs each listener in a copy of this context (ContextExecutor)."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        if req.mode != "socket_mode" and req.context.get(SIGNATURE_VERIFIED) is not True:
            log.warning("Refused an HTTP request whose signature was not verified")
            return BoltResponse(status=401, body={"error": "invalid request"})
        started = time.perf_counter()
        body = req.body if isinstance(req.body, dict) else {}
        fields = {"team": req.context.team_id, "user": req.context.user_id, "action": _what(body)}
        try:
            with correlation.bound(request_id=None, provider_request_id=None, **fields):
                return super().dispatch(req)
        finally:
            self.metrics.acked(ack_kind(body), time.perf_counter() - started)


def create_app(settings: Settings, deps: SlackDeps) -> App:
    signing_secret = settings.SLACK_SIGNING_SECRET
    app = SlackApp(
        deps.metrics,
        client=deps.client,
        signing_secret=signing_secret.get_secret_value() if signing_secret else None,
        # Off: bot.slack.server verifies each HTTP request's signature before anything parses it
        # (Bolt's own check parsed first, and logged the whole body of a request it refused);
        # SlackApp.dispatch refuses a request that was not. Socket Mode messages arrive over
        # an authenticated websocket and carry no signature.
        request_verification_enabled=False,
        # auth.test once at start: a bad token stops start-up instead of the first request.
        token_verification_enabled=True,
        listener_executor=deps.executor,
    )

    @app.middleware
    def provide_deps(context: BoltContext, next: Callable[[], None]) -> None:
        context[DEPS_KEY] = deps
        next()

    def step(callback_id: str) -> Callable[..., Any]:
        # Acknowledged by the listener once what it asks is stored (a request, or the run's
        # failure): a replica that dies before leaves Slack to deliver the event again.
        return app.function(callback_id, auto_acknowledge=False)

    registers: dict[str, Callable[..., Any]] = {
        "command": app.command,
        "view": app.view,
        "action": app.action,
        "event": app.event,
        "function": step,
    }
    for route in ROUTES:
        registers[route.kind](route.id)(route.handler)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Bodies carry user text but no secrets; the type names what failed.
        kind = body.get("type") or body.get("command") or "request"
        log.error("Unhandled error while handling %s", kind, exc_info=error)

    return app


def _what(body: dict[str, Any]) -> str | None:
    """The command, action_id, callback_id or event type Slack sent, for the logs."""
    if isinstance(body.get("command"), str):
        return str(body["command"])
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        action_id = actions[0].get("action_id")
        return action_id if isinstance(action_id, str) else None
    view = body.get("view")
    if body.get("type") == "view_submission" and isinstance(view, dict):
        callback = view.get("callback_id")
        return callback if isinstance(callback, str) else None
    event = body.get("event")
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return str(event["type"])
    return None
