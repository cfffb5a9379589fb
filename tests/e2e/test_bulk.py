"""Bulk requests end to end, through Slack as people use it (the real bot in this process, the
stand-ins for Slack and the provider, SQLite and PostgreSQL): asked with a pasted or attached
list, two approvals (four eyes), the run at the provider's pace (its 429s and their headers),
Cancel during the run, Retry of the unknown items only, the one final reply within Slack's
limits at 1,000 emails, and a single request approved while a batch runs.

The form's own errors (bad lines, duplicates, files, open requests) are pinned in
tests/e2e/test_bulk_form.py; a replica killed mid-batch in tests/e2e/test_bulk_replicas.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from bot.domain.model import State
from bot.slack import ids
from bot.standins.driver import buttons
from bot.standins.provider import CONFIRM_PATH
from bot.standins.world import APPROVER, REQUESTER, SECOND_APPROVER, World

# Slack's limits on a message (chat.postMessage): blocks, a section's text, the fallback text.
MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_TEXT = 40000


def emails(n: int, domains: int = 3) -> list[str]:
    return [f"user{k}@d{k % domains}.example" for k in range(n)]


def bulk_world(database_url: str, *, runner: bool = False, **settings: Any) -> World:
    values = {
        "DATABASE_URL": database_url,
        "BULK_RATE": "200",
        "BULK_CONCURRENCY": "4",
        "BULK_PROGRESS_EVERY": "1",
    } | {name: str(value) for name, value in settings.items()}
    return World(settings=values, runner=runner)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with bulk_world(database_url) as w:
        yield w


def called(world: World) -> Counter[str]:
    """How many times each email reached the provider's confirm."""
    return Counter(c["json"]["email"] for c in world.provider.calls if c["json"])


def cleared(world: World) -> Counter[str]:
    """How many times each email was answered 200 by the provider's confirm."""
    return Counter(c["json"]["email"] for c in world.provider.calls if c["status"] == 200)


def approved_by_two(world: World, message: dict[str, Any]) -> dict[str, Any]:
    first = world.driver.approve(APPROVER, message)
    assert first.reply.status == 200
    world.slack.wait_for(
        lambda: "1 of 2" in json.dumps(world.driver.current(message)) or None,
        10,
        what="the first approval shown",
    )
    second = world.driver.approve(SECOND_APPROVER, world.driver.current(message))
    assert second.reply.status == 200
    # The click is acknowledged before its listener approves: wait for the run to start.
    world.slack.wait_for(
        lambda: any(r.bulk and r.state is not State.PENDING for r in store_requests(world)) or None,
        10,
        what="the quorum's approval recorded",
    )
    return world.driver.current(message)


def store_requests(world: World) -> list[Any]:
    return world.services.store.list_requests()


def request_of(world: World, message: dict[str, Any]) -> Any:
    """The bulk request ``message`` shows, once the bot has recorded where it posted it."""

    def recorded() -> Any:
        [request] = [r for r in world.services.store.list_requests() if r.bulk]
        return request if request.message_ts == message["ts"] else None

    return world.slack.wait_for(recorded, 10, what="the bulk request's message recorded")


def final_reply(world: World, message: dict[str, Any]) -> dict[str, Any]:
    return world.slack.wait_for(
        lambda: next(
            (m for m in world.driver.thread(message) if "Bulk" in str(m.get("text", ""))), None
        ),
        30,
        what="the bulk request's final thread reply",
    )


def test_a_pasted_list_runs_once_approved_by_two_and_ends_with_one_reply(world):
    """A pasted list (in Slack's mailto markup) is posted as one message with its count and
    domains; the requester's own Approve is refused, one approval shows "1 of 2", the second
    queues the run; every email is called once, and the thread gets one reply with the
    counts, the requester a DM."""
    asked = emails(7)
    pasted = "\n".join(f"<mailto:{e}|{e}>" for e in asked)
    message = world.driver.ask_bulk(REQUESTER, pasted=pasted)
    shown = json.dumps(message)
    assert "7 emails" in shown and "d0.example" in shown
    refused = world.driver.approve(REQUESTER, message)
    assert refused.reply.status == 200
    assert request_of(world, message).approvals == ()

    approved_by_two(world, message)
    assert request_of(world, message).state is State.EXECUTING
    assert world.provider.calls == []  # nobody calls on the click: the runners do

    assert world.services.runner.drain() == 7
    assert called(world) == Counter({e: 1 for e in asked})
    final = world.driver.final_message(message)
    assert request_of(world, message).state is State.SUCCEEDED
    assert not buttons(final)
    reply = final_reply(world, message)
    assert "7" in reply["text"]
    assert len([m for m in world.driver.thread(message) if "Bulk" in m.get("text", "")]) == 1
    world.driver.dm_with(REQUESTER, "7")


def test_the_final_reply_stays_within_slacks_limits_at_1000_emails(database_url):
    """An attached list of 1,000 emails, 300 of them refused by the provider: the final reply
    lists the failures with their codes, clipped with counts, within Slack's limits; the
    message too."""
    with bulk_world(database_url, BULK_RATE="1000", BULK_CONCURRENCY="8") as world:
        asked = emails(1000, domains=40)
        file = world.driver.upload(REQUESTER, "incident.txt", "\n".join(asked))
        message = world.driver.ask_bulk(REQUESTER, files=[file])
        world.provider.script("bad_request", times=300)
        approved_by_two(world, message)
        assert world.services.runner.drain(timeout=300) == 1000
        final = world.driver.final_message(message)
        request = request_of(world, message)
        assert request.state is State.FAILED
        assert sum(i.state is State.FAILED for i in request.items) == 300
        reply = final_reply(world, message)
        for shown in (final, reply):
            assert len(shown["blocks"]) <= MAX_BLOCKS
            assert len(shown.get("text", "")) <= MAX_TEXT
            for block in shown["blocks"]:
                text = (block.get("text") or {}).get("text", "")
                assert len(text) <= MAX_SECTION
        assert "more" in json.dumps(reply["blocks"])  # 300 failed emails are clipped
        assert "300" in json.dumps(reply)


def test_cancel_during_the_run_stops_the_emails_not_started(database_url):
    """The requester's Cancel while the provider holds the first calls: the emails not
    started are never called, those running end as their calls do, and the request ends
    cancelled with one final reply."""
    with bulk_world(database_url, runner=True, BULK_CONCURRENCY="2", BULK_RATE="50") as world:
        world.provider.delay = 1.0
        asked = emails(12)
        message = world.driver.ask_bulk(REQUESTER, pasted=" ".join(asked))
        approved_by_two(world, message)
        assert world.provider.wait_in_flight(CONFIRM_PATH, 10)

        # Its progress, shown as the first calls end (BULK_PROGRESS_EVERY: 1 s).
        def progress_shown() -> dict[str, Any] | None:
            shown = world.driver.current(message)
            return shown if "of 12 done" in json.dumps(shown) else None

        running = world.slack.wait_for(progress_shown, 15, what="the run's progress")
        assert ids.CANCEL_ACTION in buttons(running)
        stopped = world.driver.cancel(REQUESTER, running)
        assert stopped.reply.status == 200
        world.driver.final_message(message)
        request = request_of(world, message)
        assert request.state is State.CANCELLED
        states = Counter(i.state for i in request.items)
        assert states[State.SUCCEEDED] == sum(called(world).values())
        assert states[State.SUCCEEDED] + states[State.CANCELLED] == 12
        assert states[State.CANCELLED] >= 12 - 4  # at most a few calls had started
        assert max(called(world).values()) == 1
        final_reply(world, message)


def test_retry_of_a_batch_calls_its_unknown_emails_only(world):
    """One call whose connection closed after the provider read it (the outcome unknown): the
    batch ends unknown with Retry in its reply; an approver's Retry queues that email only,
    which is called once more; the batch ends succeeded."""
    asked = emails(5)
    message = world.driver.ask_bulk(REQUESTER, pasted=",".join(asked))
    world.provider.script("close_after_read")
    approved_by_two(world, message)
    world.services.runner.drain()
    request = request_of(world, message)
    assert request.state is State.UNKNOWN
    [unknown] = [i.email for i in request.items if i.state is State.UNKNOWN]
    reply = final_reply(world, message)
    assert ids.RETRY_ACTION in buttons(reply)
    before = called(world)

    retried = world.driver.click(APPROVER, reply, ids.RETRY_ACTION)
    assert retried.reply.status == 200
    world.slack.wait_for(  # acknowledged before its listener queues the unknown item again
        lambda: request_of(world, message).state is State.EXECUTING or None,
        10,
        what="the Retry recorded",
    )
    world.services.runner.drain()
    assert called(world) - before == Counter({unknown: 1})
    assert request_of(world, message).state is State.SUCCEEDED
    assert cleared(world) == Counter({e: 1 for e in asked})


def test_the_providers_rate_limit_slows_the_run_and_clears_each_email_once(database_url):
    """The provider allows 10 calls a second and answers the rest 429 with the documented
    headers (Retry-After, X-RateLimit-*); the bot asks for 50 a second: the answers hold every
    runner off, each email is cleared exactly once, and the 429s stay a minority."""
    with bulk_world(database_url, BULK_RATE="50", BULK_CONCURRENCY="4") as world:
        world.provider.rate_limit(10, burst=5)
        asked = emails(40)
        message = world.driver.ask_bulk(REQUESTER, pasted="\n".join(asked))
        approved_by_two(world, message)
        world.services.runner.drain(timeout=120)
        assert request_of(world, message).state is State.SUCCEEDED
        assert cleared(world) == Counter({e: 1 for e in asked})
        limited = world.provider.rate_limited_count
        # Each 429's Retry-After holds every runner (not only the one answered): without that
        # the runners would keep asking five times faster than allowed, mostly refused.
        assert 0 < limited <= len(world.provider.calls) // 4


def test_a_single_request_is_not_starved_by_a_running_batch(database_url):
    """While a batch's runners keep the provider busy, a single request's approval calls the
    provider at once: it ends before the batch does."""
    with bulk_world(database_url, runner=True, BULK_CONCURRENCY="2", BULK_RATE="4") as world:
        world.provider.delay = 0.3
        message = world.driver.ask_bulk(REQUESTER, pasted=" ".join(emails(20)))
        approved_by_two(world, message)
        assert world.provider.wait_in_flight(CONFIRM_PATH, 10)
        single = world.driver.ask(REQUESTER, "solo@single.example")
        world.driver.approve(APPROVER, single)
        world.driver.final_message(single)
        assert request_of(world, message).state is State.EXECUTING
        assert called(world)["solo@single.example"] == 1


def test_the_strictest_rule_of_the_emails_decides_a_bulk_request(database_url, tmp_path):
    """Emails under two rules: the request carries the strictest terms (the most approvals, at
    least [bulk]'s, and approvers who are approvers of both rules); a senior who is no
    approver of the [default] is refused, two approvers of both run it."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[default]\napprovers = ["S0APPROVERS"]\n\n[bulk]\napprovals_required = 2\n\n'
        '[[rule]]\nname = "vip"\ndomains = ["*.vip.example"]\napprovers = ["S0SENIOR"]\n'
    )
    with bulk_world(database_url, POLICY_FILE=policy) as world:
        world.slack.set_usergroup("S0SENIOR", ["U0SENIOR1", APPROVER, SECOND_APPROVER])
        asked = ["ann@a.vip.example", "bob@plain.example", "cid@b.vip.example"]
        message = world.driver.ask_bulk(REQUESTER, pasted="\n".join(asked))
        request = request_of(world, message)
        assert request.rule is not None
        assert request.rule.name == "strictest of vip, default"
        assert request.rule.approvals_required == 2
        assert request.rule.approvers == ("S0SENIOR",)
        assert request.rule.also_approvers == (("S0APPROVERS",),)
        assert "strictest of vip, default" in json.dumps(message)

        refused = world.driver.approve("U0SENIOR1", message)
        assert refused.reply.status == 200
        assert request_of(world, message).approvals == ()
        approved_by_two(world, message)
        assert world.services.runner.drain() == 3
        assert cleared(world) == Counter({e: 1 for e in asked})
