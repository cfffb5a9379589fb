"""End to end over real HTTP, with a POLICY_FILE: each rule key (domains, operations,
requesters, approvers, approvals_required, reason_pattern, remind_every, escalate_after with
escalate_to), first-match order, the request message naming its rule and who may approve, a
resend the rule approves itself (audited, no buttons), an operation the rules do not allow (not
offered, and refused when a tampered form asks it), a rule changed while a request waits (the
stored rule decides it, the new file the next one) and ``policy explain`` agreeing with the bot;
on both store backends. tests/integration/test_service_rules.py pins the same at the service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from worlds import confirm_calls, later, request_of

from bot.domain.model import Action, Operation, State
from bot.slack import blocks, ids
from bot.slack.blocks.refusals import OPERATION_NOT_ALLOWED_TEXT
from bot.standins.driver import button_values, buttons, rendered
from bot.standins.world import (
    APPROVER,
    APPROVER_GROUP,
    CHANNEL,
    OUTSIDER,
    REQUESTER,
    SECOND_APPROVER,
    World,
)

REPO = Path(__file__).resolve().parents[2]
SENIOR_GROUP = "S0SENIOR"
SENIOR = "U0SENIOR1"
SECOND_SENIOR = "U0SENIOR2"
CTO = "U0CTO"
SAM = "U0SAM"  # a requester a rule names by user ID
ESCALATION_MARK = ":arrow_double_up:"
TICKETS = r"^(TICKET|ZD)-\d+"

StartWorld = Callable[..., World]


@pytest.fixture
def rules_world(database_url: str, tmp_path: Path) -> Iterator[StartWorld]:
    """Starts the world with ``policy`` (TOML) written to tmp_path/policy.toml as POLICY_FILE
    (``settings`` override others, e.g. REQUESTERS); S0SENIOR is U0SENIOR1 and U0SENIOR2 in
    its Slack. Stopped after the test."""
    with ExitStack() as stack:

        def start(policy: str, **settings: Any) -> World:
            path = tmp_path / "policy.toml"
            path.write_text(policy)
            values = {"DATABASE_URL": database_url, "POLICY_FILE": str(path), **settings}
            world = World(database_path=tmp_path / "unused.db", settings=values)
            world.slack.set_usergroup(SENIOR_GROUP, [SENIOR, SECOND_SENIOR])
            return stack.enter_context(world)

        yield start


def rule_name(world: World, message: dict[str, Any]) -> str:
    """The name of the rule stored with the request behind ``message``."""
    rule = request_of(world, message).rule
    assert rule is not None, "the request has no rule"
    return str(rule.name)


def only_request(world: World) -> Any:
    """The one request stored (for a message without an Approve button to name it)."""
    [request] = world.services.store.list_requests()
    return request


def field_hint(view: dict[str, Any], block_id: str) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    return str((block.get("hint") or {}).get("text", ""))


def shown_when(world: World, message: dict[str, Any], text: str) -> dict[str, Any]:
    """The request message once it shows ``text``, waiting for the bot's update."""

    def find() -> dict[str, Any] | None:
        current = world.driver.current(message)
        return current if text in rendered(current) else None

    return world.slack.wait_for(find, what=f"the request message showing {text!r}")


def waiting_in_home(world: World, user: str) -> list[str]:
    """The ids of the requests ``user``'s Home tab offers to approve."""
    return button_values(world.driver.open_home(user), ids.APPROVE_ACTION)


def escalations(world: World, message: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in world.driver.thread(message) if ESCALATION_MARK in str(m.get("text", ""))]


# ------------------------------------------------------------------------ match keys


def test_domains_are_globs_a_subdomain_matches_the_bare_domain_does_not(rules_world):
    """``*.bank.example`` decides a.bank.example and a.b.bank.example (``*`` crosses dots),
    not bank.example itself nor bank.example.org, which the [default] decides."""
    world = rules_world(
        '[[rule]]\nname = "banks"\ndomains = ["*.bank.example"]\napprovers = ["S0SENIOR"]\n'
    )
    one = world.driver.ask(REQUESTER, "ann@a.bank.example")
    deep = world.driver.ask(REQUESTER, "bea@a.b.bank.example")
    bare = world.driver.ask(REQUESTER, "dan@bank.example")
    other = world.driver.ask(REQUESTER, "eve@bank.example.org")
    assert [rule_name(world, m) for m in (one, deep, bare, other)] == [
        "banks",
        "banks",
        "default",
        "default",
    ]
    assert "Rule *banks*: 1 approver from <!subteam^S0SENIOR>" in rendered(one)
    assert "Rule *default*: 1 approver from <!subteam^S0APPROVERS>" in rendered(bare)


def test_a_rule_for_resend_only_does_not_decide_a_confirm(rules_world):
    """A rule with ``operations = ["resend"]`` decides a resend of its domain; a confirm of the
    same domain falls through to the [default] (its approvers, not the rule's)."""
    world = rules_world(
        '[[rule]]\nname = "resends"\noperations = ["resend"]\napprovers = ["U0CTO"]\n'
    )
    world.provider.set_domain("example.com", can_resend=True)
    resend = world.driver.ask(REQUESTER, "alice@example.com", operation="resend")
    assert request_of(world, resend).operation is Operation.RESEND
    assert rule_name(world, resend) == "resends"
    assert f"Rule *resends*: 1 approver from <@{CTO}>" in rendered(resend)
    world.driver.reject(CTO, resend)
    world.driver.final_message(resend)
    confirm = world.driver.ask(REQUESTER, "bob@example.com", operation="confirm")
    assert rule_name(world, confirm) == "default"
    refused = world.driver.answer(world.driver.approve(CTO, confirm))
    assert blocks.NOT_AN_APPROVER_TEXT in refused
    world.driver.approve(APPROVER, confirm)
    assert "state: succeeded" in rendered(world.driver.final_message(confirm))


def test_requesters_match_a_user_group_and_a_user_id(rules_world):
    """``requesters = ["S0SUPPORT"]`` decides a request from a member of that Slack user
    group; ``requesters = ["U0SAM"]`` one from U0SAM; anyone else (allowed to ask by
    REQUESTERS) gets the [default]."""
    world = rules_world(
        '[[rule]]\nname = "support"\nrequesters = ["S0SUPPORT"]\napprovers = ["U0CTO"]\n\n'
        '[[rule]]\nname = "sam"\nrequesters = ["U0SAM"]\napprovers = ["S0SENIOR"]\n',
        REQUESTERS="*",
    )
    by_group = world.driver.ask(REQUESTER, "ann@example.com")
    by_id = world.driver.ask(SAM, "bea@example.com")
    by_other = world.driver.ask(OUTSIDER, "cid@example.com")
    assert [rule_name(world, m) for m in (by_group, by_id, by_other)] == [
        "support",
        "sam",
        "default",
    ]
    assert f"Rule *support*: 1 approver from <@{CTO}>" in rendered(by_group)
    assert "Rule *sam*: 1 approver from <!subteam^S0SENIOR>" in rendered(by_id)


# ------------------------------------------------------------------------ terms


def test_only_the_rules_approvers_may_approve(rules_world):
    """A rule naming S0SENIOR: an APPROVERS member who is not in it is refused with the
    not-an-approver answer and nothing reaches the provider; the request waits in a senior's
    Home tab (though no senior is in APPROVERS), not in theirs; a senior's approval succeeds."""
    world = rules_world(
        '[[rule]]\nname = "vip"\ndomains = ["vip.example"]\napprovers = ["S0SENIOR"]\n'
    )
    message = world.driver.ask(REQUESTER, "ann@vip.example")
    request_id = request_of(world, message).id
    refused = world.driver.answer(world.driver.approve(APPROVER, message))
    assert blocks.NOT_AN_APPROVER_TEXT in refused
    assert request_of(world, message).state is State.PENDING
    assert confirm_calls(world) == 0
    assert waiting_in_home(world, APPROVER) == []
    assert waiting_in_home(world, SENIOR) == [request_id]
    world.driver.approve(SENIOR, message)
    final = world.driver.final_message(message)
    assert "state: succeeded" in rendered(final)
    assert confirm_calls(world) == 1
    assert request_of(world, message).decided_by == SENIOR


def test_two_approvals_required_by_the_rule(rules_world):
    """approvals_required 2 (APPROVALS_REQUIRED is 1): the first senior's approval leaves it
    pending and the message says 1 of 2; the second calls the provider once."""
    world = rules_world(
        '[[rule]]\nname = "vip"\ndomains = ["vip.example"]\napprovers = ["S0SENIOR"]\n'
        "approvals_required = 2\n"
    )
    message = world.driver.ask(REQUESTER, "ann@vip.example")
    first = world.driver.answer(world.driver.approve(SENIOR, message))
    assert "Your approval is recorded: 1 of 2 approvals" in first
    shown = shown_when(world, message, "1 of 2 approvals")
    assert f"1 of 2 approvals: <@{SENIOR}>" in rendered(shown)
    assert ids.APPROVE_ACTION in buttons(shown)
    assert request_of(world, message).state is State.PENDING
    assert confirm_calls(world) == 0
    world.driver.approve(SECOND_SENIOR, message)
    world.driver.final_message(message)
    assert confirm_calls(world) == 1
    assert request_of(world, message).approvers == (SENIOR, SECOND_SENIOR)


def test_a_reason_that_fails_the_pattern_is_a_field_error_and_nothing_is_stored(rules_world):
    """[default] reason_pattern: the form's reason hint shows the pattern; a reason that does
    not match keeps the form open with an error on the reason naming the pattern, and nothing
    is stored or posted; a matching reason is asked."""
    world = rules_world(f"[default]\nreason_pattern = '{TICKETS}'\n")
    view = world.driver.modal(world.driver.command(REQUESTER, "alice@example.com"))
    assert field_hint(view, ids.REASON_BLOCK) == f"The reason must match {TICKETS} (rule default)."
    reply = world.driver.submit_request(REQUESTER, view, reason="because it is stuck")
    assert reply.body["response_action"] == "errors"
    assert reply.body["errors"] == {
        ids.REASON_BLOCK: f"The reason must match the pattern {TICKETS} (the rule default asks "
        "for it)."
    }
    assert world.services.store.list_requests() == []
    assert world.slack.calls_to("chat.postMessage") == []
    message = world.driver.ask(REQUESTER, "alice@example.com", reason="ZD-12 stuck")
    assert request_of(world, message).reason == "ZD-12 stuck"


def test_reminders_follow_the_rules_interval_not_remind_every(rules_world):
    """REMIND_EVERY is an hour; a rule with remind_every 60: after 61 s a maintenance round
    reminds its request (mentioning the rule's approvers), not the [default]'s; another round
    in the same interval reminds nobody."""
    world = rules_world(
        '[[rule]]\nname = "vip"\ndomains = ["vip.example"]\napprovers = ["S0SENIOR"]\n'
        "remind_every = 60\n",
        REMIND_EVERY=3600,
    )
    vip = world.driver.ask(REQUESTER, "ann@vip.example")
    plain = world.driver.ask(REQUESTER, "bob@example.com")
    maintenance = world.services.maintenance
    later(world, 30)
    assert maintenance.run_once()["reminded"] == 0
    later(world, 61)
    assert maintenance.run_once()["reminded"] == 1
    [reminder] = world.slack.wait_for(lambda: world.driver.reminders(vip) or None, what="reminder")
    assert "<!subteam^S0SENIOR>" in reminder["text"]
    assert "S0APPROVERS" not in reminder["text"]
    assert maintenance.run_once()["reminded"] == 0
    assert world.driver.reminders(plain) == []
    later(world, 3601)  # REMIND_EVERY still reminds what the [default] decides
    assert maintenance.run_once()["reminded"] == 2
    world.slack.wait_for(lambda: world.driver.reminders(plain) or None, what="default reminder")


def test_escalation_once_and_only_then_its_approvers_may_approve(rules_world):
    """escalate_after 600 to U0CTO: before, the CTO is refused and a round escalates nothing;
    after, one round posts one thread reply saying it was escalated (and the message says
    so), a second round posts none, and the request waits in the CTO's Home tab; then the
    CTO's approval succeeds."""
    world = rules_world(
        '[[rule]]\nname = "slow"\ndomains = ["slow.example"]\napprovers = ["U0APPROVER"]\n'
        'escalate_after = 600\nescalate_to = ["U0CTO"]\n'
    )
    message = world.driver.ask(REQUESTER, "ann@slow.example")
    assert f"if still waiting after 10 min, <@{CTO}> may approve too" in rendered(message)
    maintenance = world.services.maintenance
    later(world, 590)
    assert maintenance.run_once()["escalated"] == 0
    assert blocks.NOT_AN_APPROVER_TEXT in world.driver.answer(world.driver.approve(CTO, message))
    assert escalations(world, message) == []
    assert waiting_in_home(world, CTO) == []
    later(world, 601)
    assert maintenance.run_once()["escalated"] == 1
    [reply] = world.slack.wait_for(
        lambda: escalations(world, message) or None, what="the escalation notice"
    )
    assert f"escalated to <@{CTO}>, who may approve it too" in reply["text"]
    assert "ann@slow.example" in reply["text"]
    later(world, 700)
    assert maintenance.run_once()["escalated"] == 0
    shown = shown_when(world, message, "who may approve it too")
    assert len(escalations(world, message)) == 1
    trail = [e.action for e in world.services.store.audit_log(request_of(world, shown).id)]
    assert trail.count(Action.ESCALATE) == 1
    assert waiting_in_home(world, CTO) == [request_of(world, shown).id]
    world.driver.approve(CTO, message)
    final = world.driver.final_message(message)
    assert "state: succeeded" in rendered(final)
    assert request_of(world, message).decided_by == CTO
    assert confirm_calls(world) == 1
    assert len(escalations(world, message)) == 1


# ------------------------------------------------------------------------ order and message


def test_the_first_matching_rule_decides(rules_world):
    """Two rules both matching a.bank.example: the first in the file decides it (its name and
    approvers in the message); a domain only the second matches is the second's."""
    world = rules_world(
        '[[rule]]\nname = "banks"\ndomains = ["*.bank.example"]\napprovers = ["U0CTO"]\n\n'
        '[[rule]]\nname = "vip-customers"\ndomains = ["a.bank.example", "vip.example"]\n'
        'approvers = ["S0SENIOR"]\napprovals_required = 2\n'
    )
    both = world.driver.ask(REQUESTER, "ann@a.bank.example")
    second = world.driver.ask(REQUESTER, "bea@vip.example")
    assert rule_name(world, both) == "banks"
    assert f"Rule *banks*: 1 approver from <@{CTO}>" in rendered(both)
    assert "vip-customers" not in rendered(both)
    assert rule_name(world, second) == "vip-customers"
    world.driver.approve(CTO, both)
    assert "state: succeeded" in rendered(world.driver.final_message(both))


def test_the_request_message_names_the_rule_and_who_may_approve(rules_world):
    """The message of a request under vip-customers reads "Rule vip-customers: 2 approvers
    from @senior" (the group as a Slack mention), and its footer the file's hash."""
    world = rules_world(
        '[[rule]]\nname = "vip-customers"\ndomains = ["*.bank.example", "vip.example"]\n'
        'approvers = ["S0SENIOR", "U0CTO"]\napprovals_required = 2\n'
    )
    message = world.driver.ask(REQUESTER, "ann@vip.example")
    shown = rendered(message)
    assert f"Rule *vip-customers*: 2 approvers from <!subteam^S0SENIOR> and <@{CTO}>" in shown
    stored = request_of(world, message).rule
    assert stored.policy_hash and f"policy `{stored.policy_hash}`" in shown
    assert (stored.approvers, stored.approvals_required) == ((SENIOR_GROUP, CTO), 2)


# ------------------------------------------------------------------------ operations


def test_a_resend_the_rule_approves_itself_runs_once_audited_without_buttons(rules_world):
    """approvals_required 0 on a resend rule: no message of the request ever has Approve or
    Reject, the provider's resend is called once (and confirm never), the request succeeds,
    and the audit log has the APPROVE by "bot" naming the rule."""
    world = rules_world(
        '[[rule]]\nname = "resend-is-routine"\noperations = ["resend"]\n'
        'requesters = ["S0SUPPORT"]\napprovals_required = 0\n'
    )
    world.provider.set_domain("example.com", can_resend=True)
    message = world.driver.ask(REQUESTER, "alice@example.com", operation="resend")
    final = world.driver.final_message(message)
    shown = rendered(final)
    assert "state: succeeded" in shown
    assert "resend-is-routine" in shown
    request = only_request(world)
    assert (request.operation, request.state) == (Operation.RESEND, State.SUCCEEDED)
    posted = [
        c.params
        for c in world.slack.calls_to("chat.postMessage") + world.slack.calls_to("chat.update")
        if c.params.get("channel") == CHANNEL
        and not c.params.get("thread_ts")
        and (c.params.get("ts") in (None, message["ts"]))
    ]
    assert posted  # (posted once the rule had approved it, or posted then updated)
    for params in posted:
        shown_buttons = buttons({"blocks": params.get("blocks") or []})
        assert ids.APPROVE_ACTION not in shown_buttons
        assert ids.REJECT_ACTION not in shown_buttons
    assert len(world.provider.resend_calls) == 1
    assert [s["domain"] for s in world.provider.resends()] == ["example.com"]
    assert confirm_calls(world) == 0
    trail = world.services.store.audit_log(request.id)
    [approve] = [e for e in trail if e.action == Action.APPROVE]
    assert approve.actor == "bot" and approve.details["by_rule"] == "resend-is-routine"
    assert not [e for e in trail if e.action == Action.APPROVAL]


def test_an_operation_the_rules_do_not_allow_is_not_offered_nor_accepted(rules_world):
    """[default] operations = ["confirm"]: the form offers only the clear (and says the
    resend is not offered); a tampered submit choosing resend is a field error on the
    operation and stores nothing; even ``/verify-email resend`` opens the clear."""
    world = rules_world('[default]\noperations = ["confirm"]\n')
    world.provider.set_domain("example.com", can_resend=True)
    view = world.driver.modal(world.driver.command(REQUESTER, "alice@example.com"))
    block = next(b for b in view["blocks"] if b.get("block_id") == ids.OPERATION_BLOCK)
    assert [o["value"] for o in block["element"]["options"]] == ["confirm"]
    assert "Resend the verification email: not offered" in field_hint(view, ids.OPERATION_BLOCK)
    reply = world.driver.submit_request(REQUESTER, view, reason="T-1", operation="resend")
    assert reply.body["response_action"] == "errors"
    assert reply.body["errors"] == {ids.OPERATION_BLOCK: OPERATION_NOT_ALLOWED_TEXT}
    assert world.services.store.list_requests() == []
    assert world.slack.calls_to("chat.postMessage") == []
    prefilled = world.driver.modal(world.driver.command(REQUESTER, "resend alice@example.com"))
    element = next(b for b in prefilled["blocks"] if b.get("block_id") == ids.OPERATION_BLOCK)
    assert element["element"]["initial_option"]["value"] == "confirm"
    assert world.provider.resend_calls == []


# ------------------------------------------------------------------------ rule changes


def test_a_rule_changed_while_a_request_waits_does_not_change_it(rules_world, tmp_path):
    """A request waits under "banks" (1 approval from U0CTO, who is in no other list); the
    file is rewritten ("banks" now needs 2 seniors, U0CTO is named nowhere) and the bot
    restarted: the waiting request is still decided by its stored rule (it waits in U0CTO's
    Home tab, and U0CTO's one approval succeeds); a new request follows the new rule (U0CTO
    refused, 2 seniors named, a new hash)."""
    world = rules_world(
        '[[rule]]\nname = "banks"\ndomains = ["*.bank.example"]\napprovers = ["U0CTO"]\n'
    )
    waiting = world.driver.ask(REQUESTER, "ann@a.bank.example")
    old = request_of(world, waiting).rule
    (tmp_path / "policy.toml").write_text(
        '[[rule]]\nname = "banks"\ndomains = ["*.bank.example"]\napprovers = ["S0SENIOR"]\n'
        "approvals_required = 2\n"
    )
    world.restart_bot()
    assert world.services.approvals.rules is not None
    assert waiting_in_home(world, CTO) == [request_of(world, waiting).id]
    world.driver.approve(CTO, waiting)
    assert "state: succeeded" in rendered(world.driver.final_message(waiting))
    assert confirm_calls(world) == 1
    assert request_of(world, waiting).rule == old
    assert request_of(world, waiting).decided_by == CTO
    fresh = world.driver.ask(REQUESTER, "bea@b.bank.example")
    assert "Rule *banks*: 2 approvers from <!subteam^S0SENIOR>" in rendered(fresh)
    new = request_of(world, fresh).rule
    assert new.policy_hash != old.policy_hash and new.approvals_required == 2
    refused = world.driver.answer(world.driver.approve(CTO, fresh))
    assert blocks.NOT_AN_APPROVER_TEXT in refused
    assert "recorded: 1 of 2" in world.driver.answer(world.driver.approve(SECOND_SENIOR, fresh))
    assert request_of(world, fresh).state is State.PENDING
    assert confirm_calls(world) == 1


# ------------------------------------------------------------------------ policy explain


def explain(policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot policy explain ARGS --file POLICY`` in its directory, with APPROVERS as
    the world's and no other setting or proxy from this environment (as tests/e2e/test_cli.py
    runs the CLI)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "HOSTUP_", "APPROVERS", "REQUESTERS", "POLICY_FILE"))
        and not k.startswith(("APPROVALS_REQUIRED", "REMIND_EVERY", "DATABASE_URL"))
        and "proxy" not in k.lower()
    }
    env["PYTHONPATH"] = str(REPO)
    env["APPROVERS"] = APPROVER_GROUP  # what the world's [default] inherits
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "bot", "policy", "explain", *args, "--file", policy.name],
        cwd=policy.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_policy_explain_names_the_rule_the_bot_decided_by(rules_world, tmp_path):
    """For one address and operation, ``policy explain`` on the bot's own POLICY_FILE names
    the rule the bot stored with the request (the first of two matching rules), and the same
    approvers and quorum; for a resend of another domain, the resend rule the bot used."""
    world = rules_world(
        '[[rule]]\nname = "banks"\ndomains = ["*.bank.example"]\napprovers = ["U0CTO"]\n'
        "approvals_required = 2\n\n"
        '[[rule]]\nname = "vip"\ndomains = ["a.bank.example"]\napprovers = ["S0SENIOR"]\n\n'
        '[[rule]]\nname = "resend-by-leads"\noperations = ["resend"]\n'
        'approvers = ["U0APPROVER2"]\n'
    )
    world.provider.set_domain("example.com", can_resend=True)
    confirm = world.driver.ask(REQUESTER, "ann@a.bank.example")
    resend = world.driver.ask(REQUESTER, "bea@example.com", operation="resend")
    policy = tmp_path / "policy.toml"
    said = explain(policy, "ann@a.bank.example", "--requester", REQUESTER)
    assert said.returncode == 0, said.stderr
    assert rule_name(world, confirm) == "banks"
    assert "Decides: rule banks (line 1)" in said.stdout
    assert f"Approvers: {CTO}" in said.stdout and "Approvals required: 2" in said.stdout
    resent = explain(policy, "bea@example.com", "--operation", "resend")
    assert resent.returncode == 0, resent.stderr
    assert rule_name(world, resend) == "resend-by-leads"
    assert "Decides: rule resend-by-leads" in resent.stdout
    assert f"Approvers: {SECOND_APPROVER}" in resent.stdout
