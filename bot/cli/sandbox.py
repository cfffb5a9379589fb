"""``python -m bot sandbox``: the whole flow, offline, printed as a person would read the channel.

It runs the real bot (the same listeners, store, provider client and Block Kit) over real HTTP
on loopback, against the stand-ins in ``bot.standins``: no settings, no Slack workspace and no
network are needed, and nothing is left behind unless ``--database`` asks for it.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import textwrap
from pathlib import Path
from typing import Any, TextIO

from bot.domain.inputs import InvalidInput, validate_email
from bot.domain.model import State
from bot.slack import ids
from bot.standins.provider import MODES, Response
from bot.standins.world import APPROVER, CHANNEL, REQUESTER, SECOND_APPROVER, World

DESCRIPTION = (
    "Play the whole flow offline: a request, the form, the approval (by one or two approvers; "
    "or a rejection, or the requester's cancel), the "
    "provider call and the threaded summary. The real bot runs on loopback against built-in "
    "stand-ins for Slack and the provider, and the channel is printed as a person reads it."
)

NAMES = {
    REQUESTER: "sam (support)",
    APPROVER: "ana (approver)",
    SECOND_APPROVER: "lee (approver)",
    CHANNEL: "email-approvals",
}

# --provider-error choices: an HTTP status the provider answers with, or a way it misbehaves.
PROVIDER_ERRORS: dict[str, str] = {
    "400": "bad_request",
    "401": "unauthorized",
    "403": "forbidden",
    "404": "not_found",
    "429": "rate_limited",
    "500": "server_error",
    "502": "bad_gateway",
    "503": "unavailable",
    "html": "bad_gateway",
    "wrong-shape": "wrong_shape",
    "timeout": "hang",
    "disconnect": "close_after_read",
}
SANDBOX_TIMEOUT = 1.0  # HOSTUP_TIMEOUT in the sandbox, so --provider-error timeout is quick

# --provider-state choices: what the provider's per-domain view says of the domain, or how
# reading it fails (the request goes ahead either way).
PROVIDER_STATES = (
    "pending",
    "verified",
    "unverified",
    "expired",
    "unknown",
    "suspended",
    "not-found",
    "no-scope",
    "rate-limited",
    "timeout",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--email",
        default="alice@example.com",
        help="the address to ask about (default: alice@example.com)",
    )
    parser.add_argument(
        "--reason",
        default="TICKET-1234: customer cannot receive mail",
        help="the reason typed into the form",
    )
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument(
        "--reject", action="store_true", help="the approver rejects instead of approving"
    )
    decision.add_argument(
        "--cancel",
        action="store_true",
        help="the requester cancels from the DM before anyone decides",
    )
    parser.add_argument(
        "--approvals",
        type=int,
        choices=(1, 2),
        default=1,
        metavar="N",
        help="APPROVALS_REQUIRED: 2 shows two approvers approving in turn (default: 1)",
    )
    parser.add_argument(
        "--home",
        action="store_true",
        help="show the app's Home tab: the approver's queue while the request waits (and the "
        "Approve, or the requester's Cancel, clicked there), and the requester's list at the end",
    )
    parser.add_argument(
        "--provider-error",
        choices=sorted(PROVIDER_ERRORS),
        metavar="ERROR",
        help="make the provider fail: an HTTP status (400, 401, 403, 404, 429, "
        "500, 502, 503), html, wrong-shape, timeout or disconnect",
    )
    parser.add_argument(
        "--provider-state",
        choices=PROVIDER_STATES,
        default="pending",
        metavar="STATE",
        help="what the provider's view of the domain reads beside the request: pending "
        "(default), verified, unverified, expired, unknown, suspended; or how reading it "
        "fails: not-found, no-scope, rate-limited, timeout",
    )
    parser.add_argument(
        "--domains",
        type=int,
        default=1,
        metavar="N",
        help="how many domains the provider says it cleared (default: 1)",
    )
    parser.add_argument(
        "--database",
        type=Path,
        metavar="PATH",
        help="keep the store in this SQLite file (default: a temporary one, deleted afterwards)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the bot's own log lines")


def readable(text: str) -> str:
    """Slack mrkdwn as a person sees it: mentions and dates resolved, escapes undone."""
    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<@([A-Z0-9]+)>", lambda m: "@" + NAMES.get(m.group(1), m.group(1)), text)
    text = re.sub(r"<#([A-Z0-9]+)>", lambda m: "#" + NAMES.get(m.group(1), m.group(1)), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render(message: dict[str, Any], indent: str = "") -> str:
    lines: list[str] = []
    for block in message.get("blocks") or [{"type": "section", "text": {"text": message["text"]}}]:
        kind = block.get("type")
        if kind == "header":
            lines.append(readable(block["text"]["text"]).upper())
        elif kind == "divider":
            lines.append("─" * 40)
        elif kind == "section":
            lines.extend(readable(block["text"]["text"]).splitlines())
        elif kind == "context":
            lines.append(readable(" · ".join(e.get("text", "") for e in block["elements"])))
        elif kind == "actions":
            lines.append("  ".join(f"[ {e['text']['text']} ]" for e in block["elements"]))
    wrapped = [textwrap.fill(line, 96, subsequent_indent="  ") if line else "" for line in lines]
    return textwrap.indent("\n".join(wrapped), indent + "│ ", lambda _: True)


class Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def heading(self, text: str) -> None:
        self.say()
        self.say(f"── {text} " + "─" * max(0, 72 - len(text)))


def run_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    narrator = Narrator(out)
    try:
        email = validate_email(args.email)
    except InvalidInput as exc:
        narrator.say(f"--email: {exc}")
        return 2
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    settings = {"HOSTUP_TIMEOUT": SANDBOX_TIMEOUT, "APPROVALS_REQUIRED": args.approvals}
    with World(database_path=args.database, settings=settings) as world:
        return _play(world, narrator, email, args)


def _play(world: World, narrator: Narrator, email: str, args: argparse.Namespace) -> int:
    driver = world.driver
    assert driver is not None and world.services is not None
    domain = email.rpartition("@")[2]
    world.provider.cleared_domains = [domain] + [
        f"shop{n}.{domain}" for n in range(1, max(1, args.domains))
    ]
    _provider_state(world, domain, args.provider_state)
    if args.provider_error:
        mode = PROVIDER_ERRORS[args.provider_error]
        if args.provider_error == "timeout":
            world.provider.enqueue(Response.hang(SANDBOX_TIMEOUT + 2))
        else:
            # A 429 is retried, so it has to keep answering 429 to be seen failing.
            world.provider.script(mode, times=3 if mode == "rate_limited" else 1)
        if mode not in MODES:  # pragma: no cover - PROVIDER_ERRORS only names known modes
            raise ValueError(mode)

    narrator.say("Sandbox: the real bot on 127.0.0.1, with stand-ins for Slack and the provider.")
    narrator.say(f"Nothing leaves this machine. Store: {_store_label(world, args)}")

    narrator.heading(f"@{NAMES[REQUESTER]} types  /verify-email {email}")
    sent = driver.command(REQUESTER, email)
    view = driver.modal(sent)
    narrator.say(f"A form opens: “{view['title']['text']}”, email prefilled with {email}.")
    narrator.say(f"@{NAMES[REQUESTER]} fills in the reason “{args.reason}” and submits it.")
    reply = driver.submit_request(REQUESTER, view, reason=args.reason)
    if isinstance(reply.body, dict) and reply.body.get("errors"):
        narrator.say(f"The form refused it: {json.dumps(reply.body['errors'])}")
        return 1
    message = driver.with_provider_line(driver.request_message(email))

    narrator.heading(f"#{NAMES[CHANNEL]}: the request")
    narrator.say(render(message))
    request_id = world.services.store.list_requests()[-1].id

    if args.home and not args.cancel:
        narrator.heading(f"@{NAMES[APPROVER]} opens the bot's Home tab")
        narrator.say(render(driver.open_home(APPROVER)))

    if args.cancel and args.home:
        narrator.heading(f"@{NAMES[REQUESTER]} opens the bot's Home tab")
        narrator.say(render(driver.open_home(REQUESTER)))
        narrator.heading(f"@{NAMES[REQUESTER]} clicks [ Cancel request ] there")
        _home_click(world, narrator, REQUESTER, ids.CANCEL_ACTION, request_id, answered=True)
    elif args.cancel:
        narrator.heading(f"@{NAMES[REQUESTER]} clicks [ Cancel request ] on the request")
        cancelled = driver.cancel(REQUESTER, message)
        narrator.say(f"The bot tells them: {readable(driver.answer(cancelled))}")
    elif args.reject:
        narrator.heading(f"@{NAMES[APPROVER]} clicks [ Reject ] and gives a reason")
        driver.reject(APPROVER, message, reason="Not verified with the customer yet")
    else:
        if args.home:
            narrator.heading(f"@{NAMES[APPROVER]} clicks [ Approve ] on the Home tab")
            _home_click(
                world, narrator, APPROVER, ids.APPROVE_ACTION, request_id, args.approvals > 1
            )
        else:
            narrator.heading(f"@{NAMES[APPROVER]} clicks [ Approve ] and confirms")
            clicked = driver.approve(APPROVER, message)
            if args.approvals > 1:
                answer = readable(driver.answer(clicked))
                narrator.say(f"Only @{NAMES[APPROVER]} sees: {answer}")
        if args.approvals > 1:
            shown = world.slack.wait_for(
                lambda: (
                    world.slack.message(CHANNEL, message["ts"])
                    if "1 of 2" in str(world.slack.message(CHANNEL, message["ts"]))
                    else None
                ),
                driver.timeout,
                what="the message showing the first approval",
            )
            narrator.heading(f"#{NAMES[CHANNEL]}: the request, one approval in")
            narrator.say(render(shown))
            narrator.heading(f"@{NAMES[SECOND_APPROVER]} clicks [ Approve ] and confirms")
            driver.approve(SECOND_APPROVER, message)
    final = driver.final_message(message)

    narrator.heading(f"#{NAMES[CHANNEL]}: the request now")
    narrator.say(render(final))
    expected_thread = not (args.reject or args.cancel)
    if expected_thread:
        thread_reply = driver.wait_thread_reply(message)
        narrator.heading("…and in its thread")
        narrator.say(render(thread_reply, indent="    "))
    # The requester hears where the request went, then how it ended (a cancel needs no news).
    expected_dms = 1 if args.cancel else 2
    dms = world.slack.wait_for(
        lambda: (
            world.slack.messages(REQUESTER)
            if len(world.slack.messages(REQUESTER)) >= expected_dms
            else None
        ),
        driver.timeout,
        what="the requester's direct messages",
    )
    if dms:
        narrator.heading(f"Direct messages to @{NAMES[REQUESTER]}")
        for dm in dms:
            narrator.say(render(dm))

    if args.home:
        narrator.heading(f"@{NAMES[REQUESTER]} opens the bot's Home tab")
        narrator.say(render(driver.open_home(REQUESTER)))

    request = world.services.store.list_requests()[-1]
    expected = _expected_state(args)
    provider_calls = [c for c in world.provider.calls if c["path"].endswith("/confirmed")]
    narrator.heading("Result")
    narrator.say(
        f"state {request.state.value} (expected {expected.value}); "
        f"provider confirm calls: {len(provider_calls)}; "
        f"provider view calls: {len(world.provider.view_calls)}; "
        f"Slack Web API calls: {len(world.slack.calls)}"
    )
    return 0 if request.state is expected else 1


def _provider_state(world: World, domain: str, state: str) -> None:
    """Set what the stand-in's per-domain view says of ``domain`` (or how it fails)."""
    provider = world.provider
    if state == "not-found":
        provider.unknown_domains.add(domain)
    elif state == "no-scope":
        provider.scopes.clear()
    elif state == "rate-limited":
        provider.script_view("rate_limited")
    elif state == "timeout":
        provider.script_view("hang")
    elif state == "suspended":
        provider.set_domain(domain, status="pending", is_suspended=True)
    else:
        provider.set_domain(domain, status=state)
    if state == "pending":
        # A confirm that reaches the provider verifies the domain, so the read-back shows it.
        provider.status_after_confirm = "verified"


def _home_click(
    world: World, narrator: Narrator, user: str, action: str, request_id: str, answered: bool
) -> None:
    """Click a Home tab button and, when the bot answers privately, print that answer: a Home
    tab click carries no response_url, so it comes as a DM."""
    assert world.driver is not None
    before = len(world.slack.messages(user))
    reply = world.driver.click_home(user, action, request_id)
    if reply.status != 200:
        raise RuntimeError(f"the Home tab click was refused: {reply}")
    if not answered:
        return
    dms = world.slack.wait_for(
        lambda: world.slack.messages(user)[before:] or None,
        world.driver.timeout,
        what=f"the private answer to {user}'s Home tab click",
    )
    narrator.say(f"Only @{NAMES[user]} sees, in the bot's DM: {readable(dms[0].get('text', ''))}")


def _expected_state(args: argparse.Namespace) -> State:
    if args.cancel:
        return State.CANCELLED
    if args.reject:
        return State.REJECTED
    if args.provider_error in ("timeout", "disconnect"):
        return State.UNKNOWN
    if args.provider_error:
        return State.FAILED
    return State.SUCCEEDED


def _store_label(world: World, args: argparse.Namespace) -> str:
    if args.database:
        return f"{world.database_path} (kept)"
    return "a temporary SQLite file, deleted at the end"
