"""Block Kit builders: escaping, limits, buttons and every state's rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from doubles import make_request

from bot.domain.model import Approval, History, State, VerificationRequest
from bot.domain.outcomes import Cleared, Interrupted, ProviderFailed
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import HomeData
from bot.slack import blocks, ids

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def request(**changes) -> VerificationRequest:
    base = dict(
        id="0123456789abcdef",
        reason="TICKET-1",
        requester="U1",
        created_at=NOW,
        channel="C1",
        message_ts="1.000100",
    )
    return make_request(**{**base, **changes})


def all_text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_escape():
    """&, < and > are escaped so Slack never reads person-given text as markup."""
    assert blocks.esc("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_hostile_reason_pings_nobody():
    """A reason of <!channel> appears escaped in the request message."""
    text, bl = blocks.request_message(request(reason="<!channel> <@U999> <https://evil|x>"))
    rendered = all_text(bl)
    assert "<!channel>" not in rendered
    assert "<@U999>" not in rendered
    assert "&lt;!channel&gt;" in rendered


def test_pending_message_has_its_three_buttons():
    """Pending: names requester, email, domain, reason, expiry; Approve (primary, with a
    confirmation), Reject (danger) and the requester's Cancel (with a confirmation saying only
    the requester can)."""
    text, bl = blocks.request_message(request())
    rendered = all_text(bl)
    for piece in ("<@U1>", "alice@example.com", "example.com", "TICKET-1", "<!date^"):
        assert piece in rendered
    actions = [b for b in bl if b["type"] == "actions"]
    assert len(actions) == 1
    approve, reject, cancel = actions[0]["elements"]
    assert (approve["action_id"], approve["style"], approve["value"]) == (
        ids.APPROVE_ACTION,
        "primary",
        "0123456789abcdef",
    )
    assert "confirm" in approve
    assert (reject["action_id"], reject["style"]) == (ids.REJECT_ACTION, "danger")
    assert (cancel["action_id"], cancel["value"]) == (ids.CANCEL_ACTION, "0123456789abcdef")
    assert "Only the person who asked" in cancel["confirm"]["text"]["text"]
    assert "alice@example.com" in text


@pytest.mark.parametrize("state", [s for s in State if s is not State.PENDING])
def test_final_states_have_no_buttons(state):
    """Every state but pending renders without buttons."""
    _, bl = blocks.request_message(request(state=state, decided_by="U2"))
    assert not [b for b in bl if b["type"] == "actions"]
    assert state.value in all_text(bl)


def test_approver_named_in_final_message():
    """The final message names the approver."""
    _, bl = blocks.request_message(
        request(state=State.SUCCEEDED, decided_by="U2", outcome=Cleared(("example.com",), (), ""))
    )
    assert "<@U2>" in all_text(bl)


def test_success_reply_lists_everything():
    """The thread reply lists domains, clients, the provider message, requestId and approver."""
    outcome = Cleared(
        cleared_domains=("example.com", "example.org"),
        clients_notified=("3704",),
        message="Verification caches cleared",
        provider_request_id="req-42",
    )
    text, bl = blocks.result_reply(request(state=State.SUCCEEDED, decided_by="U2", outcome=outcome))
    rendered = all_text(bl)
    for piece in (
        "example.com",
        "example.org",
        "3704",
        "Verification caches cleared",
        "req-42",
        "<@U2>",
    ):
        assert piece in rendered


def test_long_lists_are_shortened_with_count():
    """Thousands of domains: the reply stays within the section limit and says how many more."""
    domains = [f"domain-{n}.example.com" for n in range(5000)]
    outcome = Cleared(
        cleared_domains=tuple(domains),
        clients_notified=tuple(str(n) for n in range(3000)),
        message="x" * 5000,
        provider_request_id="r",
    )
    _, bl = blocks.result_reply(request(state=State.SUCCEEDED, decided_by="U2", outcome=outcome))
    assert len(bl) <= 50
    for block in bl:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    rendered = all_text(bl)
    assert "Cleared domains (5000)" in rendered
    assert "more" in rendered


def test_failure_reply_shows_provider_details():
    """A failed call shows the HTTP status, the provider's code, message and requestId, escaped."""
    outcome = ProviderFailed(
        kind="rejected",
        status=400,
        code="BAD_REQUEST",
        message="Email <b>is</b> required",
        provider_request_id="req-9",
    )
    _, bl = blocks.result_reply(request(state=State.FAILED, decided_by="U2", outcome=outcome))
    rendered = all_text(bl)
    for piece in ("HTTP 400", "BAD_REQUEST", "Email &lt;b&gt;is&lt;/b&gt; required", "req-9"):
        assert piece in rendered


def test_unknown_reply_says_may_or_may_not():
    """An unknown outcome says plainly the provider may or may not have acted."""
    _, bl = blocks.result_reply(
        request(state=State.UNKNOWN, decided_by="U2", outcome=Interrupted("No answer within 15 s"))
    )
    assert "may or may not" in all_text(bl)


def test_request_modal_prefill_and_ids():
    """The modal carries the constants' IDs, the prefilled email and what approval does."""
    view = blocks.request_modal("alice@example.com", "T-1")
    assert view["callback_id"] == ids.REQUEST_VIEW
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id[ids.EMAIL_BLOCK]["element"]["initial_value"] == "alice@example.com"
    assert by_id[ids.EMAIL_BLOCK]["element"]["action_id"] == ids.EMAIL_INPUT
    assert by_id[ids.REASON_BLOCK]["element"]["initial_value"] == "T-1"
    assert "Approve" in all_text(view)
    empty = blocks.request_modal(None)
    assert "initial_value" not in empty["blocks"][0]["element"]


def test_reject_modal_carries_request_id():
    """The reject modal remembers which request it is for."""
    view = blocks.reject_modal(request())
    assert json.loads(view["private_metadata"]) == {"request_id": "0123456789abcdef"}
    assert view["callback_id"] == ids.REJECT_VIEW


def test_dms_escape_and_name_channel():
    """DMs name the channel and escape the email; the "posted" DM has no button (Cancel is on
    the request message) and says where to cancel."""
    text, dm_blocks = blocks.submitted_dm(request(email="a&b@example.com"), "C1")
    assert "<#C1>" in text and "a&amp;b@example.com" in text
    assert "cancel it with *Cancel request* on the request message" in text
    assert [b for b in dm_blocks if b["type"] == "actions"] == []
    rejected = blocks.outcome_dm(
        request(state=State.REJECTED, decided_by="U2", decision_note="<!here>"), "C1"
    )
    assert "&lt;!here&gt;" in rejected and "<@U2>" in rejected


def test_outcome_dm_names_every_approver_of_a_quorum():
    """With two approvals the requester hears both names, not only the last approver's."""
    approvals = (Approval("U0ANA", NOW), Approval("U0LEE", NOW))
    for state in (State.SUCCEEDED, State.FAILED, State.UNKNOWN):
        text = blocks.outcome_dm(
            request(state=state, decided_by="U0LEE", approvals=approvals), "C1"
        )
        assert "approved by <@U0ANA> and <@U0LEE>" in text, text


def test_refusals_in_plain_text_carry_no_mentions():
    """Modal error texts are plain text: a refusal worded for one names nobody in markup,
    while the same refusal in a message mentions who decided."""
    decided = Refused(Refusal.ALREADY_DECIDED, request(state=State.SUCCEEDED, decided_by="U0ANA"))
    assert blocks.refusal_words(decided, mentions=False) == "This request is already succeeded."
    assert blocks.refusal_words(decided) == "This request is already succeeded by <@U0ANA>."
    for code in Refusal:
        refused = Refused(code, request(state=State.REJECTED, decided_by="U2"))
        assert "<@" not in blocks.refusal_words(refused, mentions=False)
        assert blocks.refusal_words(refused)  # every code is worded


def test_home_view_gives_every_row_of_buttons_its_own_block_id():
    """Slack refuses a view that repeats a block_id: on a Home tab listing the same pending
    requests as waiting for approval and as one's own (an approver who asked, with self-approval
    allowed), every Approve/Reject row and every Cancel row has a block_id of its own, naming
    its request, within Slack's 255 characters; the request message keeps its fixed one."""
    first, second = request(id="0123456789abcdef"), request(id="fedcba9876543210")
    home = blocks.home_view(
        HomeData("U1", True, (first, second), (first, second), (), 1), channel="C1"
    )
    given = [b["block_id"] for b in home["blocks"] if "block_id" in b]
    assert len(given) == len(set(given)) == 4
    assert given == [
        f"{ids.ACTIONS_BLOCK}:{first.id}",
        f"{ids.ACTIONS_BLOCK}:{second.id}",
        f"{ids.CANCEL_BLOCK}:{first.id}",
        f"{ids.CANCEL_BLOCK}:{second.id}",
    ]
    assert all(len(b) <= ids.MAX_BLOCK_ID for b in given)
    [row] = [b for b in blocks.request_message(first)[1] if b["type"] == "actions"]
    assert row["block_id"] == ids.ACTIONS_BLOCK


def test_history_line_says_when_there_were_more_than_it_counts():
    """With more earlier requests than it counts, the line says "more than N" and what its
    counts cover, never a count that is silently capped."""
    cleared = request(state=State.SUCCEEDED, decided_by="U2")
    rejected = request(state=State.REJECTED, decided_by="U2")
    line = blocks.history_line(
        History("alice@example.com", "example.com", 30, (cleared, cleared, rejected), more=True)
    )
    assert "more than 3 in the last 30 days; of the latest 3: cleared 2 times, last by <@U2>" in (
        line
    )
    assert line.endswith("; 1 rejected.")
    plain_line = blocks.history_line(
        History("alice@example.com", "example.com", 30, (cleared, rejected))
    )
    assert "cleared once in the last 30 days" in plain_line and "more than" not in plain_line


def test_a_reminder_calls_the_groups_and_the_listed_approvers_who_have_not_approved():
    """A reminder mentions each user group and each listed approver, except a listed one who
    has already approved (a group cannot leave a member out, so it is always called)."""
    at = datetime(2026, 12, 1, tzinfo=UTC)
    waiting = request(approvals=(Approval("U0ANA", at),))
    text = blocks.reminder_reply(waiting, ["S0APPROVERS", "U0ANA", "U0BOB", "*"], 2)
    assert "<!subteam^S0APPROVERS>" in text
    assert "<@U0BOB>" in text
    assert "<@U0ANA>" not in text.split("still waiting")[0]
    assert "1 of 2 approvals" in text
