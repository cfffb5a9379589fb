"""End to end over real HTTP: provider text is shown escaped in the real messages. A provider
whose ``verifiedAt``, ``lastCheckedAt`` or ``verification.expiresAt`` is ``<!channel>`` (not a
date) is shown escaped in the request message, and a failed call's message and code with
formatting in them cannot format the thread. The property over every builder is in
tests/unit/test_escaping.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mrkdwn import OWN_MARKUP, assert_inert, mrkdwn_texts

from bot.slack import blocks
from bot.standins.world import APPROVER, REQUESTER


def provider_line_of(message: dict[str, Any]) -> str:
    for text in mrkdwn_texts(message.get("blocks", [])):
        if blocks.PROVIDER_LINE_MARK in text:
            return text
    raise AssertionError(f"no provider line in {json.dumps(message.get('blocks'))}")


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "verified", "verified_at": "<!channel>"},
        {"status": "pending", "last_checked_at": "<!channel>"},
        {"status": "pending", "expires_at": "<!channel>"},
        {"status": "expired", "expires_at": "<!here> & <@U0APPROVER>"},
    ],
    ids=["verifiedAt", "lastCheckedAt", "expiresAt", "expiredAt"],
)
def test_a_provider_date_that_is_a_mention_is_escaped_in_the_real_message(world, fields):
    """The provider's view answers ``verifiedAt`` / ``lastCheckedAt`` /
    ``verification.expiresAt`` with a mention instead of a date: the request message Slack
    receives shows it escaped, in a code span, and pings nobody."""
    world.provider.set_domain("example.com", **fields)
    message = world.driver.ask(REQUESTER, "alice@example.com")
    line = provider_line_of(message)
    assert "&lt;!" in line, line
    assert_inert(line.replace(f"<@{APPROVER}>", ""))
    for text in mrkdwn_texts(message["blocks"]):
        assert "<!channel>" not in text and "<!here>" not in text, text


def test_a_failed_call_with_formatting_in_its_message_cannot_format_the_thread(world):
    """A provider error whose message and code carry formatting and a backtick is shown in a
    code span it cannot close, in the thread reply and the final message."""
    from bot.standins.provider import Response

    world.provider.enqueue(
        Response.json(
            400,
            {
                "code": "BAD`*CODE*",
                "error": "Bad Request",
                "message": "*oops* `<!channel>` _x_",
                "requestId": "rid`1",
            },
        )
    )
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.approve(APPROVER, message)
    final = world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)
    for text in [*mrkdwn_texts(final["blocks"]), *mrkdwn_texts(reply["blocks"])]:
        bare = OWN_MARKUP.sub("", text)
        assert "<" not in bare and ">" not in bare, text
        assert bare.count("`") % 2 == 0, text
    reply_text = " ".join(mrkdwn_texts(reply["blocks"]))
    assert "`HTTP 400 BADˋ*CODE*: *oops* ˋ&lt;!channel&gt;ˋ _x_`" in reply_text, reply_text
    assert "`ridˋ1`" in reply_text
