"""The edge's one table from the domain's actions to what Slack is told, and its renderers."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from doubles import make_request

from bot.domain.model import Action, AuditEntry, RuleTerms, State
from bot.domain.ports import OutboxEntry
from bot.slack.notices import KINDS, TOLD, Lane, Notice, notices_for
from bot.slack.render import Renderer


def test_every_action_says_what_slack_is_told() -> None:
    """Each action the domain can record has an entry (perhaps nothing): a new action without
    one fails here, not silently at delivery."""
    assert set(TOLD) == set(Action)


def test_every_notice_has_a_renderer_and_is_told_by_some_action() -> None:
    """The outbox can send every kind the table queues, and no kind is dead."""
    renderer = Renderer(records=None, messenger=None)  # type: ignore[arg-type]  # table only
    assert set(renderer.table) == set(Notice)
    assert {n for told in TOLD.values() for n in told} == set(Notice)
    assert set(KINDS) == {n.value for n in Notice}


def test_direct_messages_wait_in_their_own_lane() -> None:
    """What goes to the requester's DMs queues apart from the channel, so a refused DM never
    holds the channel's record up; the store is handed (kind, lane) pairs in order."""
    assert notices_for(Action.CREATE) == (("post_request", "channel"), ("dm_posted", "dm"))
    dm = {n for n in Notice if n.lane is Lane.DM}
    assert dm == {Notice.DM_POSTED, Notice.DM_OUTCOME, Notice.DM_NOT_POSTED, Notice.SETTLE_DM}


def test_what_a_decision_tells() -> None:
    """A final outcome tells the thread, the message, the requester, settles the buttons and
    completes the Workflow Builder step that made it (in its own lane; nothing for a request a
    person made); closing a pending request has no thread reply; a reading after a call tells
    nothing of its own (it releases what the outcome held)."""
    decided = (
        Notice.REPLY_RESULT,
        Notice.SHOW,
        Notice.SETTLE_REPLIES,
        Notice.DM_OUTCOME,
        Notice.SETTLE_DM,
        Notice.COMPLETE_STEP,
    )
    for action in (Action.PROVIDER_SUCCESS, Action.PROVIDER_ERROR, Action.INTERRUPTED):
        assert TOLD[action] == decided
    assert (
        TOLD[Action.REJECT]
        == TOLD[Action.EXPIRE]
        == (
            Notice.SHOW,
            Notice.DM_OUTCOME,
            Notice.SETTLE_DM,
            Notice.COMPLETE_STEP,
        )
    )
    assert Notice.COMPLETE_STEP.lane is Lane.STEP
    assert (
        Notice.COMPLETE_STEP in TOLD[Action.CANCEL] and Notice.COMPLETE_STEP in TOLD[Action.RESOLVE]
    )
    assert TOLD[Action.READBACK] == TOLD[Action.LATE_ANSWER] == ()


def test_an_escalation_is_told_once_in_the_thread_and_a_refused_resend_as_a_closing() -> None:
    """ESCALATE (the request stays pending): a notice in the thread, then the message shown
    again; NOT_RESENDABLE (closed before approval, no provider call): as a rejection, no
    thread reply."""
    assert TOLD[Action.ESCALATE] == (Notice.ESCALATED, Notice.SHOW)
    assert Notice.ESCALATED.lane is Lane.CHANNEL
    assert TOLD[Action.NOT_RESENDABLE] == TOLD[Action.REJECT]
    assert Notice.REPLY_RESULT not in TOLD[Action.NOT_RESENDABLE]


def test_the_escalation_notice_is_one_thread_reply_naming_whom_while_pending() -> None:
    """ESCALATED posts one reply in the request's thread: how long it waited (the audit
    entry's), to whom it was escalated; a request decided before it is told gets nothing."""
    now = datetime.now(UTC)
    rule = RuleTerms("vip", "0123456789ab", ("S0SENIOR",), 2, 0.0, 1800.0, ("U0BOSS",))
    waiting = make_request(
        created_at=now, rule=rule, escalated_at=now, channel="C1", message_ts="1.1"
    )
    event = AuditEntry(
        waiting.id,
        now,
        "bot",
        "escalate",
        State.PENDING,
        State.PENDING,
        {"after_seconds": 2700.0},
        id=7,
    )
    posts: list[dict[str, Any]] = []
    records = SimpleNamespace(audit_entry=lambda entry_id: event if entry_id == 7 else None)
    messenger = SimpleNamespace(
        channel="C1",
        post=lambda what, channel, text, blocks=None, **kw: posts.append(
            {"channel": channel, "text": text, **kw}
        ),
    )
    renderer = Renderer(records, messenger)  # (SimpleNamespace: only what it reads)
    entry = OutboxEntry(1, waiting.id, Notice.ESCALATED, "channel", 0, now, now, audit_id=7)
    renderer.send(entry, waiting)
    [post] = posts
    assert post["thread_ts"] == "1.1" and post["channel"] == "C1"
    assert post["text"].startswith(":arrow_double_up: Waiting 45 min: escalated to <@U0BOSS>")
    renderer.send(entry, make_request(created_at=now, rule=rule, state=State.SUCCEEDED))
    assert len(posts) == 1
