"""Helpers over the in-process bot (bot.standins.world.World) for the end-to-end tests: move
its clock, count the provider calls, read the stored request behind a message. What a person
reads in Slack (messages, threads, DMs, buttons) is read with the Driver (bot/standins/driver.py).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from bot.domain.model import utcnow
from bot.standins.driver import request_id_of
from bot.standins.world import World


def later(world: World, seconds: float) -> None:
    """Move the bot's clock (requests, claims, leases, sweeps, outbox) ``seconds`` past now."""
    moment = utcnow() + timedelta(seconds=seconds)
    world.services.approvals.clock = lambda: moment


def confirm_calls(world: World) -> int:
    """How many calls reached the provider's confirm endpoint."""
    return sum(1 for c in world.provider.calls if c["path"].endswith("/confirmed"))


def request_of(world: World, message: dict[str, Any]) -> Any:
    """The stored request behind a request message (its id is the Approve button's value);
    typed Any, so that a test reads an outcome's fields without narrowing it first."""
    request = world.services.store.get(request_id_of(message))
    assert request is not None, "the message's request is not stored"
    return request


def wait_drained(world: World, request_id: str, timeout: float = 15.0) -> None:
    """Wait until nothing is left in the request's outbox (everything told, or found to need
    no call), looking every 50 ms: what only the store shows wakes no waiter in Slack."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while world.services.store.outbox_entries(request_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the outbox of request {request_id} still holds entries")
        pause.wait(0.05)
