"""``python -m bot sandbox --bulk N``: one bulk request of N generated emails, approved by the
quorum and run to the end, printed as a person reads the channel.

The request is asked through the service (as the bulk form would ask it), approved by the
sandbox's two approvers clicking Approve on its request message, and run by the batch runner
on this thread (``services.runner.drain()``, at the sandbox's BULK_RATE) until every item has
ended; then the request message, its thread and the requester's DMs are printed as the stand-in
Slack holds them.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bot.cli.sandbox import NAMES, Narrator, readable, render
from bot.cli.sandbox_options import BULK_RATE
from bot.domain.model import Operation, State, VerificationRequest
from bot.slack.blocks.text import OPERATION_TITLES
from bot.slack.notifier import REQUEST_EVENT
from bot.standins.world import APPROVER, CHANNEL, REQUESTER, SECOND_APPROVER, World

# Options of a single request that a bulk request does not play (the sandbox says so).
SINGLE_ONLY = ("reject", "cancel", "home", "provider_error")
# Emails shown when the sandbox says what it asks for.
SHOWN = 3
# Seconds the sandbox waits for the bot to take a click (it answers in milliseconds).
CLICK_TIMEOUT = 15.0


def refuse_options(args: argparse.Namespace) -> str | None:
    """Why ``--bulk`` cannot be played with these options (None: it can)."""
    for name in SINGLE_ONLY:
        if getattr(args, name):
            option = "--" + name.replace("_", "-")
            return f"--bulk plays an approved batch; {option} is for a single request"
    if args.provider_state != "pending":
        return "--bulk asks nothing of the provider's view; --provider-state is for one request"
    return None


def emails_for(base: str, count: int) -> list[str]:
    """``count`` addresses made from ``base`` (alice@example.com: alice1@example.com, …),
    spread over up to three domains (example.com, shop1.example.com, shop2.example.com)."""
    local, _, domain = base.rpartition("@")
    domains = [domain] + [f"shop{n}.{domain}" for n in range(1, min(count, 3))]
    return [f"{local}{n}@{domains[(n - 1) % len(domains)]}" for n in range(1, count + 1)]


def play_bulk(world: World, narrator: Narrator, email: str, args: argparse.Namespace) -> int:
    services, driver = world.services, world.driver
    operation = Operation(args.operation)
    emails = emails_for(email, args.bulk)
    world.provider.cleared_domains = None  # each call clears its email's domain

    narrator.say("Sandbox: the real bot on 127.0.0.1, with stand-ins for Slack and the provider.")
    narrator.say(f"Nothing leaves this machine. BULK_RATE here: {BULK_RATE:g} calls a second.")
    narrator.heading(f"@{NAMES[REQUESTER]} asks for {len(emails)} emails in one request")
    shown = ", ".join(emails[:SHOWN]) + (
        f" and {len(emails) - SHOWN} more" if len(emails) > SHOWN else ""
    )
    narrator.say(f"“{OPERATION_TITLES[operation]}” for {shown}; reason “{args.reason}”.")
    asked = services.approvals.submit_bulk(emails, args.reason, REQUESTER, operation)
    request = asked.request
    message = _request_message(world, request.id)

    narrator.heading(f"#{NAMES[CHANNEL]}: the request")
    narrator.say(render(message))
    required = services.approvals.required(request)
    if required > 2:
        narrator.say(f"The request needs {required} approvals; the sandbox has two approvers.")
        return 1
    if required == 2:
        narrator.heading(f"@{NAMES[APPROVER]} clicks [ Approve ] and confirms")
        clicked = driver.approve(APPROVER, message)
        # The bot answers once the approval is recorded and the message shows it.
        narrator.say(f"Only @{NAMES[APPROVER]} sees: {readable(driver.answer(clicked))}")
        shown_now = world.slack.message(CHANNEL, message["ts"])
        narrator.heading(f"#{NAMES[CHANNEL]}: the request, one approval in")
        narrator.say(render(shown_now))
    last = SECOND_APPROVER if required == 2 else APPROVER
    narrator.heading(f"@{NAMES[last]} clicks [ Approve ] and confirms")
    driver.approve(last, message)
    _wait(world, lambda: _state(world, request.id) is not State.PENDING, "the run to start")

    narrator.heading(
        f"The batch runs: {len(emails)} provider calls, {BULK_RATE:g} a second at most"
    )
    started = time.monotonic()
    ran = services.runner.drain(timeout=max(120.0, 3 * len(emails) / BULK_RATE))
    narrator.say(f"{ran} emails called in {time.monotonic() - started:.1f} s.")

    narrator.heading(f"#{NAMES[CHANNEL]}: the request now")
    narrator.say(render(world.slack.message(CHANNEL, message["ts"])))
    replies = world.slack.messages(CHANNEL, message["ts"])
    if replies:
        narrator.heading("…and in its thread")
        for reply in replies:
            narrator.say(render(reply, indent="    "))
    dms = world.slack.messages(REQUESTER)
    if dms:
        narrator.heading(f"Direct messages to @{NAMES[REQUESTER]}")
        for dm in dms:
            narrator.say(render(dm))

    final = services.store.get(request.id)
    assert final is not None
    if operation is Operation.RESEND:
        calls = len(world.provider.resend_calls)
    else:
        calls = sum(1 for c in world.provider.calls if c["path"].endswith("/confirmed"))
    narrator.heading("Result")
    narrator.say(
        f"state {final.state.value} (expected succeeded); items: "
        + ", ".join(f"{n} {s}" for s, n in _counts(final).items())
        + f"; provider {operation.value} calls: {calls}; "
        f"Slack Web API calls: {len(world.slack.calls)}"
    )
    return 0 if final.state is State.SUCCEEDED else 1


def _request_message(world: World, request_id: str) -> dict[str, Any]:
    """The request message of ``request_id`` in the approval channel (by its metadata)."""

    def find() -> dict[str, Any] | None:
        for message in world.slack.messages(CHANNEL):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == REQUEST_EVENT and payload.get("request_id") == (
                request_id
            ):
                return message
        return None

    return world.slack.wait_for(find, CLICK_TIMEOUT, what="the bulk request's message")


def _state(world: World, request_id: str) -> State | None:
    request = world.services.store.get(request_id)
    return request.state if request is not None else None


def _wait(world: World, done: Any, what: str) -> None:
    """Wait until ``done()`` (the store, after a click the bot acked before acting on it)."""
    deadline = time.monotonic() + CLICK_TIMEOUT
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"sandbox: no {what} within {CLICK_TIMEOUT:.0f} s")
        time.sleep(0.02)


def _counts(request: VerificationRequest) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in request.items:
        counts[item.state.value] = counts.get(item.state.value, 0) + 1
    return counts
