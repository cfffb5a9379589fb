"""Handlers called directly, as Bolt would call them (the ones ROUTES registers, wrappers and
all): ack first, one service call, the answer handed back; and the route table covers every
ID the bot defines, and so every one its own Block Kit carries."""

from __future__ import annotations

import json
from collections.abc import Callable
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
from bot.slack.deps import DEPS_KEY, SlackDeps
from bot.slack.manifest import BOT_EVENTS
from bot.slack.step import STEP_CALLBACK_ID

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


class FakeNotifier:
    """Records DMs and permalink lookups; the request message's link is ``PERMALINK``."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def dm(self, user_id: str, text: str) -> None:
        self.log.append(("dm", {"user": user_id, "text": text}))

    def permalink(self, request: VerificationRequest) -> str:
        self.log.append(("permalink", {"id": request.id}))
        return PERMALINK


PERMALINK = "https://slack.invalid/archives/C1/p1"


def context(approvals: Any, notifier: Any = None) -> BoltContext:
    unused: Any = None
    deps = SlackDeps(
        approvals=approvals,
        notifier=notifier,
        home=unused,
        client=unused,
        metrics=unused,
        executor=unused,
        step_failures=unused,
    )
    return BoltContext({DEPS_KEY: deps})


def handler(kind: str, id: str) -> Callable[..., None]:
    """What ROUTES registers with Bolt for ``kind`` ``id``."""
    [route] = [r for r in ROUTES if (r.kind, r.id) == (kind, id)]
    return route.handler


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
        for action_id in (ids.APPROVE_ACTION, ids.RETRY_ACTION, ids.REJECT_ACTION):
            log.clear()
            handler("action", action_id)(
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
    handler("action", ids.APPROVE_ACTION)(
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
    handler("action", ids.RETRY_ACTION)(
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
    handler("view", ids.REJECT_VIEW)(
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
    handler("command", ids.COMMAND)(
        ack=RecordingAck(log),
        body={"text": "help", "user_id": "U0REQ", "trigger_id": "1.2.3"},
        respond=RecordingRespond(log),
        context=context(FakeApprovals(log)),
    )
    assert log == [("ack", {"text": blocks.HELP_TEXT, "response_type": "ephemeral"})]


class Refusing:
    """Approvals double: each method named in ``refusals`` raises its refusal, any other
    returns ``returns``; every call is recorded."""

    def __init__(self, log: Log, returns: Any = None, **refusals: Refused) -> None:
        self.log = log
        self.returns = returns
        self.refusals = refusals

    def __getattr__(self, name: str) -> Any:
        def decide(*args: Any) -> Any:
            self.log.append((f"approvals.{name}", {"args": args}))
            if name in self.refusals:
                raise self.refusals[name]
            return self.returns

        return decide


def reject_form() -> dict[str, Any]:
    return {
        "private_metadata": json.dumps({"request_id": REQUEST_ID}),
        "state": {"values": {ids.REJECT_REASON_BLOCK: {ids.REJECT_REASON_INPUT: {"value": "no"}}}},
    }


def request_form(email: str = "alice@example.com") -> dict[str, Any]:
    return {
        "state": {
            "values": {
                ids.EMAIL_BLOCK: {ids.EMAIL_INPUT: {"value": email}},
                ids.REASON_BLOCK: {ids.REASON_INPUT: {"value": "T-1"}},
            }
        }
    }


def test_a_form_refused_before_its_ack_shows_a_field_error_and_after_it_a_dm() -> None:
    """The reject form: a refusal from the read-only check keeps the form open with the
    refusal, in plain text, under the field; one from the decision, after the ack, is a DM."""
    log: Log = []
    decided = Refused(Refusal.ALREADY_DECIDED, request(state=State.SUCCEEDED, decided_by="U0ANA"))
    approvals = Refusing(log, rejectable=decided)
    reject = handler("view", ids.REJECT_VIEW)
    body = {"user": {"id": "U0APP"}}
    reject(ack=RecordingAck(log), body=body, view=reject_form(), context=context(approvals))
    assert log == [
        ("approvals.rejectable", {"args": (REQUEST_ID,)}),
        (
            "ack",
            {
                "response_action": "errors",
                "errors": {ids.REJECT_REASON_BLOCK: "This request is already succeeded."},
            },
        ),
    ]
    log.clear()
    approvals = Refusing(log, reject=Refused(Refusal.NOT_AN_APPROVER))
    notifier = FakeNotifier(log)
    reject(
        ack=RecordingAck(log), body=body, view=reject_form(), context=context(approvals, notifier)
    )
    assert [name for name, _ in log] == ["approvals.rejectable", "ack", "approvals.reject", "dm"]
    assert log[1][1] == {} and log[2][1]["args"] == (REQUEST_ID, "U0APP", "no")
    assert log[3][1] == {"user": "U0APP", "text": f":warning: {blocks.NOT_AN_APPROVER_TEXT}"}


def test_an_open_request_elsewhere_is_a_field_error_and_a_dm_with_its_link() -> None:
    """The request form for an email with an open request: a field error saying a link was
    sent, then the DM with the open request's permalink; when the submit finds it (a race),
    after the ack, the same DM. The DM points to the request; it is not a warning."""
    log: Log = []
    existing = request(channel="C1", message_ts="1.2")
    open_request = Refused(Refusal.OPEN_REQUEST, existing)
    submitted = handler("view", ids.REQUEST_VIEW)
    body = {"user": {"id": "U0REQ"}}
    pointer = {"user": "U0REQ", "text": blocks.open_request_text(existing, PERMALINK)}
    assert "|the open request>" in pointer["text"] and ":warning:" not in pointer["text"]

    approvals = Refusing(log, askable=open_request)
    submitted(
        ack=RecordingAck(log),
        body=body,
        view=request_form(),
        context=context(approvals, FakeNotifier(log)),
    )
    errors = {ids.EMAIL_BLOCK: blocks.OPEN_REQUEST_ERROR}
    assert log == [
        ("approvals.askable", {"args": ("alice@example.com",)}),
        ("ack", {"response_action": "errors", "errors": errors}),
        ("permalink", {"id": REQUEST_ID}),
        ("dm", pointer),
    ]
    assert "I have sent you a link to it" in blocks.OPEN_REQUEST_ERROR

    log.clear()
    approvals = Refusing(log, submit=open_request)
    submitted(
        ack=RecordingAck(log),
        body=body,
        view=request_form(),
        context=context(approvals, FakeNotifier(log)),
    )
    assert [name for name, _ in log] == [
        "approvals.askable",
        "approvals.rule_for",
        "ack",
        "approvals.submit",
        "permalink",
        "dm",
    ]
    assert log[2][1] == {} and log[-1][1] == pointer


def test_the_command_for_an_email_with_an_open_request_answers_with_its_link() -> None:
    """/verify-email EMAIL when EMAIL has an open request: ack, then a private answer with
    the open request's permalink (no form)."""
    log: Log = []
    existing = request(channel="C1", message_ts="1.2")
    approvals = Refusing(log, may_ask=Refused(Refusal.OPEN_REQUEST, existing))
    handler("command", ids.COMMAND)(
        ack=RecordingAck(log),
        body={"text": "alice@example.com", "user_id": "U0REQ", "trigger_id": "1.2.3"},
        respond=RecordingRespond(log),
        context=context(approvals, FakeNotifier(log)),
    )
    text = blocks.open_request_text(existing, PERMALINK)
    assert log == [
        ("ack", {}),
        ("approvals.may_ask", {"args": ("U0REQ", "alice@example.com")}),
        ("permalink", {"id": REQUEST_ID}),
        ("respond", {"text": text, "response_type": "ephemeral"}),
    ]


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


# What a constant of bot.slack.ids is, by its name: (kind, id) to route, or not routed at all.
ROUTED_SUFFIXES = {"_ACTION": "action", "_VIEW": "view"}
NOT_ROUTED_SUFFIXES = ("_BLOCK", "_INPUT")


def _defined_ids() -> set[tuple[str, str]]:
    """(kind, id) of the command and every button and modal ID in bot.slack.ids, read from
    its constants; a constant of a kind this does not know fails the test, so a new kind of ID
    cannot slip by unrouted."""
    defined: set[tuple[str, str]] = set()
    for name, value in vars(ids).items():
        if not name.isupper() or name.startswith("_") or name == "MAX_BLOCK_ID":
            continue  # functions, imports, the limit
        if name == "COMMAND":
            defined.add(("command", value))
            continue
        kinds = [kind for suffix, kind in ROUTED_SUFFIXES.items() if name.endswith(suffix)]
        if kinds:
            defined.add((kinds[0], value))
        else:
            assert name.endswith(NOT_ROUTED_SUFFIXES), f"ids.{name}: route it, or say why not"
    return defined


def test_every_id_the_bot_defines_is_routed() -> None:
    """Every command, button and modal ID in bot.slack.ids has a handler in ROUTES, and so
    does every event the manifest subscribes to and the step it declares; ROUTES routes
    nothing else and names nothing twice; and each button and modal the builders make carries
    one of those IDs."""
    # The manifest's bot_events, and its functions (function_executed is routed by the step's
    # callback_id, as Bolt's app.function routes it).
    defined = (
        _defined_ids()
        | {("event", e) for e in BOT_EVENTS if e != "function_executed"}
        | {("function", STEP_CALLBACK_ID)}
    )
    assert ("action", ids.APPROVE_ACTION) in defined and ("view", ids.REJECT_VIEW) in defined
    routed = {(r.kind, r.id) for r in ROUTES}
    assert defined == routed
    assert len(ROUTES) == len(routed)
    made = (
        blocks.request_message(request())[1],
        blocks.result_reply(request(state=State.UNKNOWN, outcome=Interrupted()))[1],
        blocks.request_modal("alice@example.com"),
        blocks.reject_modal(request()),
        blocks.resolve_modal(request(state=State.UNKNOWN)),
        blocks.submitted_dm(request(), "C1")[1],
    )
    shown = set().union(*(_interactive_ids(m) for m in made))
    assert shown <= defined, shown - defined
