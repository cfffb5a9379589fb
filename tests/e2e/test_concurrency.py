"""Fast where people wait: acks never wait on the provider, and approvals run side by side.

These pin a structural property (nothing serialises behind a slow provider) with wide margins:
a serialised bot misses them by several seconds. The measured figures come from the benchmark.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.domain.model import State
from bot.standins.world import APPROVER, REQUESTER, World


def ask_many(world: World, count: int, prefix: str) -> list[dict]:
    return [world.driver.ask(REQUESTER, f"{prefix}{n}@example.com") for n in range(count)]


def click_together(world: World, messages: list[dict]) -> list:
    barrier = threading.Barrier(len(messages))

    def click(message: dict):
        barrier.wait()
        return world.driver.approve(APPROVER, message)

    with ThreadPoolExecutor(max_workers=len(messages)) as pool:
        return list(pool.map(click, messages))


@pytest.fixture
def slow_world(tmp_path):
    with World(database_path=tmp_path / "b.db", settings={"HOSTUP_TIMEOUT": 15}) as w:
        yield w


def test_command_answered_while_a_dozen_approvals_wait(slow_world):
    """With 12 approvals waiting on a 6 s provider, a new /verify-email acks and opens its modal
    in well under a second."""
    world = slow_world
    messages = ask_many(world, 12, "wait")
    world.provider.delay = 6.0
    clicks = click_together(world, messages)
    assert all(c.reply.status == 200 for c in clicks)
    world.provider.wait_for_calls(12, timeout=5)  # all twelve are now inside the provider

    started = time.monotonic()
    sent = world.driver.command(REQUESTER, "fresh@example.com")
    acked = time.monotonic() - started
    world.driver.modal(sent)
    opened = time.monotonic() - started
    assert sent.reply.status == 200
    assert acked < 1.0, f"ack took {acked:.2f} s"
    assert opened < 1.0, f"views.open came {opened:.2f} s after the command"
    # Nothing has finished yet: the twelve really were waiting while we were answered.
    assert all(world.services.store.get(_id(m)).state is State.EXECUTING for m in messages)


def test_thirty_approvals_run_side_by_side(tmp_path):
    """Thirty approvals clicked together against a 1 s provider all finish in under 3 s."""
    with World(database_path=tmp_path / "b.db") as world:
        messages = ask_many(world, 30, "burst")
        world.provider.delay = 1.0
        started = time.monotonic()
        click_together(world, messages)
        for message in messages:
            world.driver.final_message(message)
        elapsed = time.monotonic() - started
        assert len(world.provider.calls) == 30
        stored = [world.services.store.get(_id(m)) for m in messages]
        assert all(r is not None and r.state is State.SUCCEEDED for r in stored)
        assert elapsed < 3.0, f"30 approvals took {elapsed:.2f} s"


def test_many_clicks_one_provider_call(world):
    """Forty clicks on one request, by two approvers, make exactly one provider call."""
    message = world.driver.ask(REQUESTER, "once@example.com")
    world.provider.delay = 0.3
    click_together(world, [message] * 40)
    world.driver.final_message(message)
    assert len(world.provider.calls) == 1
    request = world.services.store.get(_id(message))
    assert request.state is State.SUCCEEDED
    claims = [e for e in world.services.store.audit_log(request.id) if e.action == "approve"]
    assert len(claims) == 1


def _id(message: dict) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("value"):
                return element["value"]
    raise AssertionError("no button with a request id")
