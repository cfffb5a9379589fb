"""What Slack is told of each change: the one table from the domain's events to notices.

The domain records what happened (an audit entry's :class:`~bot.domain.model.Action`) and
knows nothing of messages, threads or DMs. This module decides what each action tells Slack:
:data:`TOLD` maps every action to the notices it queues. The store writes those notices in the
same transaction as the change and its audit entry (bot/services.py hands it
:func:`notices_for`), so a change and what Slack must hear of it are never half-written; the
outbox (bot/slack/outbox.py) then renders each notice from the stored request and sends it.

Notices wait in one of a request's two lanes: the channel (the request message, its updates and
its thread) and direct messages to the requester. Within a lane they are delivered in order; a
DM Slack keeps refusing never holds up the channel's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from bot.domain.model import Action


class Lane(StrEnum):
    """A request's outbox queues: what is shown in the channel, DMs to the requester, and the
    completion of the Workflow Builder step that made it (never held up by the other two)."""

    CHANNEL = "channel"
    DM = "dm"
    STEP = "step"


class Notice(StrEnum):
    """What Slack must be told after a change; stored in the outbox with it."""

    POST_REQUEST = "post_request"  # the request message in APPROVAL_CHANNEL
    SHOW = "show"  # update the request message to the request's current state
    REPLY_RESULT = "reply_result"  # the provider's answer, in the request's thread
    DM_POSTED = "dm_posted"  # tell the requester where the request went
    DM_OUTCOME = "dm_outcome"  # tell the requester how it ended
    DM_NOT_POSTED = "dm_not_posted"  # tell the requester it could not be posted
    REMIND = "remind"  # remind the approvers, in the request's thread
    # Say, once, in the request's thread that it was escalated: to whom, after how long.
    ESCALATED = "escalated"
    REPLY_CHECK = "reply_check"  # what Check provider read, in the request's thread
    # Rewrite the thread replies whose Check provider / Retry / Resolved can no longer act.
    SETTLE_REPLIES = "settle_replies"
    # Rewrite the requester's DM whose Cancel can no longer act (the request was decided): a
    # DM posted before Cancel moved to the request message; the "posted" DM has none now.
    SETTLE_DM = "settle_dm"
    # Complete the Workflow Builder step that made the request with its outcome, once it is
    # final (nothing for a request a person made, or one whose outcome is unknown yet).
    COMPLETE_STEP = "complete_step"

    @property
    def lane(self) -> Lane:
        if self is Notice.COMPLETE_STEP:
            return Lane.STEP
        return Lane.DM if self in _DM_NOTICES else Lane.CHANNEL


_DM_NOTICES = frozenset(
    {Notice.DM_POSTED, Notice.DM_OUTCOME, Notice.DM_NOT_POSTED, Notice.SETTLE_DM}
)


class Surface(StrEnum):
    """A message the bot posted with buttons that stop acting once the request moves on."""

    CANCEL_DM = "cancel_dm"  # the requester's DM with Cancel (posted before it moved)
    RESULT_REPLY = "result_reply"  # the thread reply on an unknown outcome: Check, Retry, Resolved
    CHECK_REPLY = "check_reply"  # the thread reply to Check provider, with the same buttons


# A decision or an outcome that ends something: the thread hears it, the message shows it, the
# buttons it leaves with nothing to act on are settled, and the requester hears how it ended.
_DECIDED = (
    Notice.REPLY_RESULT,
    Notice.SHOW,
    Notice.SETTLE_REPLIES,
    Notice.DM_OUTCOME,
    Notice.SETTLE_DM,
    Notice.COMPLETE_STEP,
)
# A pending request closed without a call (rejected, expired): no thread reply.
_CLOSED = (Notice.SHOW, Notice.DM_OUTCOME, Notice.SETTLE_DM, Notice.COMPLETE_STEP)

TOLD: Mapping[Action, tuple[Notice, ...]] = MappingProxyType(
    {
        Action.CREATE: (Notice.POST_REQUEST, Notice.DM_POSTED),
        Action.APPROVAL: (Notice.SHOW,),
        # A claim's "calling the provider…": held by the domain for INTERIM_AFTER, superseded
        # by the outcome's own update when that comes first.
        Action.APPROVE: (Notice.SHOW,),
        Action.RETRY: (Notice.SHOW,),
        Action.REJECT: _CLOSED,
        Action.EXPIRE: _CLOSED,
        Action.PROVIDER_SUCCESS: _DECIDED,
        Action.PROVIDER_ERROR: _DECIDED,
        Action.INTERRUPTED: _DECIDED,
        Action.RESOLVE: _DECIDED,
        Action.POST_FAILED: (Notice.DM_NOT_POSTED, Notice.COMPLETE_STEP),
        Action.CANCEL: (Notice.SHOW, Notice.SETTLE_DM, Notice.COMPLETE_STEP),
        Action.REMIND: (Notice.REMIND,),
        # Still pending: the thread says once who may approve it too; the message shows it.
        Action.ESCALATE: (Notice.ESCALATED, Notice.SHOW),
        # A resend the provider cannot do, closed before approval: as a rejection is.
        Action.NOT_RESENDABLE: _CLOSED,
        # The provider's view beside a pending request (only while it is pending: the store
        # audits a later reading without telling anyone).
        Action.LOOKUP: (Notice.SHOW,),
        Action.CHECK: (Notice.REPLY_CHECK, Notice.SHOW),
        # Shown with the outcome whose notices waited for it.
        Action.READBACK: (),
        Action.LATE_ANSWER: (),
        Action.DELIVERY_GIVEN_UP: (),
        # Bulk requests only (TOLD_BULK says what they tell).
        Action.RUN: (),
        Action.THROTTLED: (),
        Action.STOP: (Notice.SHOW,),
        Action.FINISH: _DECIDED,
        Action.PROGRESS: (Notice.SHOW,),
    }
)

# A bulk request tells Slack of its run, not of each item: an item's claim and outcome queue
# nothing (the runner shows progress, at most every BULK_PROGRESS_EVERY seconds); the change that
# ends its last running item also records FINISH, whose notices say how the whole run ended (one
# thread reply with the counts). Every other action tells what it tells of a single request.
TOLD_BULK: Mapping[Action, tuple[Notice, ...]] = MappingProxyType(
    dict(TOLD)
    | {
        Action.APPROVE: (Notice.SHOW,),
        Action.RUN: (),
        Action.PROVIDER_SUCCESS: (),
        Action.PROVIDER_ERROR: (),
        Action.INTERRUPTED: (),
        Action.THROTTLED: (),
        # Queued again (Retry) or closed (Resolved) together: the message shows it at once; how
        # the run ends is FINISH's to tell.
        Action.RETRY: (Notice.SHOW, Notice.SETTLE_REPLIES),
        Action.RESOLVE: (Notice.SHOW,),
    }
)


def notices_for(action: Action, bulk: bool = False) -> tuple[tuple[str, str], ...]:
    """What the store queues for a change of ``action`` (of a bulk request, with ``bulk``):
    (notice, lane) pairs, in order."""
    table = TOLD_BULK if bulk else TOLD
    return tuple((notice.value, notice.lane.value) for notice in table[Action(action)])


# Every kind an outbox entry can have (the metrics count give-ups by kind from 0).
KINDS = tuple(notice.value for notice in Notice)
