"""The notifier against the Slack stand-in: one Web API call per method, nothing written
anywhere but Slack, and every failure said as transient or permanent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from doubles import make_request
from slack_sdk import WebClient

from bot.domain.model import State, VerificationRequest
from bot.domain.ports import OutboxEntry
from bot.slack.notices import Notice
from bot.slack.notifier import DeliveryError, Notifier, Posted
from bot.slack.render import Renderer
from bot.standins.slack import FakeSlack
from bot.store import open_store

CHANNEL = "C0APPROVALS"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def slack():
    with FakeSlack(bot_token="xoxb-test") as fake:
        fake.add_channel(CHANNEL, name="approvals")
        yield fake


@pytest.fixture
def notifier(slack: FakeSlack) -> Notifier:
    # No retry handlers: each failure the stand-in scripts reaches the notifier as it is.
    return Notifier(WebClient(token="xoxb-test", base_url=slack.api_url, timeout=5), CHANNEL)


def request(**changes) -> VerificationRequest:
    return make_request(**{"id": "0123456789abcdef", "created_at": T0, **changes})


def test_post_returns_where_slack_put_it(slack: FakeSlack, notifier: Notifier) -> None:
    """A post goes where it is told, with its blocks and metadata, in one call; the notifier
    returns the channel and ts (recording them is the outbox's job)."""
    posted = notifier.post(
        "post",
        CHANNEL,
        "Request for alice@example.com",
        [{"type": "section", "text": {"type": "mrkdwn", "text": "alice@example.com"}}],
        metadata={"event_type": "verify_email_request", "event_payload": {"request_id": "r"}},
    )
    assert isinstance(posted, Posted) and posted.channel == CHANNEL
    message = slack.message(CHANNEL, posted.ts)
    assert "alice@example.com" in str(message["blocks"])
    assert message["metadata"]["event_payload"] == {"request_id": "r"}
    assert [c.method for c in slack.calls] == ["chat.postMessage"]


def test_a_post_in_a_thread_replies_there(slack: FakeSlack, notifier: Notifier) -> None:
    """With ``thread_ts`` the post is a reply in that message's thread."""
    parent = notifier.post("post", CHANNEL, "parent")
    reply = notifier.post("reply", CHANNEL, "child", thread_ts=parent.ts)
    assert slack.message(CHANNEL, reply.ts)["thread_ts"] == parent.ts


def test_show_and_reply_need_the_message(notifier: Notifier, tmp_path) -> None:
    """Rendering an update or a thread reply for a request that was never posted is a
    permanent failure, with no call to Slack."""
    store = open_store(f"sqlite:///{tmp_path}/r.db")
    try:
        renderer = Renderer(store, notifier)
        for kind in (Notice.SHOW, Notice.REPLY_RESULT):
            entry = OutboxEntry(1, "0123456789abcdef", kind, kind.lane, 0, T0, T0)
            with pytest.raises(DeliveryError) as failed:
                renderer.send(entry, request(state=State.SUCCEEDED))
            assert failed.value.permanent and "no message" in failed.value.reason
    finally:
        store.close()


def test_update_rewrites_the_message_in_place(slack: FakeSlack, notifier: Notifier) -> None:
    """update() replaces a posted message's text and blocks."""
    posted = notifier.post("post", CHANNEL, "pending")
    notifier.update("update", posted.channel, posted.ts, "rejected", [])
    assert slack.message(CHANNEL, posted.ts)["text"] == "rejected"


@pytest.mark.parametrize(
    ("error", "status", "permanent"),
    [
        ("not_in_channel", None, True),
        ("channel_not_found", None, True),
        ("invalid_auth", None, True),
        ("internal_error", None, False),
        ("service_unavailable", None, False),
        ("fatal_error", 500, False),
        ("ratelimited", None, False),
    ],
)
def test_failures_say_whether_trying_again_can_help(
    slack: FakeSlack, notifier: Notifier, error: str, status: int | None, permanent: bool
) -> None:
    """Slack's own trouble and rate limits are transient; an error a person must fix is not."""
    slack.fail_next("chat.postMessage", error=error, status=status)
    with pytest.raises(DeliveryError) as failed:
        notifier.dm("U0REQ", "hello")
    assert failed.value.permanent is permanent
    assert failed.value.reason == (f"HTTP {status}" if status else error)


def test_an_unreachable_slack_is_transient(slack: FakeSlack) -> None:
    """No connection at all (nothing listens) is worth trying again later."""
    url = slack.api_url
    slack.stop()
    notifier = Notifier(WebClient(token="xoxb-test", base_url=url, timeout=2), CHANNEL)
    with pytest.raises(DeliveryError) as failed:
        notifier.dm("U0REQ", "hello")
    assert failed.value.permanent is False


def test_permalink_or_none(slack: FakeSlack, notifier: Notifier) -> None:
    """A posted request has an https permalink; one never posted, or one Slack cannot find,
    has none (and nothing raises)."""
    posted = notifier.post("post", CHANNEL, "a request")
    link = notifier.permalink(request(channel=posted.channel, message_ts=posted.ts))
    assert link is not None and link.startswith("https://")
    assert notifier.permalink(request()) is None
    assert notifier.permalink(request(channel=CHANNEL, message_ts="9.9")) is None
