"""The notifier against the Slack stand-in: one Web API call per method, nothing written
anywhere but Slack, and every failure said as transient or permanent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from doubles import make_request
from slack_sdk import WebClient

from bot.domain.model import State, VerificationRequest
from bot.slack.notifier import DeliveryError, Notifier, Posted
from bot.standins.slack import FakeSlack

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


def test_post_request_returns_where_slack_put_it(slack: FakeSlack, notifier: Notifier) -> None:
    """The request message goes to APPROVAL_CHANNEL with its blocks; the notifier returns
    the channel and ts (recording them is the outbox's job)."""
    posted = notifier.post_request(request())
    assert isinstance(posted, Posted) and posted.channel == CHANNEL
    message = slack.message(CHANNEL, posted.ts)
    assert "alice@example.com" in str(message["blocks"])
    assert [c.method for c in slack.calls] == ["chat.postMessage"]


def test_show_and_reply_need_the_message(notifier: Notifier) -> None:
    """Updating or replying to a request that was never posted is a permanent failure."""
    for method in (notifier.show, notifier.reply_result):
        with pytest.raises(DeliveryError) as failed:
            method(request(state=State.SUCCEEDED))
        assert failed.value.permanent and "no message" in failed.value.reason


def test_show_updates_the_message_in_place(slack: FakeSlack, notifier: Notifier) -> None:
    """show() rewrites the posted message to the request's current state."""
    posted = notifier.post_request(request())
    notifier.show(request(state=State.REJECTED, channel=posted.channel, message_ts=posted.ts))
    assert "rejected" in slack.message(CHANNEL, posted.ts)["text"]


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
    posted = notifier.post_request(request())
    link = notifier.permalink(request(channel=posted.channel, message_ts=posted.ts))
    assert link is not None and link.startswith("https://")
    assert notifier.permalink(request()) is None
    assert notifier.permalink(request(channel=CHANNEL, message_ts="9.9")) is None
