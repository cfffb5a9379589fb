"""The Slack stand-in's Web API behaves like Slack for everything the bot relies on: tokens,
posts, replies, updates and DMs, Block Kit limits, views, user groups and channels, scripted
errors and 429s, timeouts, outages and calls in flight.

Each test drives a stand-in with the real client the bot uses (slack_sdk's WebClient, Bolt's
App over HTTP and over Socket Mode), so the end-to-end tests and the sandbox can trust them.
The ``fake`` fixture (a running FakeSlack) is in tests/conftest.py, the tokens and payloads
these tests share in tests/slack_payloads.py.
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from slack_payloads import APP_TOKEN, APPROVE_MESSAGE_BLOCKS, BOT_TOKEN, MODAL
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.standins.slack import FakeSlack

TS = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url)


# ------------------------------------------------------------------- Web API


def test_auth_test_answers_the_bot_identity(client: WebClient) -> None:
    """auth.test (which Bolt calls at start-up) names the bot user, bot and team."""
    answer = client.auth_test()
    assert answer["user_id"] == "UBOT"
    assert answer["bot_id"] == "BBOT"
    assert answer["team_id"] == "T1"
    assert answer["url"].startswith("https://")


def test_tokens_are_checked_like_slack(fake: FakeSlack) -> None:
    """A wrong token is invalid_auth; the app token only opens Socket Mode connections."""
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as app_token:
        WebClient(token=APP_TOKEN, base_url=fake.api_url).chat_postMessage(channel="C1", text="x")
    assert app_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as bot_token:
        WebClient(token=BOT_TOKEN, base_url=fake.api_url).apps_connections_open(app_token=BOT_TOKEN)
    assert bot_token.value.response["error"] == "not_allowed_token_type"


def test_delay_slows_a_method_down(fake: FakeSlack, client: WebClient) -> None:
    """set_delay makes a method answer no sooner than the delay (latency for timing tests)."""
    fake.set_delay("auth.test", 0.2)
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 0.2


def test_unknown_method_is_refused(client: WebClient) -> None:
    """A method the stand-in does not implement answers unknown_method, as Slack does."""
    with pytest.raises(SlackApiError) as error:
        client.api_call("chat.scheduleMessage", json={"channel": "C1", "text": "x"})
    assert error.value.response["error"] == "unknown_method"


def test_posts_replies_and_updates_show_in_messages(fake: FakeSlack, client: WebClient) -> None:
    """chat.postMessage gives increasing ts; replies join the thread; chat.update edits in place."""
    first = client.chat_postMessage(channel="C1", text="request", blocks=APPROVE_MESSAGE_BLOCKS)
    second = client.chat_postMessage(channel="C1", text="another")
    assert TS.match(first["ts"]) and first["ts"] < second["ts"]
    assert first["channel"] == "C1"
    assert first["message"]["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert first["message"]["blocks"][0]["block_id"]  # Slack gives every block an id

    reply = client.chat_postMessage(channel="C1", thread_ts=first["ts"], text="Approved by <@U2>")
    assert reply["message"]["thread_ts"] == first["ts"]
    client.chat_update(
        channel="C1",
        ts=first["ts"],
        text="approved",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*Approved*"}}],
    )

    top = fake.messages("C1")
    assert [m["ts"] for m in top] == [first["ts"], second["ts"]]
    assert top[0]["text"] == "approved" and "edited" in top[0]
    assert [b["type"] for b in top[0]["blocks"]] == ["section"]  # no buttons left
    assert top[0]["reply_count"] == 1
    assert [m["text"] for m in fake.messages("C1", first["ts"])] == ["Approved by <@U2>"]
    transcript = fake.transcript("C1")
    assert "*Approved*" in transcript and "    " in transcript.splitlines()[-3]
    assert "[Approve]" not in transcript


def test_update_keeps_what_it_is_not_given(fake: FakeSlack, client: WebClient) -> None:
    """chat.update without blocks keeps the blocks; an unknown ts is message_not_found."""
    posted = client.chat_postMessage(channel="C1", text="t", blocks=APPROVE_MESSAGE_BLOCKS)
    client.chat_update(channel="C1", ts=posted["ts"], text="new text")
    assert len(fake.message("C1", posted["ts"])["blocks"]) == 2
    with pytest.raises(SlackApiError) as error:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert error.value.response["error"] == "message_not_found"


def test_posting_to_a_user_lands_in_a_dm(fake: FakeSlack, client: WebClient) -> None:
    """chat.postMessage to U… answers a D… channel and the message is read there."""
    answer = client.chat_postMessage(channel="U1", text="your request was approved")
    assert answer["channel"].startswith("D")
    assert fake.messages(answer["channel"])[0]["text"] == "your request was approved"
    assert fake.messages("U1") == fake.messages(answer["channel"])


def test_ephemeral_and_permalink(fake: FakeSlack, client: WebClient) -> None:
    """chat.postEphemeral answers a message_ts; chat.getPermalink links existing messages."""
    answer = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert TS.match(answer["message_ts"])
    assert fake.ephemerals("C1")[0]["user"] == "U1"
    posted = client.chat_postMessage(channel="C1", text="x")
    link = client.chat_getPermalink(channel="C1", message_ts=posted["ts"])["permalink"]
    assert link.endswith("/archives/C1/p" + posted["ts"].replace(".", ""))


def test_form_bodies_are_parsed_like_json_ones(fake: FakeSlack) -> None:
    """A form-encoded call with `token` and JSON-string `blocks` is recorded with parsed blocks."""
    body = {"token": BOT_TOKEN, "channel": "C1", "text": "x", "blocks": json.dumps([])}
    answer = httpx.post(fake.api_url + "chat.postMessage", data=body, trust_env=False).json()
    assert answer["ok"] is True
    call = fake.calls_to("chat.postMessage")[0]
    assert call.params["blocks"] == [] and call.token == BOT_TOKEN and "token" not in call.params


def test_block_kit_limits_are_enforced(client: WebClient) -> None:
    """More than 50 blocks, or a section text over 3000 characters, is invalid_blocks."""
    too_many = [{"type": "divider"}] * 51
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    for blocks in (too_many, too_long):
        with pytest.raises(SlackApiError) as error:
            client.chat_postMessage(channel="C1", text="x", blocks=blocks)
        assert error.value.response["error"] == "invalid_blocks"


def test_repeated_or_overlong_block_ids_are_refused(fake: FakeSlack, client: WebClient) -> None:
    """As on Slack, a block_id is unique within its message or view and at most 255
    characters: a message repeating one (or with a longer one) is invalid_blocks, on
    chat.postMessage and chat.update alike; a Home view repeating one is invalid_arguments (the
    error views.publish documents), and nothing is published. Blocks without a block_id are
    given distinct ones."""
    row = {"type": "actions", "elements": APPROVE_MESSAGE_BLOCKS[1]["elements"]}
    repeated = [row | {"block_id": "same"}, row | {"block_id": "same"}]
    overlong = [row | {"block_id": "x" * 256}]
    for blocks in (repeated, overlong):
        with pytest.raises(SlackApiError) as error:
            client.chat_postMessage(channel="C1", text="x", blocks=blocks)
        assert error.value.response["error"] == "invalid_blocks"
        assert "block_id" in error.value.response["response_metadata"]["messages"][0]
    posted = client.chat_postMessage(channel="C1", text="x", blocks=[row | {"block_id": "a"}])
    with pytest.raises(SlackApiError) as error:
        client.chat_update(channel=posted["channel"], ts=posted["ts"], text="x", blocks=repeated)
    assert error.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as error:
        client.views_publish(user_id="U1", view={"type": "home", "blocks": repeated})
    assert error.value.response["error"] == "invalid_arguments"
    assert "duplicate block_id" in error.value.response["response_metadata"]["messages"][0]
    assert fake.home("U1") is None
    distinct = [row | {"block_id": "a"}, row | {"block_id": "b"}, {"type": "divider"}] + [
        {"type": "divider"}
    ] * 40
    published = client.views_publish(user_id="U1", view={"type": "home", "blocks": distinct})
    given = [b["block_id"] for b in published["view"]["blocks"]]
    assert given[:2] == ["a", "b"] and len(set(given)) == len(given)


def test_views_open_takes_a_fresh_trigger_once(fake: FakeSlack, client: WebClient) -> None:
    """views.open answers a view V… for an issued trigger, and refuses a reused or unknown one."""
    trigger = fake.new_trigger_id()
    opened = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "request_view"
    assert opened["hash"] and fake.view(opened["id"])["blocks"][0]["block_id"] == "email_block"
    for trigger_id, error in ((trigger, "exchanged_trigger_id"), ("1.2.abc", "invalid_trigger_id")):
        with pytest.raises(SlackApiError) as refused:
            client.views_open(trigger_id=trigger_id, view=MODAL)
        assert refused.value.response["error"] == error


def test_views_open_refuses_an_expired_trigger() -> None:
    """A trigger older than trigger_ttl (3 s on Slack) is expired_trigger_id."""
    with FakeSlack(trigger_ttl=-1) as fake:
        client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
        with pytest.raises(SlackApiError) as refused:
            client.views_open(trigger_id=fake.new_trigger_id(), view=MODAL)
        assert refused.value.response["error"] == "expired_trigger_id"


def test_views_update_checks_the_hash(fake: FakeSlack, client: WebClient) -> None:
    """views.update replaces an open view; a stale hash is hash_conflict."""
    opened = client.views_open(trigger_id=fake.new_trigger_id(), view=MODAL)["view"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)["view"]
    assert updated["id"] == opened["id"]
    with pytest.raises(SlackApiError) as refused:
        client.views_update(view_id=opened["id"], hash="0.stale", view=MODAL)
    assert refused.value.response["error"] == "hash_conflict"


def test_usergroups_and_channels(fake: FakeSlack, client: WebClient) -> None:
    """usergroups.users.list and conversations.info answer what was configured, else errors."""
    fake.set_usergroup("S1", ["U1", "U2"])
    fake.add_channel("C9", name="approvals", is_member=False)
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    channel = client.conversations_info(channel="C9")["channel"]
    assert channel["id"] == "C9" and channel["is_member"] is False
    failing = [
        (lambda: client.usergroups_users_list(usergroup="S404"), "no_such_subteam"),
        (lambda: client.conversations_info(channel="C404"), "channel_not_found"),
        (lambda: client.chat_postMessage(channel="C9", text="x"), "not_in_channel"),
    ]
    for call, error in failing:
        with pytest.raises(SlackApiError) as refused:
            call()
        assert refused.value.response["error"] == error


def test_scripted_429_is_retried_by_slack_sdk(fake: FakeSlack, client: WebClient) -> None:
    """fail_next answers 429 + Retry-After; slack_sdk's RateLimitErrorRetryHandler retries it."""
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", retry_after=0)
    assert client.chat_postMessage(channel="C1", text="x")["ok"] is True
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].answer == {"ok": False, "error": "ratelimited"}
    assert len(fake.messages("C1")) == 1


def test_scripted_error_answers_ok_false(fake: FakeSlack, client: WebClient) -> None:
    """fail_next with another error answers 200 {"ok": false} once and changes nothing."""
    posted = client.chat_postMessage(channel="C1", text="x")
    fake.fail_next("chat.update", error="channel_not_found")
    with pytest.raises(SlackApiError) as refused:
        client.chat_update(channel="C1", ts=posted["ts"], text="y")
    assert refused.value.response.status_code == 200
    assert refused.value.response["error"] == "channel_not_found"
    assert fake.message("C1", posted["ts"])["text"] == "x"
    client.chat_update(channel="C1", ts=posted["ts"], text="y")
    assert fake.message("C1", posted["ts"])["text"] == "y"


def test_response_urls_are_recorded(fake: FakeSlack) -> None:
    """POSTs to a response_url are recorded with their JSON body; unknown ones are 404."""
    url = fake.new_response_url()
    sent = WebhookClient(url).send(text="Opening the form…", response_type="ephemeral")
    assert sent.status_code == 200
    post = fake.wait_for_response(where=lambda body: body["text"].startswith("Opening"))
    assert post.url == url and post.body["response_type"] == "ephemeral"
    assert WebhookClient(fake.base_url + "response/nope").send(text="x").status_code == 404


def test_wait_for_call_wakes_when_the_call_arrives(fake: FakeSlack, client: WebClient) -> None:
    """wait_for_call blocks until a matching call lands (from another thread), or times out."""
    worker = threading.Thread(
        target=lambda: client.chat_postMessage(channel="C1", text="late", thread_ts="1.1")
    )
    worker.start()
    call = fake.wait_for_call("chat.postMessage", where=lambda p: p.get("thread_ts") == "1.1")
    worker.join()
    assert call.params["text"] == "late" and call.ok
    with pytest.raises(TimeoutError):
        fake.wait_for_call("chat.update", timeout=0.05)


def test_slack_timeouts_outages_and_calls_in_flight() -> None:
    """time_out_next answers late, having done the call (acts) or not; outage() answers 503
    to every call and response_url post until it ends; in_flight() sees a call being
    answered."""
    import threading

    import httpx
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    with FakeSlack() as slack:
        slack.add_channel("C1")
        client = WebClient(token="xoxb-test", base_url=slack.api_url, timeout=1)  # noqa: S106
        slack.time_out_next("chat.postMessage", 2.0, acts=True)
        with pytest.raises(TimeoutError):
            client.chat_postMessage(channel="C1", text="lost answer")
        slack.time_out_next("chat.postMessage", 2.0, acts=False)
        with pytest.raises(TimeoutError):
            client.chat_postMessage(channel="C1", text="never arrived")
        assert [m["text"] for m in slack.messages("C1")] == ["lost answer"]
        slack.set_delay("chat.update", 1.0)
        posted = client.chat_postMessage(channel="C1", text="x")
        updating = threading.Thread(
            target=lambda: WebClient(token="xoxb-test", base_url=slack.api_url).chat_update(  # noqa: S106
                channel="C1", ts=posted["ts"], text="y"
            )
        )
        updating.start()
        slack.wait_for(lambda: slack.in_flight("chat.update") or None, 5, what="in flight")
        assert len(slack.in_flight("chat.update")) == 1
        updating.join()
        # Then nothing: the late answers (each held 2 s) have gone too.
        slack.wait_for(lambda: not slack.in_flight(), 5, what="nothing in flight")
        slack.set_delay("chat.update", 0)
        url = slack.new_response_url()
        slack.outage(30)
        assert slack.in_outage()
        with pytest.raises(SlackApiError) as refused:
            client.chat_postMessage(channel="C1", text="during")
        assert refused.value.response.status_code == 503
        assert httpx.post(url, json={"text": "hi"}, trust_env=False).status_code == 503
        slack.outage(0)
        assert not slack.in_outage()
        client.chat_postMessage(channel="C1", text="after")
        assert [m["text"] for m in slack.messages("C1")][-1] == "after"
