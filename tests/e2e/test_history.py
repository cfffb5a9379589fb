"""End to end: what the store knows about an email and its domain, beside each new request and
behind /verify-email status."""

from __future__ import annotations

from datetime import timedelta

from bot.domain.model import (
    HISTORY_SHOWN,
    Action,
    State,
    new_request_id,
    one_item_request,
    utcnow,
)
from bot.domain.outcomes import Cleared
from bot.domain.ports import Transition
from bot.standins.driver import rendered
from bot.standins.world import APPROVER, OUTSIDER, REQUESTER, SECOND_APPROVER, World


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


def cleared_earlier(world: World, email: str, count: int) -> None:
    """``count`` requests for ``email`` cleared over the last days, written to the store as the
    bot writes them (created, claimed, succeeded), one an hour, oldest first."""
    store = world.services.store
    start = utcnow() - timedelta(days=2)
    for n in range(count):
        at = start + timedelta(hours=n)
        request = store.create(
            one_item_request(
                id=new_request_id(),
                email=email,
                domain=email.rpartition("@")[2],
                reason=f"TICKET-{n}",
                requester=REQUESTER,
                state=State.PENDING,
                created_at=at,
                expires_at=at + timedelta(days=1),
                updated_at=at,
            ),
            REQUESTER,
        )
        for to_state, action, outcome in (
            (State.EXECUTING, Action.APPROVE, None),
            (State.SUCCEEDED, Action.PROVIDER_SUCCESS, Cleared(("example.com",), (), "ok")),
        ):
            done = store.transition(
                Transition(
                    request.id,
                    frozenset({request.state}),
                    to_state,
                    actor=APPROVER,
                    action=action,
                    now=at,
                    decided_by=APPROVER,
                    item=0,
                    outcome=outcome,
                )
            )
            assert done is not None
            request = done


def test_a_long_history_says_there_were_more_than_it_counts(world: World) -> None:
    """More earlier requests than the line counts (HISTORY_SHOWN): it says "more than 20"
    and that its counts are of the latest 20, instead of silently reporting 20; exactly 20
    are counted plainly."""
    cleared_earlier(world, "alice@example.com", HISTORY_SHOWN + 2)
    cleared_earlier(world, "bob@example.org", HISTORY_SHOWN)
    shown = rendered(world.driver.ask(REQUESTER, "alice@example.com"))
    assert (
        f"Earlier requests for `alice@example.com` or `example.com`: more than {HISTORY_SHOWN} "
        f"in the last 30 days; of the latest {HISTORY_SHOWN}: cleared {HISTORY_SHOWN} times, "
        f"last by <@{APPROVER}> on <!date^"
    ) in shown
    exact = rendered(world.driver.ask(REQUESTER, "bob@example.org"))
    assert f"cleared {HISTORY_SHOWN} times in the last 30 days, last by" in exact
    assert "more than" not in exact
