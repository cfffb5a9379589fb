"""``python -m bot sandbox``: the whole flow, offline, printed as a person would read the channel.

It runs the real bot (the same listeners, store, provider client and Block Kit) over real HTTP
on loopback, against the stand-ins in ``bot.standins``: no settings, no Slack workspace and no
network are needed, and nothing is left behind unless ``--database`` asks for it.
"""

from __future__ import annotations

import argparse
import logging
import re
import textwrap
from typing import Any, TextIO

from bot.cli.sandbox_options import (
    BULK_MAX,
    BULK_RATE,
    PROVIDER_ERRORS,
    RESEND_ERRORS,
    RESEND_UNKNOWN,
    SANDBOX_TIMEOUT,
)
from bot.domain.inputs import InvalidInput, validate_email
from bot.domain.model import Operation, State, VerificationRequest
from bot.domain.outcomes import NotResendable
from bot.domain.policy import PolicyError
from bot.slack import ids
from bot.slack.blocks.text import OPERATION_TITLES
from bot.standins.provider import MODES, RESEND_MODES, Response, rate_limited_problem
from bot.standins.world import (
    APPROVER,
    APPROVER_GROUP,
    CHANNEL,
    REQUESTER,
    REQUESTER_GROUP,
    SECOND_APPROVER,
    World,
)

# The form's fields, as its errors name them (by block).
FIELDS = {
    ids.EMAIL_BLOCK: "the email",
    ids.REASON_BLOCK: "the reason",
    ids.OPERATION_BLOCK: "what should happen",
}

NAMES = {
    REQUESTER: "sam (support)",
    APPROVER: "ana (approver)",
    SECOND_APPROVER: "lee (approver)",
    CHANNEL: "email-approvals",
    APPROVER_GROUP: "approvers",
    REQUESTER_GROUP: "support",
}


def readable(text: str) -> str:
    """Slack mrkdwn as a person sees it: mentions and dates resolved, escapes undone."""
    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<@([A-Z0-9]+)>", lambda m: "@" + NAMES.get(m.group(1), m.group(1)), text)
    text = re.sub(r"<#([A-Z0-9]+)>", lambda m: "#" + NAMES.get(m.group(1), m.group(1)), text)
    text = re.sub(
        r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>",
        lambda m: "@" + NAMES.get(m.group(1), m.group(1)),
        text,
    )
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
    if args.workflow:  # the step's inputs are the bot's to refuse (the run fails)
        from bot.cli.sandbox_workflow import refuse_options as refuse_workflow

        email = args.email
        if (refused_run := refuse_workflow(args)) is not None:
            narrator.say(refused_run)
            return 2
    else:
        try:
            email = validate_email(args.email)
        except InvalidInput as exc:
            narrator.say(f"--email: {exc}")
            return 2
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    resend = args.operation == Operation.RESEND
    if resend and args.provider_error and args.provider_error not in RESEND_ERRORS:
        narrator.say(f"--provider-error {args.provider_error}: the resend action has no such mode")
        return 2
    if args.bulk is not None:
        from bot.cli.sandbox_bulk import refuse_options  # (it imports this module)

        refused = refuse_options(args)
        if refused is None and not 1 <= args.bulk <= BULK_MAX:
            refused = f"--bulk: from 1 to {BULK_MAX} emails"
        if refused is not None:
            narrator.say(refused)
            return 2
    settings: dict[str, Any] = {
        "HOSTUP_TIMEOUT": SANDBOX_TIMEOUT,
        "APPROVALS_REQUIRED": args.approvals,
        "BULK_RATE": BULK_RATE,
    }
    if args.policy is not None:
        settings["POLICY_FILE"] = str(args.policy)
    world = World(database_path=args.database, settings=settings)
    if resend:  # every domain's view allows a resend (set before the stand-in makes any)
        world.provider.default_can_resend = True
    try:
        world.start()  # (stops what it started when it fails)
    except PolicyError as exc:
        narrator.say(f"--policy: {exc}")
        return 2
    try:
        if args.workflow:
            from bot.cli.sandbox_workflow import play_workflow

            return play_workflow(world, narrator, args)
        if args.bulk is not None:
            from bot.cli.sandbox_bulk import play_bulk

            return play_bulk(world, narrator, email, args)
        return _play(world, narrator, email, args)
    finally:
        world.stop()


def _play(world: World, narrator: Narrator, email: str, args: argparse.Namespace) -> int:
    driver = world.driver
    assert driver is not None and world.services is not None
    domain = email.rpartition("@")[2]
    world.provider.cleared_domains = [domain] + [
        f"shop{n}.{domain}" for n in range(1, max(1, args.domains))
    ]
    _provider_state(world, domain, args.provider_state)
    resend = args.operation == Operation.RESEND
    if args.provider_error and resend:
        _script_resend(world, args.provider_error)
    elif args.provider_error:
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
    narrator.say(
        f"@{NAMES[REQUESTER]} chooses “{OPERATION_TITLES[Operation(args.operation)]}”, fills in "
        f"the reason “{args.reason}” and submits it."
    )
    reply = driver.submit_request(REQUESTER, view, reason=args.reason, operation=args.operation)
    if isinstance(reply.body, dict) and reply.body.get("errors"):
        for block, error in reply.body["errors"].items():
            narrator.say(f"The form refused it, under {FIELDS.get(block, block)}: {error}")
        return 1
    message = driver.with_provider_line(driver.request_message(email))

    narrator.heading(f"#{NAMES[CHANNEL]}: the request")
    narrator.say(render(message))
    # (Once the message shows the provider's view, the store knows what followed the lookup.)
    stored = world.services.store.list_requests()[-1]
    request_id = stored.id
    required = _quorum(stored, args.approvals)
    if stored.state is State.REJECTED:  # a resend the provider cannot do: closed at once
        narrator.heading("Nobody is asked: the provider cannot resend it")
        return _finish(world, narrator, message, args, expected_thread=False)
    if _by_rule(stored):
        # The rule approves it itself once the provider's view is read: nobody clicks.
        name = stored.rule.name if stored.rule is not None else ""
        narrator.heading(f"Nobody clicks: rule {name} approves it by itself")
        if args.reject or args.cancel:
            narrator.say("(--reject and --cancel have nothing to do here.)")
        return _finish(world, narrator, message, args, expected_thread=True)
    rule = stored.rule
    if rule is not None and not world.services.roles.is_among(APPROVER, rule.approvers):
        narrator.say(
            f"The approvers of rule {rule.name} ({', '.join(rule.approvers)}) are nobody in the "
            f"sandbox (its approvers: the group {APPROVER_GROUP}), so nobody can approve it here."
        )
        return 1
    if required > 2:
        narrator.say(f"The rule needs {required} approvals; the sandbox has two approvers.")
        return 1

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
            _home_click(world, narrator, APPROVER, ids.APPROVE_ACTION, request_id, required > 1)
        else:
            narrator.heading(f"@{NAMES[APPROVER]} clicks [ Approve ] and confirms")
            clicked = driver.approve(APPROVER, message)
            if required > 1:
                answer = readable(driver.answer(clicked))
                narrator.say(f"Only @{NAMES[APPROVER]} sees: {answer}")
        if required > 1:
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
    return _finish(world, narrator, message, args, expected_thread=not (args.reject or args.cancel))


def _finish(
    world: World,
    narrator: Narrator,
    message: dict[str, Any],
    args: argparse.Namespace,
    *,
    expected_thread: bool,
) -> int:
    """The request once decided: its message, its thread reply, the requester's DMs, the
    requester's Home tab (--home) and the Result line; 0 when it ended as expected."""
    driver = world.driver
    final = driver.final_message(message)

    narrator.heading(f"#{NAMES[CHANNEL]}: the request now")
    narrator.say(render(final))
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
    expected = _expected_state(args, request)
    if args.operation == Operation.RESEND:
        calls = f"provider resend calls: {len(world.provider.resend_calls)}"
    else:
        confirms = [c for c in world.provider.calls if c["path"].endswith("/confirmed")]
        calls = f"provider confirm calls: {len(confirms)}"
    narrator.heading("Result")
    narrator.say(
        f"state {request.state.value} (expected {expected.value}); {calls}; "
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


def _script_resend(world: World, error: str) -> None:
    """Make the stand-in's resend action fail as ``error`` (a key of RESEND_ERRORS) says."""
    mode = RESEND_ERRORS[error]
    if mode == "rate_limited":  # retried: it keeps answering 429, with no wait asked for
        world.provider.enqueue_resend(*(rate_limited_problem("0") for _ in range(3)))
    elif mode == "hang":
        world.provider.enqueue_resend(Response.hang(SANDBOX_TIMEOUT + 2))
    else:
        world.provider.script_resend(mode)
    if mode not in RESEND_MODES:  # pragma: no cover - RESEND_ERRORS only names known modes
        raise ValueError(mode)


def _by_rule(request: VerificationRequest) -> bool:
    """The request's rule approves it itself (approvals_required 0)."""
    return request.rule is not None and request.rule.by_rule


def _quorum(request: VerificationRequest, approvals: int) -> int:
    """The approvals the request needs: its rule's (--policy), else --approvals."""
    return request.rule.approvals_required if request.rule is not None else approvals


def _expected_state(args: argparse.Namespace, request: VerificationRequest) -> State:
    """What the options make of ``request``: closed at once when the provider cannot resend
    it; cancelled or rejected when asked (unless its rule ran it by itself); else what the
    provider's answer makes of it."""
    if isinstance(request.outcome, NotResendable):
        return State.REJECTED
    by_rule = _by_rule(request)
    if args.cancel and not by_rule:
        return State.CANCELLED
    if args.reject and not by_rule:
        return State.REJECTED
    unknown = RESEND_UNKNOWN if args.operation == Operation.RESEND else {"timeout", "disconnect"}
    if args.provider_error in unknown:
        return State.UNKNOWN
    if args.provider_error:
        return State.FAILED
    return State.SUCCEEDED


def _store_label(world: World, args: argparse.Namespace) -> str:
    if args.database:
        return f"{world.database_path} (kept)"
    return "a temporary SQLite file, deleted at the end"
