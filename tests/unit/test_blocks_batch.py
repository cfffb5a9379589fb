"""How Slack shows a bulk request: its message in each state, the progress line, the lists
clipped with counts, the one final thread reply and the DMs, within Slack's limits at 1,000
emails; the buttons' action ids and values; and the renderer's branches for a bulk request.

(Over 500 lines: one module for one surface, as test_blocks is for a single request's; most of
its length is the parametrised states' expected lines, which read best beside each other.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.model import (
    Approval,
    AuditEntry,
    Item,
    Operation,
    RuleTerms,
    State,
    VerificationRequest,
)
from bot.domain.outcomes import Cleared, Interrupted, NotPosted, Outcome, ProviderFailed, Resent
from bot.domain.ports import OutboxEntry
from bot.slack import blocks, ids
from bot.slack.blocks.request import state_line
from bot.slack.notices import Notice, Surface
from bot.slack.notifier import Posted
from bot.slack.render import Renderer

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
RID = "0123456789abcdef"
RULE = RuleTerms(
    name="strictest of vip, default",
    policy_hash="abc123abc123",
    approvers=("S0SENIOR",),
    approvals_required=2,
    also_approvers=(("S0VIP",),),
)

# Slack's limits (https://api.slack.com/reference/block-kit): blocks in a message, characters
# in a section's text, a context element, a header, a button's value and label, a confirm's
# text; and a message's top-level text.
MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_CONTEXT = 3000
MAX_HEADER = 150
MAX_VALUE = 2000
MAX_BUTTON_TEXT = 75
MAX_CONFIRM_TEXT = 300
MAX_TEXT = 40000


def outcome_for(state: State, n: int) -> Outcome | None:
    if state is State.SUCCEEDED:
        return Cleared((f"d{n}.example",), ("3704",), "Verification caches cleared")
    if state is State.FAILED:
        return ProviderFailed(
            kind="rejected",
            message="Email is not registered",
            status=404,
            code="EMAIL_NOT_FOUND" if n % 3 else "DOMAIN_SUSPENDED",
        )
    if state is State.UNKNOWN:
        return ProviderFailed(kind="timeout", message="No answer in 10 s", outcome_unknown=True)
    return None


def bulk(
    n: int = 300,
    state: State = State.PENDING,
    states: Callable[[int], State] | None = None,
    outcome: Callable[[int, State], Outcome | None] = lambda i, s: outcome_for(s, i),
    email: Callable[[int], str] = lambda i: f"user{i}@dom{i % 13}.example",
    **changes: Any,
) -> VerificationRequest:
    """A bulk request of ``n`` items (item i in ``states(i)``, else ``state``), with
    ``outcome(i, state)``; ``changes`` set the request's fields."""
    items = []
    for i in range(n):
        s = states(i) if states is not None else state
        address = email(i)
        items.append(
            Item(
                email=address,
                domain=address.rpartition("@")[2],
                state=s,
                outcome=outcome(i, s),
                position=i,
            )
        )
    fields: dict[str, Any] = {
        "id": RID,
        "reason": "INC-42: the provider's verification mail is down",
        "requester": "U0REQ",
        "state": state,
        "created_at": T0,
        "expires_at": T0 + timedelta(days=1),
        "updated_at": T0,
        "items": tuple(items),
        "bulk": True,
        "rule": RULE,
        "channel": "C0APPROVALS",
        "message_ts": "1700000000.000001",
    }
    return VerificationRequest(**(fields | changes))


APPROVED: dict[str, Any] = {
    "approvals": (Approval("U0ANA", T0), Approval("U0LEE", T0)),
    "decided_by": "U0LEE",
    "started_at": T0,
}


def ran(done: int, failed: int = 0, unknown: int = 0, running: int = 0) -> Callable[[int], State]:
    """Item states of a run: the first ``done`` ended (the last ``failed`` + ``unknown`` of
    those failed or unknown), the next ``running`` running, the rest queued."""
    ok = done - failed - unknown

    def state(i: int) -> State:
        if i < ok:
            return State.SUCCEEDED
        if i < ok + failed:
            return State.FAILED
        if i < done:
            return State.UNKNOWN
        if i < done + running:
            return State.EXECUTING
        return State.PENDING

    return state


def texts(message_blocks: Any) -> str:
    return json.dumps(message_blocks, ensure_ascii=False)


def actions(message_blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in message_blocks if b["type"] == "actions" for e in b["elements"]]


def section_texts(message_blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in message_blocks if b["type"] == "section"]


# -- the request message ----------------------------------------------------------------------


def test_pending_message_shows_count_domains_first_emails_rule_and_buttons() -> None:
    """Pending: a header with the operation and the count; the requester, the reason, the rule
    (with the approvers every email's rule adds), the domains most first (10, then "and N more
    domains"), the first 10 emails and "and 290 more", the quorum so far; Approve, Reject and
    the requester's Cancel with a single request's action ids, each valued the request id."""
    request = bulk(approvals=(Approval("U0ANA", T0),))
    text, message = blocks.request_message(request, 1)  # handed to the batch builder
    assert (text, message) == blocks.batch_message(request, 1)
    assert message[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Bulk request: clear the stuck verification for 300 emails",
            "emoji": True,
        },
    }
    summary, domains, emails, state = section_texts(message)
    assert "<@U0REQ>" in summary and "INC-42" in summary
    assert "Rule *strictest of vip, default*: 2 approvers from <!subteam^S0SENIOR>" in summary
    assert "must also be among <!subteam^S0VIP>" in summary
    assert domains.startswith("*Domains (13):* `dom0.example` (24), `dom1.example` (23)")
    assert domains.endswith("and 3 more domains") and domains.count("(23)") == 9
    assert emails.startswith("*Emails (300):* `user0@dom0.example`, `user1@dom1.example`")
    assert emails.endswith("`user9@dom9.example` and 290 more")
    assert "1 of 2 approvals: <@U0ANA>" in state
    approve, reject, cancel = actions(message)
    assert [b["action_id"] for b in (approve, reject, cancel)] == [
        ids.APPROVE_ACTION,
        ids.REJECT_ACTION,
        ids.CANCEL_ACTION,
    ]
    assert {b["value"] for b in (approve, reject, cancel)} == {RID}
    assert [b["block_id"] for b in message if b["type"] == "actions"] == [ids.ACTIONS_BLOCK]
    assert "each of the 300 emails (13 domains)" in approve["confirm"]["text"]["text"]
    assert "300 emails" in cancel["confirm"]["text"]["text"]
    assert "300 emails" in text and len(text) < 300


def test_a_request_its_rule_approves_offers_only_cancel() -> None:
    """A bulk request its rule approves asks nobody: only its requester's Cancel."""
    request = bulk(rule=replace(RULE, approvals_required=0))
    _, message = blocks.batch_message(request)
    assert [b["action_id"] for b in actions(message)] == [ids.CANCEL_ACTION]
    assert "Approved by rule" in texts(message)


def test_running_message_shows_progress_and_a_cancel_that_stops_the_rest() -> None:
    """Executing: the progress line with the time left (the renderer's clock), and the
    requester's Cancel, which says it stops the emails not started."""
    request = bulk(state=State.EXECUTING, states=ran(212, failed=4, unknown=3), **APPROVED)
    now = T0 + timedelta(seconds=40 * 212 / 88)
    _, message = blocks.batch_message(request, 1, now)
    state = section_texts(message)[3]
    assert state == (
        ":arrows_counterclockwise: *Running*, approved by <@U0ANA> and <@U0LEE>: "
        "212 of 300 done: 205 cleared, 4 failed, 3 unknown; about 40 s left"
    )
    [cancel] = actions(message)
    assert (cancel["action_id"], cancel["value"]) == (ids.CANCEL_ACTION, RID)
    assert "The 88 emails not started yet will not be called" in (cancel["confirm"]["text"]["text"])
    # Without a clock there is no estimate (and so nothing that changes by itself).
    assert "left" not in section_texts(blocks.batch_message(request, 1)[1])[3]


def test_stopping_shows_no_cancel_and_says_so() -> None:
    """After the requester's Cancel during the run (items not started cancelled, some still
    running): no button, and the line says the rest will not be called."""
    states = ran(100, running=2)
    request = bulk(
        state=State.EXECUTING,
        states=lambda i: State.CANCELLED if states(i) is State.PENDING else states(i),
        **(APPROVED | {"decided_by": "U0REQ"}),
    )
    _, message = blocks.batch_message(request, 1, T0 + timedelta(seconds=30))
    assert not actions(message)
    line = section_texts(message)[3]
    assert line.startswith(":octagonal_sign: *Stopping* (cancelled by <@U0REQ>)")
    assert "300 done: 100 cleared, 198 not run; 2 running" in line


@pytest.mark.parametrize(
    ("state", "states", "changes", "expected"),
    [
        (State.SUCCEEDED, None, APPROVED, ":white_check_mark: *Done*: all 300 cleared"),
        (
            State.FAILED,
            ran(300, failed=12),
            APPROVED,
            ":x: *Finished with 12 failures*: 288 cleared, 12 failed",
        ),
        (
            State.UNKNOWN,
            ran(300, failed=2, unknown=5),
            APPROVED,
            ":grey_question: *Finished, 5 outcomes unknown*: 293 cleared, 2 failed, 5 unknown",
        ),
        (
            State.RESOLVED,
            lambda i: State.RESOLVED if i < 5 else State.SUCCEEDED,
            APPROVED | {"decided_by": "U0ANA", "decision_note": "the provider shows them done"},
            ":ballot_box_with_check: *Resolved by <@U0ANA>* after unknown outcomes, without a "
            "Retry: 295 cleared, 5 resolved: the provider shows them done",
        ),
        (
            State.CANCELLED,
            lambda i: State.SUCCEEDED if i < 120 else State.CANCELLED,
            APPROVED | {"decided_by": "U0REQ"},
            ":leftwards_arrow_with_hook: *Stopped by <@U0REQ>*, who asked for it: 120 cleared; "
            "stopped: 180 not run",
        ),
        (
            State.CANCELLED,
            None,
            {"decided_by": "U0REQ"},
            ":leftwards_arrow_with_hook: *Cancelled by <@U0REQ>*, who asked for it; nothing was "
            "sent to the provider",
        ),
        (
            State.REJECTED,
            None,
            {"decided_by": "U0ANA", "decision_note": "use the script"},
            ":no_entry_sign: *Rejected by <@U0ANA>*: use the script",
        ),
        (State.EXPIRED, None, {}, ":hourglass_flowing_sand: *Expired* without a decision"),
    ],
)
def test_ended_message_says_how_in_counts_without_buttons(
    state: State,
    states: Callable[[int], State] | None,
    changes: dict[str, Any],
    expected: str,
) -> None:
    """Once it ended (or was closed), the message's state line says how, in counts (zero
    counts left out), and offers no button: Retry and Resolved are in the thread."""
    request = bulk(state=state, states=states, **changes)
    _, message = blocks.batch_message(request, 1, T0 + timedelta(minutes=5))
    assert section_texts(message)[3].startswith(expected)
    assert not actions(message)
    assert f"state: {state.value}" in texts(message[-1:])
    assert state_line(request, 1) == blocks.batch_state_line(request, 1)


def test_progress_wording() -> None:
    """The progress line: "sent" for a resend, zero counts left out, items being called
    counted, minutes for a longer wait, nothing done yet, no estimate before any ended."""
    resend = bulk(10, state=State.EXECUTING, states=ran(6), operation=Operation.RESEND, **APPROVED)
    assert blocks.progress_line(resend, T0 + timedelta(seconds=60)) == (
        "6 of 10 done: 6 sent; about 40 s left"
    )
    slow = bulk(state=State.EXECUTING, states=ran(100, failed=1, running=4), **APPROVED)
    assert blocks.progress_line(slow, T0 + timedelta(seconds=100)) == (
        "100 of 300 done: 99 cleared, 1 failed; 4 running; about 3 min left"
    )
    waiting = bulk(state=State.EXECUTING, states=ran(0, running=4), **APPROVED)
    assert blocks.progress_line(waiting, T0 + timedelta(seconds=1)) == "0 of 300 done; 4 running"


def test_hostile_reason_and_emails_are_shown_inert() -> None:
    """A reason of <!channel> and addresses with markup characters are escaped (in code
    spans), so the message pings and links nobody."""
    request = bulk(20, reason="<!channel> <@U999> *now*", email=lambda i: f"a`<!here>{i}@x.example")
    _, message = blocks.batch_message(request)
    rendered = texts(message)
    assert "<!channel>" not in rendered and "<!here>" not in rendered and "<@U999>" not in rendered


# -- the final thread reply -------------------------------------------------------------------


def test_result_reply_lists_failed_and_unknown_by_code_with_retry_and_resolved() -> None:
    """The run's one reply: the counts, the failed emails under each provider code (most
    first, with its message), the unknown ones; Retry (the unknown only) and Resolved with a
    single unknown outcome's action ids, valued the request id; no Check provider."""
    request = bulk(state=State.UNKNOWN, states=ran(300, failed=80, unknown=15), **APPROVED)
    text, reply = blocks.result_reply(request)  # handed to the batch builder
    assert (text, reply) == blocks.batch_result_reply(request)
    headline, failed, unknown = section_texts(reply)
    assert headline.startswith(
        ":grey_question: The bulk request to clear the stuck verification for 300 emails "
        "finished with 15 unknown: 205 cleared, 80 failed, 15 unknown."
    )
    lines = failed.split("\n")
    assert lines[0] == "*Failed (80):*"
    assert lines[1].startswith("• `HTTP 404 EMAIL_NOT_FOUND` `Email is not registered` (54): ")
    assert lines[1].endswith(" and 46 more")
    assert lines[2].startswith("• `HTTP 404 DOMAIN_SUSPENDED` `Email is not registered` (26): ")
    assert unknown.startswith("*Unknown (15):*\n• `timeout` `No answer in 10 s` (15): `user285@")
    retry, resolve = actions(reply)
    assert (retry["action_id"], retry["value"]) == (ids.RETRY_ACTION, RID)
    assert (resolve["action_id"], resolve["value"]) == (ids.RESOLVE_ACTION, RID)
    assert "15 emails whose outcome is unknown (only those)" in retry["confirm"]["text"]["text"]
    assert ids.CHECK_ACTION not in texts(reply)
    assert [b["block_id"] for b in reply if b["type"] == "actions"] == [ids.RETRY_BLOCK]
    assert text == (
        f"Bulk request {RID} finished with 15 unknown: 205 cleared, 80 failed, 15 unknown of 300"
    )


def test_result_reply_rewritten_without_buttons_and_with_a_note() -> None:
    """Rewritten once they can no longer act: the same reply without Retry and Resolved, and
    the note of what happened instead; a run that ended without unknowns offers none."""
    request = bulk(state=State.UNKNOWN, states=ran(300, unknown=3), **APPROVED)
    _, reply = blocks.result_reply(request, retry=False, note="Retried by <@U0ANA>; see below.")
    assert not actions(reply)
    assert reply[-1]["elements"][0]["text"] == "Retried by <@U0ANA>; see below."
    _, succeeded = blocks.batch_result_reply(bulk(state=State.SUCCEEDED, **APPROVED))
    assert not actions(succeeded) and len(section_texts(succeeded)) == 1
    assert "finished: 300 cleared." in section_texts(succeeded)[0]


def test_interrupted_and_unanswered_items_are_named_by_what_happened() -> None:
    """An unknown item whose process stopped mid-call reads ``interrupted``; one without any
    outcome ``no answer``."""
    request = bulk(
        4,
        state=State.UNKNOWN,
        outcome=lambda i, s: Interrupted() if i % 2 else None,
        **APPROVED,
    )
    _, reply = blocks.batch_result_reply(request)
    unknown = section_texts(reply)[1]
    assert "• `interrupted`" in unknown and "• `no answer` (2)" in unknown


# -- Slack's limits at 1,000 emails -----------------------------------------------------------


def long_email(i: int) -> str:
    return f"{'x' * 60}{i:04d}@{'sub' + str(i) + '.' + 'd' * 55}.{'e' * 60}.example"


def long_failure(i: int, state: State) -> Outcome | None:
    if state is State.FAILED:
        return ProviderFailed(
            kind="rejected",
            message=f"The provider says no: {'m' * 900} <!channel> `{i}`",
            status=400 + i % 100,
            code=f"CODE_{i:04d}_{'Z' * 180}",  # every item its own code
        )
    if state is State.UNKNOWN:
        return ProviderFailed(
            kind="server_error",
            message="x" * 2000,
            status=500 + i % 4,
            code=None,
            outcome_unknown=True,
        )
    return outcome_for(state, i)


def mixed(i: int) -> State:
    return (State.SUCCEEDED, State.FAILED, State.UNKNOWN, State.CANCELLED)[i % 4]


SCENARIOS: dict[str, dict[str, Any]] = {
    "all failed, own long codes": dict(state=State.FAILED, outcome=long_failure),
    "all failed, one code": dict(state=State.FAILED),
    "all unknown, long messages": dict(state=State.UNKNOWN, outcome=long_failure),
    "mixed, long": dict(state=State.UNKNOWN, states=mixed, outcome=long_failure),
    "mixed, short": dict(state=State.UNKNOWN, states=mixed),
    "running": dict(state=State.EXECUTING, states=ran(500, failed=200, unknown=100, running=4)),
    "pending": dict(state=State.PENDING),
}


def every_text(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair inside a Block Kit structure."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key, inner
            yield from every_text(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from every_text(inner)


def assert_within_limits(text: str, message_blocks: list[dict[str, Any]]) -> None:
    assert len(text) <= 300 < MAX_TEXT  # short, whatever the size of the batch
    assert 0 < len(message_blocks) <= MAX_BLOCKS
    for block in message_blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION
            # Built to fit, not cut by the clip: no list ends in a cut ("…").
            assert not block["text"]["text"].endswith("…")
            assert block["text"]["text"].count("`") % 2 == 0  # no code span left open
        elif block["type"] == "context":
            assert all(len(e["text"]) <= MAX_CONTEXT for e in block["elements"])
        elif block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
        elif block["type"] == "actions":
            for button in block["elements"]:
                assert len(button["value"]) <= MAX_VALUE
                assert len(button["text"]["text"]) <= MAX_BUTTON_TEXT
                if "confirm" in button:
                    assert len(button["confirm"]["text"]["text"]) <= MAX_CONFIRM_TEXT
    rendered = texts(message_blocks)
    assert "<!channel>" not in rendered


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_surface_stays_within_slacks_limits_at_1000_emails(scenario: str) -> None:
    """At 1,000 emails (long addresses, long and distinct provider codes and messages, and
    mixes), the message, the final reply and the DMs stay within Slack's limits: at most 50
    blocks, sections under 3,000 characters (built so, not cut), a short fallback text,
    button values the request id."""
    request = bulk(1000, email=long_email, **(APPROVED | SCENARIOS[scenario]))
    assert_within_limits(*blocks.batch_message(request, 2, T0 + timedelta(minutes=1)))
    assert_within_limits(*blocks.batch_result_reply(request))
    assert_within_limits(*blocks.batch_result_reply(request, retry=False, note="x" * 500))
    assert len(blocks.batch_outcome_dm(request, "C0APPROVALS")) < 1000
    assert len(blocks.batch_submitted_dm(request, "C0APPROVALS")[0]) < 1000
    assert len(blocks.batch_cancelled_dm(request)) < 1000


def test_lists_say_how_many_they_leave_out() -> None:
    """At 1,000 failed emails each with its own code, the reply names a few codes and says
    how many more failed under how many other codes; the counts add up to 1,000."""
    request = bulk(1000, state=State.FAILED, email=long_email, outcome=long_failure, **APPROVED)
    failed = section_texts(blocks.batch_result_reply(request)[1])[1]
    named = [int(n) for n in re.findall(r"\((\d+)\): ", failed)]
    more = re.search(r"and (\d+) more failed under (\d+) other codes$", failed)
    assert more is not None and named
    assert sum(named) + int(more.group(1)) == 1000
    assert len(named) + int(more.group(2)) == 1000


# -- the requester's DMs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "states", "changes", "expected"),
    [
        (
            State.SUCCEEDED,
            None,
            APPROVED,
            ":white_check_mark: Your bulk request to clear the stuck verification for 300 "
            "emails was approved by <@U0ANA> and <@U0LEE> and has finished: 300 cleared.",
        ),
        (
            State.FAILED,
            ran(300, failed=3),
            APPROVED,
            ":x: Your bulk request to clear the stuck verification for 300 emails has finished: "
            "297 cleared, 3 failed.",
        ),
        (
            State.UNKNOWN,
            ran(300, unknown=3),
            APPROVED,
            ":grey_question: Your bulk request to clear the stuck verification for 300 emails "
            "has finished: 297 cleared, 3 unknown.",
        ),
        (
            State.REJECTED,
            None,
            {"decided_by": "U0ANA", "decision_note": "<!channel> no"},
            ":no_entry_sign: Your bulk request to clear the stuck verification for 300 emails "
            "was rejected by <@U0ANA>. Reason: &lt;!channel&gt; no",
        ),
        (
            State.CANCELLED,
            lambda i: State.SUCCEEDED if i < 10 else State.CANCELLED,
            APPROVED | {"decided_by": "U0REQ"},
            ":leftwards_arrow_with_hook: You stopped your bulk request",
        ),
        (
            State.CANCELLED,
            None,
            {"decided_by": "U0REQ"},
            ":leftwards_arrow_with_hook: You cancelled your bulk request to clear the stuck "
            "verification for 300 emails. Nothing was sent to the provider.",
        ),
    ],
)
def test_outcome_dm_is_short_with_counts(
    state: State,
    states: Callable[[int], State] | None,
    changes: dict[str, Any],
    expected: str,
) -> None:
    """The requester hears how the batch ended in one short message with the counts; the
    thread holds the details."""
    request = bulk(state=state, states=states, **changes)
    dm = blocks.outcome_dm(request, "C0APPROVALS")  # handed to the batch builder
    assert dm == blocks.batch_outcome_dm(request, "C0APPROVALS")
    assert dm.startswith(expected)
    assert len(dm) < 600
    if state in (State.SUCCEEDED, State.FAILED, State.UNKNOWN):
        assert "<#C0APPROVALS>" in dm


# -- the other builders never raise on a bulk request ------------------------------------------

# Each builder, and whether what it says names the count ("300 emails").
BUILDERS: dict[str, tuple[Callable[[VerificationRequest], Any], bool]] = {
    "state_line": (lambda r: state_line(r, 1), False),
    "decision_buttons": (lambda r: blocks.decision_buttons(r, cancel=True), True),
    "submitted_dm": (lambda r: blocks.submitted_dm(r, "C1"), True),
    "settled_dm": (lambda r: blocks.settled_dm(r, "C1"), True),
    "cancelled_dm": (blocks.cancelled_dm, True),
    "not_posted_dm": (lambda r: blocks.not_posted_dm(r, "C1", "channel_not_found"), True),
    "reject_modal": (blocks.reject_modal, True),
    "resolve_modal": (blocks.resolve_modal, False),
    "reminder_reply": (lambda r: blocks.reminder_reply(r, ("U0ANA",), 2), True),
    "escalation_reply": (lambda r: blocks.escalation_reply(r, 60.0), True),
    "unknown_buttons": (blocks.unknown_buttons, False),
}


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("state", list(State))
def test_no_builder_raises_on_a_bulk_request(name: str, state: State) -> None:
    """Every builder a bulk request can reach (the Home tab's state line and buttons, the
    forms of Reject and Resolved, the reminders, the DMs) shows it by its count: none reads
    ``request.email``, which raises for several items."""
    request = bulk(state=state, states=ran(300, unknown=2) if state is State.UNKNOWN else None)
    build, names_count = BUILDERS[name]
    shown = json.dumps(build(request))
    assert "user0@dom0.example" not in shown
    if names_count:
        assert "300 emails" in shown


def test_words_for_the_forms_and_reminders() -> None:
    """Reject's form, Resolved's form and the reminder name the count; Resolved's says how
    many unknown emails it closes."""
    request = bulk(state=State.UNKNOWN, states=ran(300, unknown=7), **APPROVED)
    assert "for 300 emails? The provider will not be called" in texts(blocks.reject_modal(request))
    assert "the 7 emails of bulk request" in texts(blocks.resolve_modal(request))
    assert "for 300 emails is still waiting" in blocks.reminder_reply(bulk(), ("U0ANA",), 2)


# -- the renderer -----------------------------------------------------------------------------


@dataclass
class Records:
    """What the renderer reads and writes in the store, in memory."""

    entries: dict[int, AuditEntry] = field(default_factory=dict)
    buttons: list[tuple[str, str, int | None]] = field(default_factory=list)
    messages: list[tuple[str, str, str]] = field(default_factory=list)

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        return self.entries.get(entry_id)

    def audit_log(self, request_id: str) -> list[AuditEntry]:
        return list(self.entries.values())

    def requests_about(self, *args: Any, **kw: Any) -> list[VerificationRequest]:
        raise AssertionError("a bulk request has no history of one email")

    def set_message(self, request_id: str, channel: str, message_ts: str) -> None:
        self.messages.append((request_id, channel, message_ts))

    def record_buttons(
        self, request_id: str, surface: str, channel: str, ts: str, **kw: Any
    ) -> None:
        self.buttons.append((request_id, surface, kw.get("audit_id")))

    def live_buttons(self, request_id: str) -> list[Any]:
        return []

    def settle_buttons(self, buttons_id: int, *, now: datetime) -> None:
        pass

    def outbox_entries(self, request_id: str | None = None) -> list[OutboxEntry]:
        return []


@dataclass
class Messenger:
    """Slack, as the renderer's three primitives: records what each was asked."""

    channel: str = "C0APPROVALS"
    calls: list[dict[str, Any]] = field(default_factory=list)

    def post(
        self,
        what: str,
        channel: str,
        text: str,
        message_blocks: Any = None,
        *,
        thread_ts: str | None = None,
        metadata: Any = None,
    ) -> Posted:
        self.calls.append(
            {"call": "post", "text": text, "blocks": message_blocks, "thread_ts": thread_ts}
        )
        return Posted(channel, f"1700000001.{len(self.calls):06d}")

    def update(
        self, what: str, channel: str, ts: str, text: str, message_blocks: Any = None
    ) -> None:
        self.calls.append({"call": "update", "text": text, "blocks": message_blocks, "ts": ts})

    def dm(self, user_id: str, text: str, message_blocks: Any = None) -> Posted:
        self.calls.append({"call": "dm", "user": user_id, "text": text, "blocks": message_blocks})
        return Posted("D1", "1.1")

    def find_request_message(self, request: VerificationRequest) -> Posted | None:
        return None

    def permalink(self, request: VerificationRequest) -> str | None:
        return None

    def complete_step(self, execution_id: str, outputs: dict[str, Any]) -> bool:
        raise AssertionError("a bulk request is never made by a step")


def entry(kind: Notice, audit_id: int | None = None) -> OutboxEntry:
    return OutboxEntry(1, RID, kind, kind.lane, 0, T0, T0, audit_id=audit_id)


def test_renderer_posts_and_shows_a_bulk_request_with_progress_by_its_clock() -> None:
    """POST_REQUEST posts the batch message (no history of one email is looked up); SHOW
    updates it with the progress and the time left by the renderer's clock."""
    records, slack = Records(), Messenger()
    renderer = Renderer(records, slack, clock=lambda: T0 + timedelta(seconds=40 * 212 / 88))
    renderer.send(entry(Notice.POST_REQUEST), bulk(message_ts=None))
    [post] = slack.calls
    assert post["blocks"][0]["type"] == "header" and "300 emails" in post["text"]
    assert records.messages == [(RID, "C0APPROVALS", "1700000001.000001")]
    running = bulk(state=State.EXECUTING, states=ran(212, failed=4, unknown=3), **APPROVED)
    renderer.send(entry(Notice.SHOW), running)
    assert "212 of 300 done: 205 cleared, 4 failed, 3 unknown; about 40 s left" in texts(
        slack.calls[-1]["blocks"]
    )


def test_renderer_replies_once_at_the_end_and_remembers_retry() -> None:
    """REPLY_RESULT of a run that ended with unknown outcomes posts the batch reply in the
    thread, with Retry and Resolved, remembered (to settle them later); DM_OUTCOME tells the
    requester the counts; REPLY_CHECK shows nothing (never offered on a batch)."""
    request = bulk(state=State.UNKNOWN, states=ran(300, failed=2, unknown=3), **APPROVED)
    finish = AuditEntry(RID, T0, "bot", "finish", State.EXECUTING, State.UNKNOWN, {}, id=9)
    records, slack = Records(entries={9: finish}), Messenger()
    renderer = Renderer(records, slack, clock=lambda: T0)
    renderer.send(entry(Notice.REPLY_RESULT, 9), request)
    [reply] = slack.calls
    assert reply["thread_ts"] == request.message_ts
    assert [b["action_id"] for b in actions(reply["blocks"])] == [
        ids.RETRY_ACTION,
        ids.RESOLVE_ACTION,
    ]
    assert records.buttons == [(RID, Surface.RESULT_REPLY, 9)]
    renderer.send(entry(Notice.DM_OUTCOME, 9), request)
    assert (
        slack.calls[-1]["call"] == "dm"
        and "295 cleared, 2 failed, 3 unknown" in (slack.calls[-1]["text"])
    )
    renderer.send(entry(Notice.REPLY_CHECK), request)
    assert len(slack.calls) == 2


def test_renderer_dms_of_a_bulk_request() -> None:
    """DM_POSTED says where the batch went; DM_NOT_POSTED says it could not be posted; a
    rejection's DM_OUTCOME carries the rejecter and note of its audit entry."""
    records, slack = Records(), Messenger()
    renderer = Renderer(records, slack)
    renderer.send(entry(Notice.DM_POSTED), bulk())
    assert (
        "Your bulk request to clear the stuck verification for 300 emails was posted"
        in (slack.calls[-1]["text"])
    )
    not_posted = bulk(
        state=State.EXPIRED,
        message_ts=None,
        outcome=lambda i, s: NotPosted("channel_not_found"),
    )
    renderer.send(entry(Notice.DM_NOT_POSTED), not_posted)
    assert "300 emails" in slack.calls[-1]["text"]
    assert "Slack said channel_not_found" in slack.calls[-1]["text"]
    records.entries[3] = AuditEntry(
        RID, T0, "U0ANA", "reject", State.PENDING, State.REJECTED, {"note": "not now"}, id=3
    )
    renderer.send(entry(Notice.DM_OUTCOME, 3), bulk(state=State.REJECTED))
    assert slack.calls[-1]["text"].endswith("was rejected by <@U0ANA>. Reason: not now")


def test_resend_counts_say_sent() -> None:
    """A resend batch's counts say how many emails were sent, not cleared."""
    request = bulk(
        5,
        state=State.SUCCEEDED,
        operation=Operation.RESEND,
        outcome=lambda i, s: Resent("a@b.example", "2026-11-30T09:00:00Z", "b.example"),
        **APPROVED,
    )
    assert ":white_check_mark: *Done*: all 5 sent" in blocks.batch_state_line(request, 1)
    assert "5 sent" in section_texts(blocks.batch_result_reply(request)[1])[0]
