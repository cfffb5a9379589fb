"""The request form's operation and the rules, handled as Bolt calls the handlers: the choice
is untrusted (only confirm or resend), the rules are asked before the ack (an operation they
do not allow, or a reason their pattern refuses, keeps the form open with a field error), and
``/verify-email resend EMAIL`` opens the form with the resend chosen and only what the rules
allow offered."""

from __future__ import annotations

from typing import Any

from doubles import make_request
from slack_bolt import Ack, BoltContext, BoltResponse, Respond
from slack_sdk.webhook import WebhookResponse

from bot.domain.model import Operation, RuleTerms
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks, ids
from bot.slack.app import ROUTES
from bot.slack.deps import DEPS_KEY, SlackDeps
from bot.slack.listeners.views import CHOOSE_OPERATION

Log = list[tuple[str, Any]]
TICKETS = RuleTerms(
    name="default",
    policy_hash="0123456789ab",
    approvers=("S0LEADS",),
    approvals_required=1,
    reason_pattern=r"^(TICKET|ZD)-\d+",
)


class Recorder(Ack, Respond):
    """Bolt's ack and respond, recording each call in a shared log."""

    def __init__(self, log: Log, name: str) -> None:
        self.log = log
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.log.append((self.name, kwargs))
        if self.name == "ack":
            return BoltResponse(status=200, body="")
        return WebhookResponse(url="", status_code=200, body="", headers={})


class Rules:
    """Approvals double: ``rule_for`` answers from ``terms`` (refusing the operations in
    ``refused``), ``submit`` returns a request; every call is recorded."""

    def __init__(
        self,
        log: Log,
        terms: RuleTerms | None = None,
        refused: tuple[Operation, ...] = (),
    ) -> None:
        self.log = log
        self.terms = terms
        self.refused = refused

    def rule_for(self, email: str, user: str, operation: Operation) -> RuleTerms | None:
        self.log.append(("rule_for", (email, user, operation)))
        if operation in self.refused:
            raise Refused(Refusal.OPERATION_NOT_ALLOWED)
        return self.terms

    def submit(self, email: str, reason: str, user: str, operation: Operation) -> Any:
        self.log.append(("submit", (email, reason, user, operation)))
        return make_request(email=email, operation=operation)

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> None:
            self.log.append((name, args))

        return call


class Client:
    """Bolt's WebClient, as far as views.open goes."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def views_open(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        self.log.append(("views_open", view))


def context(approvals: Any, client: Any = None) -> BoltContext:
    unused: Any = None
    deps = SlackDeps(
        approvals=approvals,
        notifier=unused,
        home=unused,
        client=client,
        metrics=unused,
        executor=unused,
        step_failures=unused,
    )
    return BoltContext({DEPS_KEY: deps})


def handler(kind: str, id: str) -> Any:
    [route] = [r for r in ROUTES if (r.kind, r.id) == (kind, id)]
    return route.handler


def form(operation: object, reason: str = "TICKET-9 locked out") -> dict[str, Any]:
    """The request form's state as Slack sends it, ``operation`` the chosen option's value
    (any value: a tampered payload); ``...`` sends no operation block at all."""
    values: dict[str, Any] = {
        ids.EMAIL_BLOCK: {ids.EMAIL_INPUT: {"value": "alice@example.com"}},
        ids.REASON_BLOCK: {ids.REASON_INPUT: {"value": reason}},
    }
    if operation is not ...:
        chosen = None if operation is None else {"value": operation}
        values[ids.OPERATION_BLOCK] = {
            ids.OPERATION_INPUT: {"type": "radio_buttons", "selected_option": chosen}
        }
    return {"state": {"values": values}}


def submit(view: dict[str, Any], approvals: Rules, log: Log) -> None:
    handler("view", ids.REQUEST_VIEW)(
        ack=Recorder(log, "ack"),
        body={"user": {"id": "U0REQ"}},
        view=view,
        context=context(approvals),
    )


def test_the_chosen_operation_is_asked_of_the_rules_and_submitted() -> None:
    """Resend chosen: the rules are asked for it before the ack, then the request is
    submitted with it and looked up."""
    log: Log = []
    submit(form("resend"), Rules(log), log)
    names = [name for name, _ in log]
    assert names == ["askable", "rule_for", "ack", "submit", "look_up"]
    assert log[1][1] == ("alice@example.com", "U0REQ", Operation.RESEND)
    assert log[3][1][3] is Operation.RESEND and log[2][1] == {}


def test_an_operation_that_is_not_offered_is_a_field_error() -> None:
    """A tampered or missing choice (anything but confirm and resend) keeps the form open
    with a field error on the operation; nothing is asked of the service."""
    for value in ("delete", "CONFIRM", "", None, 3, {"x": 1}):
        log: Log = []
        submit(form(value), Rules(log), log)
        assert log == [
            (
                "ack",
                {"response_action": "errors", "errors": {ids.OPERATION_BLOCK: CHOOSE_OPERATION}},
            )
        ], value


def test_a_form_from_before_the_operation_field_asks_to_clear() -> None:
    """A form opened before the operation was asked (no such block in its state) is a
    confirm, as every request was then."""
    log: Log = []
    submit(form(...), Rules(log), log)
    assert (
        "submit",
        ("alice@example.com", "TICKET-9 locked out", "U0REQ", Operation.CONFIRM),
    ) in log


def test_an_operation_the_rules_do_not_allow_is_a_field_error_on_it() -> None:
    """OPERATION_NOT_ALLOWED from the rules, before the ack: a field error under the
    operation, in the refusal's words; no request."""
    log: Log = []
    submit(form("resend"), Rules(log, refused=(Operation.RESEND,)), log)
    words = blocks.refusal_words(Refused(Refusal.OPERATION_NOT_ALLOWED), mentions=False)
    assert log[-1] == ("ack", {"response_action": "errors", "errors": {ids.OPERATION_BLOCK: words}})
    assert "submit" not in [name for name, _ in log]


def test_a_reason_the_rules_pattern_refuses_is_a_field_error_on_it() -> None:
    """The rule's reason_pattern refuses the reason: a field error under the reason saying
    the pattern and the rule; a reason that matches goes through."""
    log: Log = []
    submit(form("confirm", reason="customer locked out"), Rules(log, TICKETS), log)
    [(name, ack)] = [entry for entry in log if entry[0] == "ack"]
    error = ack["errors"][ids.REASON_BLOCK]
    assert r"^(TICKET|ZD)-\d+" in error and "default" in error
    assert "submit" not in [name for name, _ in log]
    log.clear()
    submit(form("confirm", reason="ZD-12 locked out"), Rules(log, TICKETS), log)
    assert [name for name, _ in log][-2:] == ["submit", "look_up"]


def command(text: str, approvals: Rules, log: Log) -> None:
    handler("command", ids.COMMAND)(
        ack=Recorder(log, "ack"),
        body={"text": text, "user_id": "U0REQ", "trigger_id": "1.2.3"},
        respond=Recorder(log, "respond"),
        context=context(approvals, Client(log)),
    )


def opened(log: Log) -> dict[str, Any]:
    [view] = [view for name, view in log if name == "views_open"]
    return next(b for b in view["blocks"] if b.get("block_id") == ids.OPERATION_BLOCK)


def test_resend_email_opens_the_form_with_resend_chosen_after_asking_the_rules() -> None:
    """/verify-email resend EMAIL: ack first, then the rules are asked for each operation,
    then the form opens with the resend chosen and the rules' pattern in the reason's hint."""
    log: Log = []
    command("resend alice@example.com", Rules(log, TICKETS), log)
    assert [name for name, _ in log] == ["ack", "may_ask", "rule_for", "rule_for", "views_open"]
    assert {args[2] for name, args in log if name == "rule_for"} == set(Operation)
    assert opened(log)["element"]["initial_option"]["value"] == "resend"
    [view] = [view for name, view in log if name == "views_open"]
    reason = next(b for b in view["blocks"] if b.get("block_id") == ids.REASON_BLOCK)
    assert "^(TICKET|ZD)" in reason["hint"]["text"]


def test_resend_not_allowed_is_left_out_of_the_form() -> None:
    """When the rules do not allow a resend for the address, the form offers only the clear
    (and says why); when they allow nothing, no form, the refusal instead."""
    log: Log = []
    command("resend alice@example.com", Rules(log, refused=(Operation.RESEND,)), log)
    block = opened(log)
    assert [o["value"] for o in block["element"]["options"]] == ["confirm"]
    assert "not offered" in block["hint"]["text"]
    log.clear()
    command("alice@example.com", Rules(log, refused=tuple(Operation)), log)
    assert "views_open" not in [name for name, _ in log]
    assert log[-1][0] == "respond" and "approval rules do not allow" in log[-1][1]["text"]


def test_the_empty_form_asks_no_rules_and_offers_both() -> None:
    """/verify-email alone: no address to ask the rules about; both operations offered."""
    log: Log = []
    command("", Rules(log), log)
    assert "rule_for" not in [name for name, _ in log]
    assert [o["value"] for o in opened(log)["element"]["options"]] == ["confirm", "resend"]
