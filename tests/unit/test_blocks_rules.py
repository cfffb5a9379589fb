"""Block Kit of issue 20: every surface names the operation (clear the stuck verification, or
resend the verification email); a request made under a rule from a policy file shows it and
who may approve; a rule-approved request has no Approve or Reject; an escalated one says to
whom; a resend the provider refuses says why; a Resent outcome in the thread; the form's
operation choice and the reason's pattern."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from doubles import make_request

from bot.domain.model import (
    Approval,
    History,
    Operation,
    RuleTerms,
    State,
    VerificationRequest,
)
from bot.domain.outcomes import NotResendable, ProviderFailed, Resent
from bot.domain.service import HomeData, StatusReport
from bot.domain.views import ProviderView
from bot.slack import blocks, ids

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
VIP = RuleTerms(
    name="vip-customers",
    policy_hash="0123456789ab",
    approvers=("S0SENIOR",),
    approvals_required=2,
    escalate_after=1800.0,
    escalate_to=("U0BOSS",),
)
ROUTINE = RuleTerms(
    name="resend-is-routine", policy_hash="0123456789ab", approvers=(), approvals_required=0
)
# What a request carries without a POLICY_FILE: the settings, as a rule with no hash.
SETTINGS_RULE = RuleTerms(
    name="default", policy_hash="", approvers=("U0APP",), approvals_required=1
)
RESENT = Resent(
    recipient="admin@example.com",
    sent_at="2026-11-28T12:01:00Z",
    domain="example.com",
    domain_id="42",
    method="email",
    provider_request_id="req-77",
)
TITLES = {
    Operation.CONFIRM: "Clear the stuck verification",
    Operation.RESEND: "Resend the verification email",
}


def request(**changes: Any) -> VerificationRequest:
    base = dict(
        id="0123456789abcdef",
        reason="TICKET-1",
        requester="U1",
        created_at=NOW,
        channel="C1",
        message_ts="1.000100",
    )
    return make_request(**{**base, **changes})


def all_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def buttons(message_blocks: blocks.Blocks) -> list[str]:
    return [e["action_id"] for b in message_blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize("operation", list(Operation))
def test_every_surface_names_the_operation(operation: Operation) -> None:
    """The request message (its text and blocks), its state line, the requester's DMs, the
    Home tab, the status answer and the reminder say which operation the request asks for."""
    title = TITLES[operation]
    words = title[0].lower() + title[1:]
    pending = request(operation=operation)
    text, message = blocks.request_message(pending)
    assert title in all_text(message) and words in text
    done = request(id="f" * 16, operation=operation, state=State.SUCCEEDED, decided_by="U2")
    assert words in blocks.submitted_dm(pending, "C1")[0]
    assert words in blocks.outcome_dm(done, "C1")
    assert words in blocks.reminder_reply(pending, ["U2"], 1)
    home = HomeData("U2", True, (pending,), (pending,), (done,), 1)
    assert all_text(blocks.home_view(home, "C1")).count(words) == 3
    status = StatusReport(pending.email, pending, (done,))
    assert blocks.status_text(status, None).count(words) == 2


def test_a_succeeded_resend_says_email_resent_not_cleared() -> None:
    """A resend that succeeded reads "Email resent" with the masked recipient, never
    "Cleared"; a failed one "Resend failed"."""
    done = request(
        operation=Operation.RESEND, state=State.SUCCEEDED, decided_by="U2", outcome=RESENT
    )
    _, message = blocks.request_message(done)
    shown = all_text(message)
    assert "*Email resent* to `a***@example.com`" in shown and "Cleared" not in shown
    failed = request(
        operation=Operation.RESEND,
        state=State.FAILED,
        decided_by="U2",
        outcome=ProviderFailed("rejected", "Domain not found", 404),
    )
    assert "*Resend failed*" in all_text(blocks.request_message(failed)[1])


def test_the_resent_reply_gives_recipient_time_and_request_id() -> None:
    """The thread reply for a Resent outcome: the recipient (masked, as in the channel), when
    it was sent (as a Slack date) and the provider's requestId; a failed resend says no email
    was sent."""
    done = request(
        operation=Operation.RESEND, state=State.SUCCEEDED, decided_by="U2", outcome=RESENT
    )
    text, reply = blocks.result_reply(done)
    shown = all_text(reply)
    assert "resent" in text
    assert "*Sent to:* `a***@example.com`" in shown
    assert "<!date^" in shown and "2026-11-28 12:01 UTC" in shown
    assert "`req-77`" in shown and "cleared" not in shown.lower()
    failed = request(
        operation=Operation.RESEND,
        state=State.FAILED,
        decided_by="U2",
        outcome=ProviderFailed("rejected", "Domain not found", 404, code="NOT_FOUND"),
    )
    shown = all_text(blocks.result_reply(failed)[1])
    assert "the resend *failed*" in shown and "No email was sent." in shown


def test_a_rule_from_a_policy_names_itself_and_who_may_approve() -> None:
    """Under a rule from a policy file the message says "Rule vip-customers: 2 approvers from
    <!subteam^S0SENIOR>", when it escalates, and the policy's hash; its quorum is the rule's,
    not APPROVALS_REQUIRED's. A request whose rule came from the settings (no hash) reads as
    before rules."""
    text, message = blocks.request_message(request(rule=VIP), required=1)
    shown = all_text(message)
    assert "Rule *vip-customers*: 2 approvers from <!subteam^S0SENIOR>" in shown
    assert "if still waiting after 30 min, <@U0BOSS> may approve too" in shown
    assert "0 of 2 approvals" in shown and "`0123456789ab`" in shown
    plain = all_text(blocks.request_message(request(rule=SETTINGS_RULE))[1])
    assert "Rule" not in plain and "policy" not in plain
    everyone = replace(VIP, approvers=("*",), approvals_required=1, escalate_after=None)
    assert "1 approver from everyone" in all_text(blocks.request_message(request(rule=everyone))[1])


def test_a_rule_approved_request_never_shows_approve_or_reject() -> None:
    """approvals_required 0: "Approved by rule NAME", no Approve or Reject (only the
    requester's Cancel) while it waits for its lookup, on the message and the Home tab; once
    run, the rule is who approved it."""
    pending = request(rule=ROUTINE, operation=Operation.RESEND)
    _, message = blocks.request_message(pending)
    shown = all_text(message)
    assert "*Approved by rule resend-is-routine*" in shown
    assert buttons(message) == [ids.CANCEL_ACTION]
    home = blocks.home_view(HomeData("U2", True, (pending,), (), (), 1), "C1")
    assert ids.APPROVE_ACTION not in all_text(home)
    done = request(rule=ROUTINE, operation=Operation.RESEND, state=State.SUCCEEDED, outcome=RESENT)
    assert "approved by rule *resend-is-routine*" in all_text(blocks.request_message(done)[1])
    assert "Approved by rule *resend-is-routine*" in all_text(blocks.result_reply(done)[1])
    assert "The rule *resend-is-routine* approves it" in blocks.submitted_dm(pending, "C1")[0]


def test_an_escalated_request_says_to_whom() -> None:
    """Escalated: the message says to whom (who may approve it too); the thread notice says
    how long it waited; the reminder now calls the escalate_to too."""
    escalated = request(rule=VIP, escalated_at=NOW + timedelta(minutes=30))
    shown = all_text(blocks.request_message(escalated)[1])
    assert "escalated to <@U0BOSS>, who may approve it too" in shown
    notice = blocks.escalation_reply(escalated, 1800)
    assert notice.startswith(":arrow_double_up: Waiting 30 min: escalated to <@U0BOSS>")
    assert "who may approve it too" in notice
    reminder = blocks.reminder_reply(escalated, ["U0SETTINGS"], 1)
    assert "<!subteam^S0SENIOR>" in reminder and "<@U0BOSS>" in reminder
    assert "U0SETTINGS" not in reminder and "0 of 2 approvals" in reminder
    before = blocks.reminder_reply(request(rule=VIP), ["U0SETTINGS"], 1)
    assert "<@U0BOSS>" not in before


def test_a_resend_the_provider_refuses_says_why() -> None:
    """NOT_RESENDABLE: "Not resendable: <the provider's reason>", closed before approval,
    nobody named as rejecting it; the requester's DMs say the same."""
    closed = request(
        operation=Operation.RESEND,
        state=State.REJECTED,
        outcome=NotResendable("The provider cannot resend the verification email now: cooldown"),
    )
    shown = all_text(blocks.request_message(closed)[1])
    assert "*Not resendable*: `The provider cannot resend" in shown and "cooldown" in shown
    assert "Rejected by" not in shown and not buttons(blocks.request_message(closed)[1])
    told = blocks.outcome_dm(closed, "C1")
    assert "closed before approval" in told and "cooldown" in told
    settled = all_text(blocks.settled_dm(closed, "C1")[1])
    assert "The provider cannot resend it" in settled and "<@>" not in settled


def test_the_provider_view_beside_a_resend_says_whether_it_can() -> None:
    """Beside a resend request, the provider's view says whether resending is possible (once),
    the provider's reason when it is not, and that it does not say when it does not; beside a
    confirm request, no such line."""
    blocked = ProviderView(
        "example.com", "pending", NOW, can_resend=False, resend_blocked="sent 2 min ago"
    )
    shown = all_text(blocks.request_message(request(operation=Operation.RESEND, view=blocked))[1])
    assert "cannot resend the verification email: `sent 2 min ago`" in shown
    able = replace(blocked, can_resend=True, resend_blocked=None)
    shown = all_text(blocks.request_message(request(operation=Operation.RESEND, view=able))[1])
    # Said once, by the provider's line, not again beside it.
    assert shown.count("can resend the") == 1 and "the provider can resend the email" in shown
    silent = replace(blocked, can_resend=None, resend_blocked=None)
    shown = all_text(blocks.request_message(request(operation=Operation.RESEND, view=silent))[1])
    assert "does not say whether it can resend" in shown
    confirm = all_text(blocks.request_message(request(view=blocked))[1])
    assert "cannot resend" not in confirm


def test_history_counts_resends_apart_from_clears() -> None:
    """The history beside a request tells clears from resends."""
    cleared = request(id="a" * 16, state=State.SUCCEEDED, decided_by="U2")
    resent = request(
        id="b" * 16, operation=Operation.RESEND, state=State.SUCCEEDED, decided_by="U3"
    )
    failed = request(id="c" * 16, operation=Operation.RESEND, state=State.FAILED)
    line = blocks.history_line(
        History("alice@example.com", "example.com", 30, (resent, cleared, failed))
    )
    assert "cleared once in the last 30 days" in line
    assert "resent once, last by <@U3>" in line and "1 resend failed" in line


def test_the_approval_recorded_answer_counts_to_the_rules_quorum() -> None:
    """An approval that does not complete a rule's quorum of 2 says "1 of 2", though
    APPROVALS_REQUIRED is 1."""
    one = request(rule=VIP, approvals=(Approval("U2", NOW),))
    assert "1 of 2 approvals" in blocks.approval_recorded_text(one, 1)


# ----------------------------------------------------------------------------- the form


def operation_block(view: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == ids.OPERATION_BLOCK)


def test_the_form_asks_what_should_happen_clear_first() -> None:
    """The form's radio group offers "Clear the stuck verification" (confirm, chosen) and
    "Resend the verification email" (resend); its options carry the operations' values."""
    view = blocks.request_modal("alice@example.com")
    block = operation_block(view)
    element = block["element"]
    assert block["type"] == "input" and element["type"] == "radio_buttons"
    assert element["action_id"] == ids.OPERATION_INPUT
    assert [o["value"] for o in element["options"]] == ["confirm", "resend"]
    assert [o["text"]["text"] for o in element["options"]] == list(TITLES.values())
    assert element["initial_option"] == element["options"][0]
    assert all(len(o["description"]["text"]) <= 75 for o in element["options"])
    order = [b.get("block_id") for b in view["blocks"]]
    assert order[:3] == [ids.EMAIL_BLOCK, ids.OPERATION_BLOCK, ids.REASON_BLOCK]


def test_the_form_prefilled_for_a_resend() -> None:
    """/verify-email resend EMAIL: the form opens with the resend chosen."""
    element = operation_block(blocks.request_modal("a@b.example", operation=Operation.RESEND))[
        "element"
    ]
    assert element["initial_option"]["value"] == "resend"
    assert element["initial_option"] in element["options"]


def test_an_operation_the_rules_refuse_is_left_out_and_said() -> None:
    """An operation the rules do not allow for the address is not offered, and the hint says
    why; asked for all the same (resend prefilled), the form chooses what is offered."""
    view = blocks.request_modal(
        "a@bank.example", operation=Operation.RESEND, refused=[Operation.RESEND]
    )
    block = operation_block(view)
    assert [o["value"] for o in block["element"]["options"]] == ["confirm"]
    assert block["element"]["initial_option"]["value"] == "confirm"
    assert "Resend the verification email: not offered" in block["hint"]["text"]
    assert "hint" not in operation_block(blocks.request_modal("a@b.example"))


def test_the_reason_hint_names_the_rules_pattern() -> None:
    """When the rule that would decide has a reason_pattern the reason's hint says it (one
    sentence when every operation offered asks the same; one each when they differ)."""
    ticket = replace(VIP, name="default", reason_pattern=r"^(TICKET|ZD)-\d+")
    view = blocks.request_modal(
        "a@b.example", rules={Operation.CONFIRM: ticket, Operation.RESEND: ticket}
    )
    reason = next(b for b in view["blocks"] if b.get("block_id") == ids.REASON_BLOCK)
    assert reason["hint"]["text"] == r"The reason must match ^(TICKET|ZD)-\d+ (rule default)."
    view = blocks.request_modal(
        "a@b.example", rules={Operation.CONFIRM: ticket, Operation.RESEND: ROUTINE}
    )
    reason = next(b for b in view["blocks"] if b.get("block_id") == ids.REASON_BLOCK)
    assert reason["hint"]["text"].startswith("To clear the stuck verification, the reason must")
    plain = blocks.request_modal("a@b.example", rules={Operation.CONFIRM: None})
    reason = next(b for b in plain["blocks"] if b.get("block_id") == ids.REASON_BLOCK)
    assert "hint" not in reason
