"""Fast where people wait: acks never wait on the provider, and approvals run side by side.

These pin the structural property (nothing serialises behind a slow provider) by holding the
provider's answers until the test releases them, so no wall clock is read: a bot whose acks
waited for the provider, or whose calls ran one at a time, never gets past the hold. The
measured figures come from the benchmark (benchmarks/run.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.domain.model import State
from bot.slack import ids
from bot.standins.driver import rendered
from bot.standins.provider import Response
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
    """With 12 approvals held inside the provider (none answered until the test says), every
    click is acked and a new /verify-email acks and opens its modal: nothing on the ack path
    waits for the provider. The twelve are still executing when all that is done."""
    world = slow_world
    messages = ask_many(world, 12, "wait")
    gate = threading.Event()
    world.provider.enqueue(*(Response.held(gate) for _ in messages))
    try:
        clicks = click_together(world, messages)
        assert all(c.reply.status == 200 for c in clicks)
        world.provider.wait_for_calls(12)  # all twelve are now inside the provider
        sent = world.driver.command(REQUESTER, "fresh@example.com")
        assert sent.reply.status == 200
        assert world.driver.modal(sent)["callback_id"] == ids.REQUEST_VIEW
        # Nothing has finished yet: the twelve really were waiting while we were answered.
        assert all(c["status"] is None for c in world.provider.calls)
        assert all(world.services.store.get(_id(m)).state is State.EXECUTING for m in messages)
    finally:
        gate.set()
    for message in messages:
        assert "state: succeeded" in rendered(world.driver.final_message(message))


def test_thirty_approvals_run_side_by_side(tmp_path):
    """Thirty approvals clicked together are all inside the provider at once (each held there
    until the test releases them), so none waits for another's call; released, all succeed
    with one call each. How fast is the benchmark's to say (benchmarks/run.py)."""
    with World(database_path=tmp_path / "b.db", settings={"HOSTUP_TIMEOUT": 15}) as world:
        messages = ask_many(world, 30, "burst")
        gate = threading.Event()
        world.provider.enqueue(*(Response.held(gate) for _ in messages))
        try:
            click_together(world, messages)
            held = world.provider.wait_for_calls(30)
            assert len(held) == 30 and all(c["status"] is None for c in held)
        finally:
            gate.set()
        for message in messages:
            world.driver.final_message(message)
        assert len(world.provider.calls) == 30
        stored = [world.services.store.get(_id(m)) for m in messages]
        assert all(r is not None and r.state is State.SUCCEEDED for r in stored)


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
