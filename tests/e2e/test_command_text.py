"""Whatever a person types after /verify-email reaches the handler, over real HTTP.

Bolt's own form parser takes any body containing the word "payload" for an interaction and
drops the command (bot/slack/server.py says why and how the bot parses instead). These tests send
the texts people really type, escaped and form-encoded as Slack sends them, signed, through
the real HTTP server to the real app, and check that the modal opens with what they typed.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
import pytest

from bot.slack import ids
from bot.slack.http_request import parse_slack_body
from bot.standins import payloads
from bot.standins.world import REQUESTER, SIGNING_SECRET, World

# Every field name of a slash command's form, of an interaction payload and of the Events API
# envelope Bolt looks at: each one, typed by a person, must stay text.
SLACK_FORM_KEYS = (
    "payload",
    "type",
    "token",
    "challenge",
    "ssl_check",
    "command",
    "text",
    "trigger_id",
    "response_url",
    "user_id",
    "user_name",
    "team_id",
    "team_domain",
    "channel_id",
    "channel_name",
    "api_app_id",
    "enterprise_id",
    "is_enterprise_install",
    "view",
    "actions",
    "callback_id",
    "response_type",
    "event",
)
# Local parts an address may really have, each carrying a form key or a character that means
# something in a form body (+ is a space, % starts an escape, & and = split fields).
HOSTILE_LOCAL_PARTS = (
    *SLACK_FORM_KEYS,
    "payload=1",
    "ssl_check=1",
    "type=url_verification",
    "a&payload=x",
    "payload&text=",
    "x+payload",
    "100%payload",
    "%70ayload",
    "{payload}",
    "pay.load+token",
    "jösé.payload",
)
HOSTILE_REASON = (
    'payload={"type":"block_actions"} & token=x&ssl_check=1 challenge=c command=/x text=y '
    "100% + 50% = ½ <ticket> ünïcode ✓"
)


def slack_escaped(text: str) -> str:
    """The text as Slack delivers it: it escapes exactly &, < and > in what people type."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def element(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)["element"]


@pytest.fixture(scope="module")
def http_world(tmp_path_factory):
    """One bot over real HTTP for the whole module: opening a modal stores nothing."""
    path = tmp_path_factory.mktemp("command-text") / "bot.db"
    with World(database_path=path) as world:
        yield world


@pytest.mark.parametrize("local", HOSTILE_LOCAL_PARTS)
def test_form_words_in_the_email_open_the_prefilled_modal(http_world, local):
    """An address whose local part holds a Slack form key or form syntax opens the modal,
    prefilled with exactly that address and the reason typed after it."""
    email = f"{local}@example.com"
    sent = http_world.driver.command(REQUESTER, slack_escaped(f"{email} {HOSTILE_REASON}"))
    assert sent.reply.status == 200, sent.reply
    assert sent.reply.text == ""
    view = http_world.driver.modal(sent)
    assert view["callback_id"] == ids.REQUEST_VIEW
    assert element(view, ids.EMAIL_BLOCK)["initial_value"] == email
    assert element(view, ids.REASON_BLOCK)["initial_value"] == HOSTILE_REASON


@pytest.mark.parametrize("key", SLACK_FORM_KEYS)
def test_form_words_alone_get_the_address_answer(http_world, key):
    """A form key typed alone reaches the handler, which says it is not an address."""
    sent = http_world.driver.command(REQUESTER, key)
    assert sent.reply.status == 200, sent.reply
    assert sent.reply.body["response_type"] == "ephemeral"
    assert "does not look like an email address" in sent.reply.body["text"]
    assert key in sent.reply.body["text"]


def test_empty_text_opens_the_empty_modal(http_world):
    """No text at all still opens the form, with nothing filled in."""
    view = http_world.driver.modal(http_world.driver.command(REQUESTER, ""))
    assert "initial_value" not in element(view, ids.EMAIL_BLOCK)


def test_hostile_reason_survives_the_modal_and_the_channel(http_world):
    """A reason full of form syntax, typed in the modal, is stored and shown as typed."""
    email = "payload.reason@example.com"
    view = http_world.driver.modal(http_world.driver.command(REQUESTER, email))
    reply = http_world.driver.submit_request(REQUESTER, view, reason=HOSTILE_REASON)
    assert reply.body in ("", None, {})
    message = http_world.driver.request_message(email)
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    # Shown escaped for mrkdwn (& < >), otherwise unchanged.
    assert json.dumps(slack_escaped(HOSTILE_REASON), ensure_ascii=False)[1:-1] in shown
    request = http_world.services.store.find_open(email)
    assert request is not None and request.reason == HOSTILE_REASON


def test_signature_is_still_checked_on_the_raw_body(http_world):
    """The bot's own parsing does not skip Slack's signature: a body signed with another
    secret, or altered after signing, is refused with 401."""
    trigger_id = http_world.slack.new_trigger_id()
    fields = payloads.slash_command_payload(
        "payload@example.com",
        user_id=REQUESTER,
        trigger_id=trigger_id,
        response_url=http_world.slack.new_response_url(),
        command=ids.COMMAND,
    )
    body = urlencode(fields).encode()
    url = f"{http_world.url}/slack/events"
    assert payloads.post_signed(url, body, "another-secret").status == 401
    headers = payloads.sign(body, SIGNING_SECRET)
    altered = body.replace(b"payload%40", b"payloadX%40")
    with httpx.Client(trust_env=False) as client:
        response = client.post(
            url, content=altered, headers={**headers, "Content-Type": payloads.FORM}
        )
    assert response.status_code == 401
    assert not any(
        c.method == "views.open" and c.params.get("trigger_id") == trigger_id
        for c in http_world.slack.calls
    )


# ------------------------------------------------------------------ the parser on its own


def test_parse_form_command_with_payload_in_text():
    """A command's fields come back as fields, whatever its text says."""
    body = urlencode({"command": "/verify-email", "text": "payload=1&payload@x.io"})
    parsed = parse_slack_body(body, "application/x-www-form-urlencoded")
    assert parsed == {"command": "/verify-email", "text": "payload=1&payload@x.io"}


def test_parse_interaction_payload():
    """An interaction is the one field payload=<JSON>, returned as that JSON object."""
    body = urlencode({"payload": json.dumps({"type": "block_actions", "text": "payload"})})
    assert parse_slack_body(body, "application/x-www-form-urlencoded; charset=utf-8") == {
        "type": "block_actions",
        "text": "payload",
    }


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("", "application/x-www-form-urlencoded", {}),
        ('{"type": "url_verification", "challenge": "c"}', "application/json", None),
        ('{"type": "event_callback"}', None, None),
        ("payload=not-json", "application/x-www-form-urlencoded", {}),
        ("payload=%5B1%2C2%5D", "application/x-www-form-urlencoded", {}),
        ("{not json", "application/json", {}),
        ("[1, 2]", "application/json", {}),
        ("ssl_check=1&token=t", "application/x-www-form-urlencoded", None),
    ],
)
def test_parse_edge_cases(body, content_type, expected):
    """JSON bodies parse as JSON; malformed or non-object ones give {} instead of raising."""
    parsed = parse_slack_body(body, content_type)
    if expected is None:
        expected = (
            json.loads(body)
            if body.startswith("{")
            else dict(p.split("=") for p in body.split("&"))
        )
    assert parsed == expected
