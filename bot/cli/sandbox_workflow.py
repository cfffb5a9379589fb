"""``python -m bot sandbox --workflow``: one run of the Workflow Builder step "Verify email with
approval", from the workflow starting it to the outputs it completes with, printed as a person
reads it.

A workflow runs the step (the stand-in Slack sends ``function_executed``); the bot makes the
request for ``requested_by`` as the command and form do and posts it in the approval channel;
the approver(s) click as for a single request (``--approvals``, ``--reject``, ``--cancel``,
``--provider-error``); once the request is final the bot completes the run through its outbox,
and the sandbox prints the outputs Slack accepted. An outcome nobody knows (``--provider-error
timeout``) completes nothing until an approver clicks Retry, which the sandbox then does. A run
whose request cannot be made (``--email not-an-email``, a rule that refuses it) fails with the
command's words, and the sandbox exits 1, as for the form's refusal.
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.sandbox import (
    NAMES,
    Narrator,
    _by_rule,
    _expected_state,
    _provider_state,
    _quorum,
    _script_resend,
    _store_label,
    readable,
    render,
)
from bot.cli.sandbox_bulk import _request_message
from bot.cli.sandbox_options import PROVIDER_ERRORS, SANDBOX_TIMEOUT
from bot.domain.model import Operation, State, VerificationRequest
from bot.slack import ids, step
from bot.standins.provider import Response
from bot.standins.world import APPROVER, APPROVER_GROUP, CHANNEL, REQUESTER, SECOND_APPROVER, World

# Options the step's run does not play (a step makes one request, decided in the channel).
NOT_PLAYED = {
    "bulk": "--workflow plays one step run, which makes one request; --bulk is for the bulk form",
    "home": "--workflow shows the step's run in the channel; --home is for a request made with "
    "the command",
}


def refuse_options(args: argparse.Namespace) -> str | None:
    """Why ``--workflow`` cannot be played with these options (None: it can)."""
    for name, why in NOT_PLAYED.items():
        if getattr(args, name) not in (None, False):
            return why
    return None


def step_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The inputs the workflow gives the step: the options' email, reason and operation, for
    the sandbox's requester (requested_by)."""
    return {
        "email": args.email,
        "reason": args.reason,
        "requested_by": REQUESTER,
        "operation": args.operation,
    }


def play_workflow(world: World, narrator: Narrator, args: argparse.Namespace) -> int:
    driver, services = world.driver, world.services
    assert driver is not None and services is not None
    # The stand-in checks the outputs against the step's declaration, as Slack does.
    world.slack.define_function(
        step.STEP_CALLBACK_ID,
        {
            "title": step.STEP_TITLE,
            "description": step.STEP_DESCRIPTION,
            "input_parameters": step.INPUTS,
            "output_parameters": step.OUTPUTS,
        },
    )
    _set_up_provider(world, args)

    narrator.say("Sandbox: the real bot on 127.0.0.1, with stand-ins for Slack and the provider.")
    narrator.say(f"Nothing leaves this machine. Store: {_store_label(world, args)}")
    inputs = step_inputs(args)
    narrator.heading(f"A workflow runs the step “{step.STEP_TITLE}”")
    narrator.say(
        "with inputs "
        + ", ".join(
            f"{name}=@{NAMES[value]}" if name == "requested_by" else f"{name}={value}"
            for name, value in inputs.items()
        )
    )
    run = driver.run_step(inputs)
    narrator.say(f"Slack sends function_executed to the bot (run {run}); the bot acknowledges it.")
    request = _request_or_failure(world, run)
    if request is None:
        return _failed(world, narrator, run)

    message = driver.with_provider_line(_request_message(world, request.id))
    narrator.heading(f"#{NAMES[CHANNEL]}: the request")
    narrator.say(render(message))
    # (Once the message shows the provider's view, the store knows what followed the lookup.)
    stored = services.store.get(request.id)
    assert stored is not None
    expected = _expected_state(args, stored)
    retry = expected is State.UNKNOWN  # nobody knows the outcome: an approver retries it
    if stored.state is State.REJECTED:  # a resend the provider cannot do: closed at once
        narrator.heading("Nobody is asked: the provider cannot resend it")
    elif _by_rule(stored):
        name = stored.rule.name if stored.rule is not None else ""
        narrator.heading(f"Nobody clicks: rule {name} approves it by itself")
        if args.reject or args.cancel:
            narrator.say("(--reject and --cancel have nothing to do here.)")
    elif (refused := _cannot_decide(world, stored, args)) is not None:
        narrator.say(refused)
        return 1
    else:
        _decide(world, narrator, message, _quorum(stored, args.approvals), args)

    final = driver.final_message(message)
    narrator.heading(f"#{NAMES[CHANNEL]}: the request now")
    narrator.say(render(final))
    closed_at_once = stored.state is State.REJECTED
    if not closed_at_once and (_by_rule(stored) or not (args.reject or args.cancel)):
        narrator.heading("…and in its thread")
        narrator.say(render(driver.wait_thread_reply(message), indent="    "))
    if retry:
        expected = _retry(world, narrator, run, message)

    done = driver.step_completion(run)
    if done.ok:
        outputs = ", ".join(f"{k}={_shown(k, done.outputs[k])}" for k in _ordered(done.outputs))
        narrator.say()
        narrator.say(f"The step's run completed: {outputs}")
    else:
        narrator.say()
        narrator.say(f"The step's run failed: {done.error}")
    # Where it went, then how it ended (a cancel needs no news; an unknown outcome and its
    # Retry each tell).
    cancelled = args.cancel and not (_by_rule(stored) or closed_at_once)
    _dms(world, narrator, 1 if cancelled else 3 if retry else 2)

    services.maintenance.run_once()  # a sweep afterwards completes nothing twice
    completions = len(world.slack.completions(run))
    state = done.outputs.get("state") if done.ok and done.outputs else None
    narrator.heading("Result")
    narrator.say(
        f"step run ended {state or 'failed'} (expected {expected.value}); completions: "
        f"{completions}; {_calls(world, args)}; Slack Web API calls: {len(world.slack.calls)}"
    )
    return 0 if state == expected.value and completions == 1 else 1


def _set_up_provider(world: World, args: argparse.Namespace) -> None:
    """The provider's view of the domain (--provider-state, --domains) and its failure
    (--provider-error), as for a single request. A failure is scripted once: a Retry after an
    outcome nobody knows gets the provider's ordinary answer."""
    domain = args.email.rpartition("@")[2] or "example.com"
    world.provider.cleared_domains = [domain] + [
        f"shop{n}.{domain}" for n in range(1, max(1, args.domains))
    ]
    _provider_state(world, domain, args.provider_state)
    if not args.provider_error:
        return
    if args.operation == Operation.RESEND:
        _script_resend(world, args.provider_error)
    elif args.provider_error == "timeout":
        world.provider.enqueue(Response.hang(SANDBOX_TIMEOUT + 2))
    else:
        mode = PROVIDER_ERRORS[args.provider_error]
        # A 429 is retried, so it has to keep answering 429 to be seen failing.
        world.provider.script(mode, times=3 if mode == "rate_limited" else 1)


def _request_or_failure(world: World, run: str) -> VerificationRequest | None:
    """The request the run made, or None once the run failed instead (waiting for either)."""
    store = world.services.store

    def ended() -> tuple[VerificationRequest | None] | None:
        made = store.find_by_step(run)
        if made is not None:
            return (made,)
        if world.slack.completions(run):
            return (None,)
        return None

    return world.slack.wait_for(ended, world.driver.timeout, what=f"step run {run}")[0]


def _failed(world: World, narrator: Narrator, run: str) -> int:
    """A run whose request could not be made: how it ended; exit 1, as the form's refusal."""
    (done,) = world.slack.completions(run)
    narrator.heading("No request is made")
    if done.ok:  # pragma: no cover - a run without a request only fails
        narrator.say(f"The step's run completed without a request: {done.outputs}")
    else:
        narrator.say(f"The step's run failed: {done.error}")
    narrator.heading("Result")
    narrator.say(
        f"step run ended failed; requests made: {len(world.services.store.list_requests())}; "
        f"Slack Web API calls: {len(world.slack.calls)}"
    )
    return 1


def _cannot_decide(
    world: World, request: VerificationRequest, args: argparse.Namespace
) -> str | None:
    """Why the sandbox's people cannot decide ``request`` (None: they can)."""
    rule = request.rule
    if rule is not None and not world.services.roles.is_among(APPROVER, rule.approvers):
        return (
            f"The approvers of rule {rule.name} ({', '.join(rule.approvers)}) are nobody in the "
            f"sandbox (its approvers: the group {APPROVER_GROUP}), so nobody can approve it here."
        )
    if (required := _quorum(request, args.approvals)) > 2:
        return f"The rule needs {required} approvals; the sandbox has two approvers."
    return None


def _decide(
    world: World, narrator: Narrator, message: dict[str, Any], required: int, args: Any
) -> None:
    """The requester's Cancel, the approver's Reject, or the quorum's Approve clicks."""
    driver = world.driver
    if args.cancel:
        narrator.heading(f"@{NAMES[REQUESTER]} clicks [ Cancel request ] on the request")
        cancelled = driver.cancel(REQUESTER, message)
        narrator.say(f"The bot tells them: {readable(driver.answer(cancelled))}")
        return
    if args.reject:
        narrator.heading(f"@{NAMES[APPROVER]} clicks [ Reject ] and gives a reason")
        driver.reject(APPROVER, message, reason="Not verified with the customer yet")
        return
    narrator.heading(f"@{NAMES[APPROVER]} clicks [ Approve ] and confirms")
    clicked = driver.approve(APPROVER, message)
    if required < 2:
        return
    narrator.say(f"Only @{NAMES[APPROVER]} sees: {readable(driver.answer(clicked))}")
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


def _retry(world: World, narrator: Narrator, run: str, message: dict[str, Any]) -> State:
    """An outcome nobody knows: the run waits (even through a sweep); an approver clicks Retry
    and the provider answers this time. The state the run then ends in."""
    world.services.maintenance.run_once()
    waiting = "still running" if not world.slack.completions(run) else "completed (unexpected)"
    narrator.say()
    narrator.say(
        f"The step's run is {waiting}: an outcome nobody knows completes it only after "
        "[ Retry ] or [ Resolved ]."
    )
    reply = world.driver.wait_thread_reply(message)
    narrator.heading(f"@{NAMES[SECOND_APPROVER]} clicks [ Retry ] in the thread")
    world.driver.click(SECOND_APPROVER, reply, ids.RETRY_ACTION)
    replies = world.slack.wait_for(
        lambda: world.slack.messages(CHANNEL, message["ts"])[1:] or None,
        world.driver.timeout,
        what="the retried call's thread reply",
    )
    narrator.heading(f"#{NAMES[CHANNEL]}: the thread now")
    for shown in replies:
        narrator.say(render(shown, indent="    "))
    return State.SUCCEEDED


def _dms(world: World, narrator: Narrator, expected: int) -> None:
    """The direct messages the person the workflow ran for got, as a form's requester does
    (``expected``: how many, waiting for them: they go through the outbox)."""
    dms = world.slack.wait_for(
        lambda: world.slack.messages(REQUESTER)[expected - 1 :] and world.slack.messages(REQUESTER),
        world.driver.timeout,
        what="the requester's direct messages",
    )
    if dms:
        narrator.heading(f"Direct messages to @{NAMES[REQUESTER]}")
        for dm in dms:
            narrator.say(render(dm))


def _ordered(outputs: dict[str, Any] | None) -> list[str]:
    """The outputs' names, as the step declares them (then any other)."""
    given = outputs or {}
    return [n for n in step.OUTPUTS if n in given] + [n for n in given if n not in step.OUTPUTS]


def _shown(name: str, value: Any) -> str:
    if name == "decided_by" and isinstance(value, str):
        return "@" + NAMES.get(value, value)
    return str(value)


def _calls(world: World, args: argparse.Namespace) -> str:
    if args.operation == Operation.RESEND:
        return f"provider resend calls: {len(world.provider.resend_calls)}"
    confirms = [c for c in world.provider.calls if c["path"].endswith("/confirmed")]
    return f"provider confirm calls: {len(confirms)}"
