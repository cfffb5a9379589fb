"""Handlers called directly, as Bolt would call them: ack first, one service call, the answer
handed back; and the route table covers every ID the bot's own Block Kit carries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from doubles import make_request
from slack_bolt import Ack, BoltContext, BoltResponse, Respond
from slack_sdk.webhook import WebhookResponse

from bot.domain.model import State, VerificationRequest
from bot.domain.outcomes import Interrupted
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks, ids
from bot.slack.app import ROUTES
from bot.slack.listeners import SERVICES_KEY, actions, commands, views
from bot.slack.manifest import BOT_EVENTS

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
REQUEST_ID = "0123456789abcdef"


Log = list[tuple[str, dict[str, Any]]]


class RecordingAck(Ack):
    """Bolt's ack, recording each call's keyword arguments in a log shared with the others
    (so "ack came first" can be checked)."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        self.log.append(("ack", kwargs))
        return BoltResponse(status=200, body="")


class RecordingRespond(Respond):
    """Bolt's respond, recording instead of posting to a response_url."""

    def __init__(self, log: Log) -> None:
        super().__init__(response_url=None)
        self.log = log

    def __call__(self, *args: Any, **kwargs: Any) -> WebhookResponse:
        self.log.append(("respond", kwargs))
        return WebhookResponse(url="", status_code=200, body="", headers={})


class FakeApprovals:
    """Answers every decision by raising ``refusal`` (or returns ``result``); records calls."""

    def __init__(self, log: Log, refusal: Refused | None = None) -> None:
        self.log = log
        self.refusal = refusal

    def __getattr__(self, name: str) -> Any:
        def decide(*args: Any) -> Any:
            self.log.append((f"approvals.{name}", {"args": args}))
            if self.refusal is not None:
                raise self.refusal
            return None

        return decide


def request(**changes: Any) -> VerificationRequest:
    return make_request(**{"id": REQUEST_ID, "created_at": T0, **changes})


def context(approvals: Any) -> BoltContext:
    return BoltContext({SERVICES_KEY: SimpleNamespace(approvals=approvals)})


def click(value: object) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {
        "user": {"id": "U0APP"},
        "trigger_id": "1.2.3",
        "response_url": "https://hooks.slack.invalid/actions/T1/1/x",
    }
    return body, {"action_id": ids.APPROVE_ACTION, "value": value}


def test_a_button_naming_no_request_is_answered_without_the_service() -> None:
    """A tampered or foreign button value: ack, then a private answer; nothing decided."""
    for value in ("../etc", "", None, 12, "0123456789ABCDEF", {"id": REQUEST_ID}):
        log: Log = []
        body, action = click(value)
        for handler in (actions.approve_clicked, actions.retry_clicked, actions.reject_clicked):
            log.clear()
            handler(
                ack=RecordingAck(log),
                body=body,
                action=action,
                respond=RecordingRespond(log),
                context=context(FakeApprovals(log)),
            )
            assert [name for name, _ in log] == ["ack", "respond"]
            answer = log[1][1]
            assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
            assert blocks.UNKNOWN_BUTTON_TEXT in answer["text"]


def test_approve_acks_first_then_asks_the_service_once_and_words_its_refusal() -> None:
    """Approve: ack, one service call with the request and the clicker, and a refusal said
    privately in the words of blocks.refusal_words."""
    log: Log = []
    refused = Refused(Refusal.ALREADY_DECIDED, request(state=State.SUCCEEDED, decided_by="U0ANA"))
    body, action = click(REQUEST_ID)
    actions.approve_clicked(
        ack=RecordingAck(log),
        body=body,
        action=action,
        respond=RecordingRespond(log),
        context=context(FakeApprovals(log, refused)),
    )
    assert [name for name, _ in log] == ["ack", "approvals.approve", "respond"]
    assert log[1][1]["args"] == (REQUEST_ID, "U0APP")
    assert log[2][1]["text"] == ":warning: This request is already succeeded by <@U0ANA>."


def test_retry_rewrites_the_reply_that_offered_it() -> None:
    """A Retry that went ahead replaces the reply it was clicked in: no Retry button there
    any more, and who retried."""
    log: Log = []
    before = request(state=State.UNKNOWN, decided_by="U0ANA", outcome=Interrupted())

    class Approvals:
        def retry(self, request_id: str, approver: str) -> Any:
            return SimpleNamespace(before=before, after=before)

    body, action = click(REQUEST_ID)
    actions.retry_clicked(
        ack=RecordingAck(log),
        body=body,
        action=action,
        respond=RecordingRespond(log),
        context=context(Approvals()),
    )
    [(_, ack), (_, answer)] = log
    assert ack == {} and answer["replace_original"] is True
    rendered = json.dumps(answer["blocks"])
    assert ids.RETRY_ACTION not in rendered and "Retried by <@U0APP>" in rendered


def test_reject_modal_with_bad_metadata_gets_a_field_error() -> None:
    """A reject form whose metadata names no request is answered with a field error."""
    log: Log = []
    view = {"private_metadata": "not json", "state": {"values": {}}}
    views.reject_submitted(
        ack=RecordingAck(log),
        body={"user": {"id": "U0APP"}},
        view=view,
        context=context(FakeApprovals(log)),
    )
    assert log == [
        (
            "ack",
            {"response_action": "errors", "errors": {ids.REJECT_REASON_BLOCK: "Unknown request."}},
        )
    ]


def test_help_is_the_ack_itself() -> None:
    """/verify-email help: the usage is the acknowledgement; nothing else happens."""
    log: Log = []
    commands.verify_email_command(
        ack=RecordingAck(log),
        body={"text": "help", "user_id": "U0REQ", "trigger_id": "1.2.3"},
        respond=RecordingRespond(log),
        context=context(FakeApprovals(log)),
    )
    assert log == [("ack", {"text": blocks.HELP_TEXT, "response_type": "ephemeral"})]


def _interactive_ids(value: object) -> set[tuple[str, str]]:
    """(kind, id) of every action and view the bot's own Block Kit lets a person trigger."""
    found: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        if value.get("type") == "modal" and "callback_id" in value:
            found.add(("view", value["callback_id"]))
        if value.get("type") == "button":
            found.add(("action", value["action_id"]))
        for child in value.values():
            found |= _interactive_ids(child)
    elif isinstance(value, list):
        for child in value:
            found |= _interactive_ids(child)
    return found


def test_every_id_the_bot_shows_is_routed() -> None:
    """Each button and modal the builders make has a handler in ROUTES, and so do the slash
    command and every event the manifest subscribes to; ROUTES names nothing twice."""
    made = (
        blocks.request_message(request())[1],
        blocks.result_reply(request(state=State.UNKNOWN, outcome=Interrupted()))[1],
        blocks.request_modal("alice@example.com"),
        blocks.reject_modal(request()),
        blocks.resolve_modal(request(state=State.UNKNOWN)),
        blocks.submitted_dm(request(), "C1")[1],
    )
    subscribed = {("event", e) for e in BOT_EVENTS}  # the manifest's bot_events
    shown = set().union(*(_interactive_ids(m) for m in made)) | {("command", ids.COMMAND)}
    shown |= subscribed
    routed = {(r.kind, r.id) for r in ROUTES}
    assert shown == routed
    assert len(ROUTES) == len(routed)
