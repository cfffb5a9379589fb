"""End to end: what the store knows about an email and its domain, beside each new request and
behind /verify-email status."""

from __future__ import annotations

import json

from bot.standins.world import APPROVER, OUTSIDER, REQUESTER, SECOND_APPROVER, World


def rendered(message: dict) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def test_a_first_request_says_there_is_no_history(world: World) -> None:
    """A request for an email and domain never seen says so beside it."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    assert "No earlier request for `alice@example.com` or `example.com`" in rendered(message)


def test_a_repeat_is_shown_with_its_earlier_outcomes(world: World) -> None:
    """Earlier requests for the same email or domain are counted beside a new one: how often
    it was cleared, by whom and when, and the other outcomes."""
    first = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.approve(APPROVER, first)
    world.driver.final_message(first)
    second = world.driver.ask(REQUESTER, "bob@example.com")  # same domain
    world.driver.reject(SECOND_APPROVER, second)
    world.driver.final_message(second)
    third = world.driver.ask(REQUESTER, "alice@example.com")
    shown = rendered(third)
    assert "Earlier requests for `alice@example.com` or `example.com`" in shown
    assert f"cleared once in the last 30 days, last by <@{APPROVER}> on <!date^" in shown
    assert "1 rejected" in shown
    other = world.driver.ask(REQUESTER, "carol@example.org")
    assert "No earlier request" in rendered(other)


def test_status_shows_the_open_request_and_the_last_outcomes(world: World) -> None:
    """/verify-email status EMAIL: the open request with a link, and what became of the
    earlier ones; privately."""
    done = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.approve(APPROVER, done)
    world.driver.final_message(done)
    world.driver.ask(REQUESTER, "alice@example.com")
    opened = len(world.slack.calls_to("views.open"))
    sent = world.driver.command(REQUESTER, "status <mailto:alice@example.com|alice@example.com>")
    assert sent.reply.status == 200 and sent.reply.text == ""
    answer = world.driver.answer(sent)
    assert "Requests for `alice@example.com`" in answer
    assert "|the open request> is pending" in answer  # a permalink to it
    assert "succeeded" in answer and f"decided by <@{APPROVER}>" in answer
    assert len(world.slack.calls_to("views.open")) == opened  # no form


def test_status_for_an_unknown_email_and_for_outsiders(world: World) -> None:
    """An address never asked about says there is nothing; someone with no role is refused;
    "status" alone says what to type."""
    answer = world.driver.answer(world.driver.command(APPROVER, "status nobody@example.net"))
    assert "No open request" in answer and "No other request" in answer
    refused = world.driver.answer(world.driver.command(OUTSIDER, "status nobody@example.net"))
    assert "not on the list" in refused
    alone = world.driver.command(REQUESTER, "status")
    assert "status alice@example.com" in alone.reply.body["text"]
    bad = world.driver.command(REQUESTER, "status not-an-email")
    assert "is not an email address" in bad.reply.body["text"]
    assert world.slack.calls_to("views.open") == []
