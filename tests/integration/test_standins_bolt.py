"""The Slack stand-in's payloads and events behave like Slack's: signatures slack_sdk
accepts, slash commands, button clicks and view submissions with every field Slack sends,
Bolt over HTTP taking them, and Socket Mode connecting and acking.

Each test drives a stand-in with the real client the bot uses (slack_sdk's WebClient, Bolt's
App over HTTP and over Socket Mode), so the end-to-end tests and the sandbox can trust them.
The ``fake`` fixture (a running FakeSlack) is in tests/conftest.py, the tokens and payloads
these tests share in tests/slack_payloads.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from slack_bolt import Ack, App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_payloads import APP_TOKEN, APPROVE_MESSAGE_BLOCKS, BOT_TOKEN, MODAL, SECRET
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.standins import payloads
from bot.standins.slack import FakeSlack
from bot.standins.socket_mode import FakeSocketMode

# ------------------------------------------------------------ payloads + Bolt (HTTP)


def test_signature_is_accepted_by_slack_sdk() -> None:
    """sign() makes the v0 headers SignatureVerifier accepts, for that body only."""
    body = payloads.slash_command(
        "a@example.com", user_id="U1", trigger_id="1.2.x", response_url="http://r"
    )
    headers = payloads.sign(body, SECRET)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)


def test_slash_command_carries_every_field_slack_sends() -> None:
    """The slash command body has Slack's fields, in Slack's order, form-encoded."""
    body = payloads.slash_command(
        "<mailto:a@example.com|a@example.com>",
        user_id="U1",
        trigger_id="1.2.x",
        response_url="http://r",
    )
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    assert list(fields) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert fields["text"] == "<mailto:a@example.com|a@example.com>"
    assert fields["command"] == "/verify-email"


def test_block_actions_clicks_a_button_that_is_on_the_message(fake: FakeSlack) -> None:
    """block_actions takes block_id, text, style and value from the message's own button."""
    client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
    posted = client.chat_postMessage(channel="C1", text="x", blocks=APPROVE_MESSAGE_BLOCKS)
    payload = payloads.block_actions_payload(
        user_id="U2",
        action_id="approve",
        message=fake.message("C1", posted["ts"]),
        channel_id="C1",
        trigger_id=fake.new_trigger_id(),
        response_url=fake.new_response_url(),
    )
    action = payload["actions"][0]
    assert (action["block_id"], action["value"], action["style"]) == ("actions", "req-1", "primary")
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    with pytest.raises(ValueError, match="no element"):
        payloads.block_actions_payload(
            user_id="U2",
            action_id="retry",
            message=fake.message("C1", posted["ts"]),
            channel_id="C1",
            trigger_id="1.2.x",
            response_url="http://r",
        )


def test_view_submission_state_has_every_text_input() -> None:
    """view_submission carries the view with state.values; untouched text inputs are null."""
    payload = payloads.view_submission_payload(
        user_id="U1", view=MODAL, values={"email_block": {"email_input": "a@example.com"}}
    )
    assert payload["type"] == "view_submission"
    view = payload["view"]
    assert view["callback_id"] == "request_view" and view["private_metadata"] == "C1"
    assert view["state"]["values"] == {
        "email_block": {"email_input": {"type": "plain_text_input", "value": "a@example.com"}},
        "reason_block": {"reason_input": {"type": "plain_text_input", "value": None}},
    }


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bolt_over_http(fake: FakeSlack) -> Iterator[tuple[App, str]]:
    """A real Bolt App behind a loopback WSGI server: (app, its /slack/events URL)."""
    app = App(client=WebClient(token=BOT_TOKEN, base_url=fake.api_url), signing_secret=SECRET)
    server: WSGIServer = make_server(
        "127.0.0.1", 0, SlackRequestHandler(app), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}/slack/events"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_bolt_over_http_accepts_the_signed_payloads(
    fake: FakeSlack, bolt_over_http: tuple[App, str]
) -> None:
    """Bolt verifies the signatures and routes the command, the click and the submission."""
    app, url = bolt_over_http
    seen: list[str] = []

    @app.command("/verify-email")
    def command(ack: Ack, command: dict[str, Any]) -> None:
        ack()
        seen.append(command["text"])

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        seen.append(body["actions"][0]["value"])

    @app.view("request_view")
    def submit(ack: Ack, view: dict[str, Any]) -> None:
        email = view["state"]["values"]["email_block"]["email_input"]["value"]
        ack(response_action="errors", errors={"email_block": f"{email} is not allowed"})

    sender = payloads.SlackRequestSender(url, SECRET)
    command_body = payloads.slash_command(
        "a@example.com",
        user_id="U1",
        trigger_id=fake.new_trigger_id(),
        response_url=fake.new_response_url(),
    )
    assert sender.post(command_body).status == 200

    client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
    posted = client.chat_postMessage(channel="C1", text="x", blocks=APPROVE_MESSAGE_BLOCKS)
    click = payloads.block_actions(
        user_id="U2",
        action_id="approve",
        message=fake.message("C1", posted["ts"]),
        channel_id="C1",
        trigger_id=fake.new_trigger_id(),
        response_url=fake.new_response_url(),
    )
    assert sender.post(click).status == 200

    submission = payloads.view_submission(
        user_id="U1", view=MODAL, values={"email_block": {"email_input": "a@example.com"}}
    )
    answer = sender.post(submission)
    assert answer.status == 200
    assert answer.json() == {
        "response_action": "errors",
        "errors": {"email_block": "a@example.com is not allowed"},
    }
    assert seen == ["a@example.com", "req-1"]

    status, _, _ = payloads.post_signed(url, command_body, "another-secret")
    assert status == 401


def test_bolt_reads_an_attached_file_as_a_bot_would(
    fake: FakeSlack, bolt_over_http: tuple[App, str]
) -> None:
    """A view_submission whose file_input carries an uploaded file reaches a Bolt view
    listener with the file object in view.state.values; the listener's own client reads it
    with files.info, and its bot token downloads the bytes from url_private_download."""
    app, url = bolt_over_http
    read: list[bytes] = []
    done = threading.Event()
    modal = {
        **MODAL,
        "blocks": [
            {
                "type": "input",
                "block_id": "file_block",
                "label": {"type": "plain_text", "text": "List"},
                "element": {"type": "file_input", "action_id": "file_input", "max_files": 1},
            }
        ],
    }

    @app.view("request_view")
    def submit(ack: Ack, view: dict[str, Any], client: WebClient) -> None:
        ack()
        (file,) = view["state"]["values"]["file_block"]["file_input"]["files"]
        info = client.files_info(file=file["id"])["file"]
        answer = httpx.get(
            info["url_private_download"],
            headers={"Authorization": f"Bearer {client.token}"},
            trust_env=False,
        )
        read.append(answer.content)
        done.set()

    file = fake.add_file("list.txt", b"a@example.com\n", filetype="text", user="U1")
    submission = payloads.view_submission(
        user_id="U1",
        view=modal,
        values={"file_block": {"file_input": payloads.file_input_state([file])}},
    )
    assert payloads.SlackRequestSender(url, SECRET).post(submission).status == 200
    assert done.wait(10.0), "the listener did not read the file"
    assert read == [b"a@example.com\n"]
    assert len(fake.calls_to("files.info")) == 1
    assert [(d.status, d.token) for d in fake.downloads] == [(200, BOT_TOKEN)]


# ------------------------------------------------------------------- Socket Mode


def test_bolt_socket_mode_connects_and_acks(fake: FakeSlack) -> None:
    """Bolt's SocketModeHandler gets its URL from apps.connections.open, connects, and acks."""
    app = App(client=WebClient(token=BOT_TOKEN, base_url=fake.api_url), signing_secret=SECRET)

    @app.command("/verify-email")
    def command(ack: Ack) -> None:
        ack()

    @app.view("request_view")
    def submit(ack: Ack) -> None:
        ack(response_action="errors", errors={"email_block": "no"})

    with FakeSocketMode(fake) as socket_mode:
        handler = SocketModeHandler(app, app_token=APP_TOKEN)
        handler.connect()
        try:
            socket_mode.wait_connected()
            command_fields = payloads.slash_command_payload(
                "a@example.com",
                user_id="U1",
                trigger_id=fake.new_trigger_id(),
                response_url=fake.new_response_url(),
            )
            envelope_id = socket_mode.send_envelope("slash_commands", command_fields)
            assert socket_mode.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}

            submission = payloads.view_submission_payload(user_id="U1", view=MODAL, values={})
            envelope_id = socket_mode.send_envelope("interactive", submission)
            assert socket_mode.wait_for_ack(envelope_id)["payload"] == {
                "response_action": "errors",
                "errors": {"email_block": "no"},
            }
        finally:
            handler.close()
    assert fake.calls_to("apps.connections.open")[0].token == APP_TOKEN


def test_socket_mode_refuses_unknown_tickets(fake: FakeSlack) -> None:
    """Only a URL from apps.connections.open connects, and only once."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with FakeSocketMode(fake) as socket_mode:
        url = WebClient(token=APP_TOKEN, base_url=fake.api_url).apps_connections_open(
            app_token=APP_TOKEN
        )["url"]
        assert url.startswith("ws://127.0.0.1:")
        with connect(url) as websocket:
            socket_mode.wait_connected()
            hello = json.loads(websocket.recv(timeout=5))
            assert hello["type"] == "hello"
            assert hello["connection_info"] == {"app_id": "A1"}
        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        assert refused.value.response.status_code == 401
