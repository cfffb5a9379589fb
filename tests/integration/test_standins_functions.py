"""The Slack stand-in's custom steps behave like Slack's: a run starts with a function_executed
event carrying its own token, functions.completeSuccess / completeError end it once (with the
run's token or the app's bot token), with Slack's errors for an unknown run, a run already
ended, another run's token, outputs that break the step's definition; the run's token is
revoked when the run ends; outages and scripted failures apply as to every method; and Bolt
(HTTP and Socket Mode) routes the event to `app.function` and completes through the stand-in.

Each test drives the stand-in with the real clients the bot uses (slack_sdk's WebClient, Bolt's
App). The ``fake`` fixture (a running FakeSlack) is in tests/conftest.py, the tokens in
tests/slack_payloads.py. Sources: docs/research/workflow-step.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import Ack, App, Complete, Fail
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_payloads import APP_TOKEN, APPROVE_MESSAGE_BLOCKS, BOT_TOKEN, SECRET
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.standins import payloads
from bot.standins.slack import FakeSlack
from bot.standins.socket_mode import FakeSocketMode

STEP = "verify_email"

# The step as a manifest v1 declares it (each parameter says is_required itself).
STEP_V1: dict[str, Any] = {
    "title": "Verify email with approval",
    "description": "Asks for approval, then verifies the email",
    "input_parameters": {
        "email": {"type": "string", "title": "Email", "is_required": True},
        "requested_by": {
            "type": "slack#/types/user_id",
            "title": "Requested by",
            "is_required": True,
        },
        "operation": {"type": "string", "title": "Operation"},
    },
    "output_parameters": {
        "state": {"type": "string", "title": "State", "is_required": True},
        "decided_by": {"type": "slack#/types/user_id", "title": "Decided by"},
    },
}

# The same outputs as a manifest v2 declares them (a `required` list).
STEP_V2_OUTPUTS: dict[str, Any] = {
    "properties": {
        "state": {"type": "string", "title": "State"},
        "decided_by": {"type": "slack#/types/user_id", "title": "Decided by"},
    },
    "required": ["state"],
}


def client_for(fake: FakeSlack, token: str) -> WebClient:
    return WebClient(token=token, base_url=fake.api_url)


def start(fake: FakeSlack, **inputs: Any) -> tuple[str, str]:
    """Run the step; its (function_execution_id, bot_access_token)."""
    event = fake.run_function(STEP, inputs or {"email": "a@example.com"})["event"]
    return event["function_execution_id"], event["bot_access_token"]


def error_of(call: Any) -> str:
    """The Slack error a call raised (SlackApiError), as its answer names it."""
    with pytest.raises(SlackApiError) as raised:
        call()
    return str(raised.value.response["error"])


# ------------------------------------------------------------------ the event


def test_function_executed_carries_what_slack_documents(fake: FakeSlack) -> None:
    """The envelope is an event_callback with the step (callback_id, its parameters as a list,
    app), the inputs, new Fx/Wx ids, and the run's own token, which is not the bot token."""
    fake.define_function(STEP, STEP_V1)
    envelope = fake.run_function(
        STEP, {"email": "a@example.com", "requested_by": "U1"}, workflow="Customer intake"
    )
    assert envelope["type"] == "event_callback"
    assert envelope["api_app_id"] == fake.app_id
    assert envelope["team_id"] == fake.team_id
    assert envelope["event_id"].startswith("Ev")
    event = envelope["event"]
    assert event["type"] == "function_executed"
    assert event["function"]["callback_id"] == STEP
    assert event["function"]["title"] == "Verify email with approval"
    assert event["function"]["type"] == "app"
    assert [
        (p["name"], p["type"], p["is_required"]) for p in event["function"]["input_parameters"]
    ] == [
        ("email", "string", True),
        ("requested_by", "slack#/types/user_id", True),
        ("operation", "string", False),
    ]
    assert [p["name"] for p in event["function"]["output_parameters"]] == ["state", "decided_by"]
    assert event["inputs"] == {"email": "a@example.com", "requested_by": "U1"}
    assert event["function_execution_id"].startswith("Fx")
    assert event["workflow_execution_id"].startswith("Wx")
    assert event["bot_access_token"].startswith("xwfp-")
    assert event["bot_access_token"] != BOT_TOKEN
    assert "workflow" not in event and "user" not in event  # Slack sends neither
    run = fake.execution(event["function_execution_id"])
    assert (run.workflow, run.running, run.callback_id) == ("Customer intake", True, STEP)
    # Over HTTP the same object is the JSON body.
    body = payloads.function_executed(
        callback_id=STEP,
        inputs={"email": "a@example.com"},
        function_execution_id="Fx1",
        workflow_execution_id="Wx1",
        bot_access_token="xwfp-1",
    )
    assert json.loads(body)["event"]["function_execution_id"] == "Fx1"


def test_each_run_gets_its_own_id_and_token(fake: FakeSlack) -> None:
    """Two runs of one step: two execution ids, two tokens."""
    first, second = start(fake), start(fake)
    assert first[0] != second[0] and first[1] != second[1]
    assert [run.execution_id for run in fake.executions()] == [first[0], second[0]]


# ------------------------------------------------------------- completing a run


def test_complete_success_with_the_run_token_records_the_outputs(fake: FakeSlack) -> None:
    """completeSuccess with the run's token answers ok, records the outputs once, ends the run."""
    execution_id, token = start(fake)
    assert fake.completions(execution_id) == []
    answer = client_for(fake, token).functions_completeSuccess(
        function_execution_id=execution_id, outputs={"state": "succeeded", "decided_by": "U2"}
    )
    assert answer.data == {"ok": True}
    (completion,) = fake.completions(execution_id)
    assert completion.ok
    assert completion.outputs == {"state": "succeeded", "decided_by": "U2"}
    assert completion.error is None
    assert completion.token == token
    assert not fake.execution(execution_id).running


def test_complete_error_records_the_message(fake: FakeSlack) -> None:
    """completeError ends the run with the message Slack shows; it needs an error text."""
    execution_id, token = start(fake)
    client = client_for(fake, token)
    assert error_of(
        lambda: client.functions_completeError(function_execution_id=execution_id, error="")
    ) == ("invalid_arguments")
    client.functions_completeError(
        function_execution_id=execution_id, error="a@example.com is not valid"
    )
    (completion,) = fake.completions(execution_id)
    assert not completion.ok
    assert completion.error == "a@example.com is not valid"
    assert completion.outputs is None


def test_the_bot_token_completes_unless_told_otherwise(fake: FakeSlack) -> None:
    """The app's bot token completes a run (Slack lists bot tokens for both methods); with
    let_bot_token_complete(False) it gets access_denied and only the run's token works."""
    execution_id, _ = start(fake)
    client_for(fake, BOT_TOKEN).functions_completeSuccess(
        function_execution_id=execution_id, outputs={"state": "succeeded"}
    )
    assert fake.completions(execution_id)[0].token == BOT_TOKEN
    fake.let_bot_token_complete(False)
    other, token = start(fake)
    bot = client_for(fake, BOT_TOKEN)
    assert error_of(
        lambda: bot.functions_completeSuccess(function_execution_id=other, outputs={})
    ) == ("access_denied")
    assert fake.completions(other) == []
    client_for(fake, token).functions_completeSuccess(function_execution_id=other, outputs={})
    assert len(fake.completions(other)) == 1


def test_a_wrong_token_completes_nothing(fake: FakeSlack) -> None:
    """Another run's token: access_denied; a token Slack never issued: invalid_auth; the
    app-level token: not_allowed_token_type; no token: not_authed. The run keeps running."""
    execution_id, _ = start(fake)
    _, other_token = start(fake)

    def complete_with(token: str | None) -> str:
        client = WebClient(token=token, base_url=fake.api_url)
        return error_of(
            lambda: client.functions_completeSuccess(
                function_execution_id=execution_id, outputs={"state": "succeeded"}
            )
        )

    assert complete_with(other_token) == "access_denied"
    assert complete_with("xwfp-never-issued") == "invalid_auth"
    assert complete_with(APP_TOKEN) == "not_allowed_token_type"
    assert complete_with(None) == "not_authed"
    assert fake.completions(execution_id) == []
    assert fake.execution(execution_id).running


def test_a_run_ends_once(fake: FakeSlack) -> None:
    """A second completion changes nothing: the run's token is revoked by then
    (token_revoked); the bot token gets execution_not_in_running_state, or
    function_execution_not_found after answer_completed_with() (Slack's example)."""
    execution_id, token = start(fake)
    run_client, bot = client_for(fake, token), client_for(fake, BOT_TOKEN)
    run_client.functions_completeSuccess(
        function_execution_id=execution_id, outputs={"state": "succeeded"}
    )
    assert (
        error_of(
            lambda: run_client.functions_completeSuccess(
                function_execution_id=execution_id, outputs={"state": "failed"}
            )
        )
        == "token_revoked"
    )
    assert error_of(
        lambda: run_client.functions_completeError(function_execution_id=execution_id, error="x")
    ) == ("token_revoked")
    assert (
        error_of(
            lambda: bot.functions_completeSuccess(
                function_execution_id=execution_id, outputs={"state": "failed"}
            )
        )
        == "execution_not_in_running_state"
    )
    fake.answer_completed_with("function_execution_not_found")
    assert error_of(
        lambda: bot.functions_completeError(function_execution_id=execution_id, error="x")
    ) == ("function_execution_not_found")
    (completion,) = fake.completions(execution_id)
    assert completion.outputs == {"state": "succeeded"}


def test_an_unknown_execution_is_not_found(fake: FakeSlack) -> None:
    """An id Slack never issued: function_execution_not_found, for either method; no id at
    all: invalid_arguments."""
    bot = client_for(fake, BOT_TOKEN)
    assert error_of(
        lambda: bot.functions_completeSuccess(function_execution_id="Fx0NOPE", outputs={})
    ) == ("function_execution_not_found")
    assert error_of(
        lambda: bot.functions_completeError(function_execution_id="Fx0NOPE", error="x")
    ) == ("function_execution_not_found")
    assert error_of(
        lambda: bot.functions_completeSuccess(function_execution_id="", outputs={})
    ) == ("invalid_arguments")


@pytest.mark.parametrize("outputs_declared", ["v1", "v2"])
def test_outputs_are_checked_against_the_step(fake: FakeSlack, outputs_declared: str) -> None:
    """A defined step's outputs must name only its output parameters, carry the required ones,
    with their types: parameter_validation_failed (with the problems) otherwise, the run
    still running. Declared in the manifest's v1 or v2 shape alike."""
    definition = dict(STEP_V1)
    if outputs_declared == "v2":
        definition["output_parameters"] = STEP_V2_OUTPUTS
    fake.define_function(STEP, definition)
    execution_id, token = start(fake)
    client = client_for(fake, token)
    for outputs in ({"decided_by": "U2"}, {"state": "x", "extra": "y"}, {"state": 3}):
        with pytest.raises(SlackApiError) as refused:
            client.functions_completeSuccess(function_execution_id=execution_id, outputs=outputs)
        assert refused.value.response["error"] == "parameter_validation_failed"
        assert refused.value.response["response_metadata"]["messages"]
    assert fake.execution(execution_id).running
    client.functions_completeSuccess(
        function_execution_id=execution_id, outputs={"state": "rejected"}
    )
    assert fake.completions(execution_id)[0].outputs == {"state": "rejected"}


# -------------------------------------------------------------- the run's token


def test_the_run_token_works_like_the_bot_token_until_the_run_ends(fake: FakeSlack) -> None:
    """While the run runs, its token posts as the bot does; once the run ended: token_revoked."""
    execution_id, token = start(fake)
    client = client_for(fake, token)
    posted = client.chat_postMessage(channel="C1", text="from the step")
    assert posted["message"]["user"] == fake.bot_user_id
    client.functions_completeSuccess(function_execution_id=execution_id, outputs={})
    assert (
        error_of(lambda: client.chat_postMessage(channel="C1", text="too late")) == "token_revoked"
    )
    assert [m["text"] for m in fake.messages("C1")] == ["from the step"]


def test_the_run_token_expires() -> None:
    """After function_token_ttl (or expire_function_token) the run's token answers
    token_expired, the run still running: the bot token can still complete it."""
    with FakeSlack(bot_token=BOT_TOKEN, function_token_ttl=0.0) as fake:
        execution_id, token = start(fake)
        expired = client_for(fake, token)
        assert error_of(
            lambda: expired.functions_completeSuccess(
                function_execution_id=execution_id, outputs={}
            )
        ) == ("token_expired")
        assert fake.execution(execution_id).running
        client_for(fake, BOT_TOKEN).functions_completeSuccess(
            function_execution_id=execution_id, outputs={}
        )
        assert len(fake.completions(execution_id)) == 1
    with FakeSlack(bot_token=BOT_TOKEN) as fake:
        execution_id, token = start(fake)
        fake.expire_function_token(execution_id)
        assert error_of(
            lambda: client_for(fake, token).chat_postMessage(channel="C1", text="x")
        ) == ("token_expired")


# ----------------------------------------------------------------------- faults


def test_outages_and_scripted_failures_apply(fake: FakeSlack) -> None:
    """During an outage completeSuccess answers 503 and ends nothing; a scripted error answers
    ok:false and ends nothing; after both, the same completion goes through."""
    execution_id, token = start(fake)
    client = client_for(fake, token)
    fake.outage(30)
    with pytest.raises(SlackApiError) as refused:
        client.functions_completeSuccess(
            function_execution_id=execution_id, outputs={"state": "succeeded"}
        )
    assert refused.value.response.status_code == 503
    fake.outage(0)
    fake.fail_next("functions.completeSuccess", "internal_error")
    assert (
        error_of(
            lambda: client.functions_completeSuccess(
                function_execution_id=execution_id, outputs={"state": "succeeded"}
            )
        )
        == "internal_error"
    )
    assert fake.completions(execution_id) == []
    client.functions_completeSuccess(
        function_execution_id=execution_id, outputs={"state": "succeeded"}
    )
    assert len(fake.completions(execution_id)) == 1
    assert [c.status for c in fake.calls_to("functions.completeSuccess")] == [503, 200, 200]


def test_a_lost_answer_leaves_the_run_completed(fake: FakeSlack) -> None:
    """A completion whose answer is lost (time_out_next acts) did end the run: retrying with
    the run's token gets token_revoked, with the bot token execution_not_in_running_state."""
    execution_id, token = start(fake)
    fake.time_out_next("functions.completeSuccess", 2.0, acts=True)
    client = WebClient(token=token, base_url=fake.api_url, timeout=1)
    with pytest.raises(TimeoutError):
        client.functions_completeSuccess(
            function_execution_id=execution_id, outputs={"state": "succeeded"}
        )
    assert len(fake.completions(execution_id)) == 1
    assert (
        error_of(
            lambda: client.functions_completeSuccess(
                function_execution_id=execution_id, outputs={"state": "succeeded"}
            )
        )
        == "token_revoked"
    )
    bot = client_for(fake, BOT_TOKEN)
    assert (
        error_of(
            lambda: bot.functions_completeSuccess(
                function_execution_id=execution_id, outputs={"state": "succeeded"}
            )
        )
        == "execution_not_in_running_state"
    )


# ------------------------------------------------------------------------- Bolt


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bolt_over_http(fake: FakeSlack) -> Iterator[tuple[App, payloads.SlackRequestSender]]:
    """A real Bolt App behind a loopback WSGI server, and Slack's side of its Request URL."""
    app = App(client=WebClient(token=BOT_TOKEN, base_url=fake.api_url), signing_secret=SECRET)
    server: WSGIServer = make_server(
        "127.0.0.1", 0, SlackRequestHandler(app), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield (
            app,
            payloads.SlackRequestSender(
                f"http://127.0.0.1:{server.server_port}/slack/events", SECRET
            ),
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_bolt_over_http_runs_the_step_and_completes_with_the_run_token(
    fake: FakeSlack, bolt_over_http: tuple[App, payloads.SlackRequestSender]
) -> None:
    """Bolt routes the signed function_executed to app.function(callback_id), acks it, and
    its complete() calls functions.completeSuccess with the run's token."""
    app, slack = bolt_over_http

    @app.function(STEP)
    def step(inputs: dict[str, Any], complete: Complete) -> None:
        complete(outputs={"state": "succeeded", "decided_by": inputs["requested_by"]})

    envelope = fake.run_function(STEP, {"email": "a@example.com", "requested_by": "U1"})
    execution_id = envelope["event"]["function_execution_id"]
    reply = slack.post(json.dumps(envelope).encode(), "application/json")
    assert reply.status == 200
    fake.wait_for(lambda: fake.completions(execution_id) or None, what="the step's completion")
    (completion,) = fake.completions(execution_id)
    assert completion.outputs == {"state": "succeeded", "decided_by": "U1"}
    assert completion.token == envelope["event"]["bot_access_token"]


def test_bolt_gives_a_click_on_the_runs_message_its_complete(
    fake: FakeSlack, bolt_over_http: tuple[App, payloads.SlackRequestSender]
) -> None:
    """A click on a message the run's token posted carries function_data and the run's token:
    Bolt's action listener gets the run's inputs and a fail() that ends it."""
    app, slack = bolt_over_http
    execution_id, token = start(fake, email="a@example.com")
    posted = client_for(fake, token).chat_postMessage(
        channel="C1", text="x", blocks=APPROVE_MESSAGE_BLOCKS
    )
    seen: list[Any] = []

    @app.action("reject")
    def reject(ack: Ack, inputs: dict[str, Any], fail: Fail) -> None:
        ack()
        seen.append(inputs)
        fail(error="rejected")

    payload = payloads.block_actions_payload(
        user_id="U2",
        action_id="reject",
        message=fake.message("C1", posted["ts"]),
        channel_id="C1",
        trigger_id=fake.new_trigger_id(),
        response_url=fake.new_response_url(),
    ) | fake.function_scope(execution_id)
    from urllib.parse import urlencode

    assert slack.post(urlencode({"payload": json.dumps(payload)}).encode()).status == 200
    fake.wait_for(lambda: fake.completions(execution_id) or None, what="the step's completion")
    assert seen == [{"email": "a@example.com"}]
    (completion,) = fake.completions(execution_id)
    assert (completion.error, completion.token) == ("rejected", token)


def test_bolt_over_socket_mode_runs_the_step(fake: FakeSlack) -> None:
    """Over Socket Mode the same envelope, in an events_api envelope, is acked and the step's
    fail() ends the run with functions.completeError."""
    app = App(client=WebClient(token=BOT_TOKEN, base_url=fake.api_url), signing_secret=SECRET)

    @app.function(STEP)
    def step(fail: Fail) -> None:
        fail(error="not allowed")

    with FakeSocketMode(fake) as socket_mode:
        handler = SocketModeHandler(app, app_token=APP_TOKEN)
        handler.connect()
        try:
            socket_mode.wait_connected()
            envelope = fake.run_function(STEP, {"email": "a@example.com"})
            execution_id = envelope["event"]["function_execution_id"]
            socket_mode.wait_for_ack(socket_mode.send_envelope("events_api", envelope))
            fake.wait_for(lambda: fake.completions(execution_id) or None, what="the step's end")
        finally:
            handler.close()
    (completion,) = fake.completions(execution_id)
    assert completion.error == "not allowed"
