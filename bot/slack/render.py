"""How each notice is told: one function per notice, over three primitives (post, update, DM).

The outbox (bot/slack/outbox.py) hands each due entry here; :class:`Renderer` looks the entry's
kind up in its table and sends it, rendering the content from the request's stored state at
delivery time (a late delivery never shows a stale state; a thread reply or DM describes the
change that queued it, from that change's audit entry). The Block Kit comes from the pure
builders in bot/slack/blocks/; the three primitives are the :class:`Messenger`'s
(bot/slack/notifier.py is the real one). A failure raises DeliveryError; the outbox retries.

Messages with buttons that stop acting once the request moves on (the thread replies with
Check provider / Retry / Resolved; the requester's DM with Cancel, from before Cancel moved to
the request message) are remembered where Slack put them, and rewritten to say what happened
instead when a later change queues ``SETTLE_REPLIES`` / ``SETTLE_DM``.

An update is not sent when nothing it would show has changed: one a later queued update
supersedes, and the first after the post when it renders just what the post showed (the
lookup's, usually: a new request's message waits for the provider's view to be posted with it).

A bulk request (``request.bulk``: many emails, whose ``email`` and ``outcome`` raise) is shown
by the ``batch_*`` builders: its message with live progress (the time left by this renderer's
clock), one thread reply with the counts when its run finishes, short DMs; no provider check.

(Just over 500 lines: the table and its one function per notice read best together, and each
function is a few lines over the builders; the wording itself is all in bot/slack/blocks/.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from bot.domain.model import (
    DESCRIBED_STATES,
    HISTORY_DAYS,
    HISTORY_SHOWN,
    PROVIDER_ACTIONS,
    Action,
    AuditEntry,
    History,
    State,
    VerificationRequest,
    utcnow,
)
from bot.domain.outcomes import NotPosted, outcome_from_dict
from bot.domain.ports import OutboxEntry, PostedButtons
from bot.domain.views import DomainReading, view_from_dict
from bot.slack import blocks, step
from bot.slack.notices import Notice, Surface
from bot.slack.notifier import REQUEST_EVENT, DeliveryError, Posted

log = logging.getLogger(__name__)

# The surfaces whose buttons act on an unknown outcome (Check provider, Retry, Resolved).
_UNKNOWN_SURFACES = frozenset({Surface.RESULT_REPLY, Surface.CHECK_REPLY})

POSTS_KEPT = 1024  # request messages whose posted rendering is kept (the newest), until updated


class Messenger(Protocol):
    """The three things the bot does with Slack messages, and one lookup; each raises
    DeliveryError (``what`` names the attempt in that error)."""

    channel: str

    def post(
        self,
        what: str,
        channel: str,
        text: str,
        message_blocks: blocks.Blocks | None = None,
        *,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Posted: ...

    def update(
        self,
        what: str,
        channel: str,
        ts: str,
        text: str,
        message_blocks: blocks.Blocks | None = None,
    ) -> None: ...

    def dm(
        self, user_id: str, text: str, message_blocks: blocks.Blocks | None = None
    ) -> Posted: ...

    def find_request_message(self, request: VerificationRequest) -> Posted | None: ...

    def permalink(self, request: VerificationRequest) -> str | None: ...

    def complete_step(self, execution_id: str, outputs: dict[str, Any]) -> bool: ...


class Records(Protocol):
    """What rendering reads and writes in the store besides the outbox queue itself."""

    def audit_entry(self, entry_id: int) -> AuditEntry | None: ...

    def audit_log(self, request_id: str) -> list[AuditEntry]: ...

    def requests_about(
        self, email: str, domain: str | None = None, *, since: datetime, limit: int = 20
    ) -> list[VerificationRequest]: ...

    def set_message(self, request_id: str, channel: str, message_ts: str) -> None: ...

    def record_buttons(
        self,
        request_id: str,
        surface: str,
        channel: str,
        ts: str,
        *,
        audit_id: int | None,
        now: datetime,
    ) -> None: ...

    def live_buttons(self, request_id: str) -> list[PostedButtons]: ...

    def settle_buttons(self, buttons_id: int, *, now: datetime) -> None: ...

    def outbox_entries(self, request_id: str | None = None) -> list[OutboxEntry]: ...


Send = Callable[[OutboxEntry, VerificationRequest], None]


class Renderer:
    """Sends one outbox entry: its notice's function from :attr:`table`."""

    def __init__(
        self,
        records: Records,
        messenger: Messenger,
        *,
        approvals_required: int = 1,
        approvers: Sequence[str] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``approvals_required`` (APPROVALS_REQUIRED) is shown on requests that need more
        than one; ``approvers`` (APPROVERS) are mentioned by reminders."""
        self.records = records
        self.messenger = messenger
        self.approvals_required = approvals_required
        self.approvers = tuple(approvers)
        self.clock = clock
        # What each request message this process posted showed (a digest), by request id.
        self._posted: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._posted_lock = threading.Lock()
        self.table: Mapping[Notice, Send] = MappingProxyType(
            {
                Notice.POST_REQUEST: self._post_request,
                Notice.SHOW: self._show,
                Notice.REPLY_RESULT: self._reply_result,
                Notice.REPLY_CHECK: self._reply_check,
                Notice.DM_POSTED: self._dm_posted,
                Notice.DM_OUTCOME: self._dm_outcome,
                Notice.REMIND: self._remind,
                Notice.ESCALATED: self._escalated,
                Notice.DM_NOT_POSTED: self._dm_not_posted,
                Notice.SETTLE_REPLIES: self._settle_replies,
                Notice.SETTLE_DM: self._settle_dm,
                Notice.COMPLETE_STEP: self._complete_step,
            }
        )

    def send(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        try:
            send = self.table[Notice(entry.kind)]
        except ValueError:
            raise DeliveryError(entry.kind, "unknown kind of delivery", permanent=True) from None
        send(entry, request)

    # -- the Workflow Builder step that made it --------------------------------------------------

    def _complete_step(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        """Complete the step run that made the request, once the request is final: with the
        request as it stands (a later decision than the one that queued this, if any: the same
        end); nothing for a request a person made, or one whose outcome is unknown (a Retry or
        Resolved completes it). Slack takes one completion a run: a second is told it ended."""
        run = request.workflow
        if run is None or request.state not in step.COMPLETING_STATES:
            return
        outputs = step.outputs_of(
            request, self.records.audit_log(request.id), self.messenger.permalink(request)
        )
        if self.messenger.complete_step(run.execution_id, outputs):
            log.info(
                "Request %s: step run %s completed (%s)",
                request.id,
                run.execution_id,
                request.state.value,
            )

    # -- the request message -------------------------------------------------------------------

    def _post_request(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        if request.message_ts:
            return  # posted already (a delivery whose completion was lost): never twice
        if entry.tried and self._adopt_copy(request):
            return  # Slack had posted it; its answer was lost
        text, message_blocks = self._request_message(request)
        posted = self.messenger.post(
            f"post request {request.id}",
            self.messenger.channel,
            text,
            message_blocks,
            metadata={"event_type": REQUEST_EVENT, "event_payload": {"request_id": request.id}},
        )
        if not (posted.channel and posted.ts):  # Slack's answer is not what it documents
            raise DeliveryError(
                f"post request {request.id}", "Slack did not say where it went", permanent=False
            )
        self.records.set_message(request.id, posted.channel, posted.ts)
        with self._posted_lock:
            self._posted[request.id] = (request.version, _digest(text, message_blocks))
            if len(self._posted) > POSTS_KEPT:
                self._posted.popitem(last=False)

    def _show(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        if self._superseded(request.id):
            return  # a later update is queued: it shows the same (current) state
        shown = self._request_message(request)
        if self._as_posted(request, *shown):
            return  # the message shows this already: it was posted so
        self._update_message(request, shown)

    def _as_posted(
        self, request: VerificationRequest, text: str, message_blocks: blocks.Blocks
    ) -> bool:
        """True when the first update since this process posted the message would show just
        what the post did, the request unchanged since (the same version: nobody can have
        updated the message to anything else meanwhile). A request changed since may render
        as it was posted again (unknown, Retry, unknown once more) while another replica's
        update showed it between: that update is sent."""
        with self._posted_lock:
            posted = self._posted.pop(request.id, None)
        return posted is not None and posted == (request.version, _digest(text, message_blocks))

    def _update_message(
        self, request: VerificationRequest, shown: tuple[str, blocks.Blocks] | None = None
    ) -> None:
        """Update the request message to the request's current state (``shown``: rendered)."""
        if not (request.channel and request.message_ts):
            raise DeliveryError(f"update request {request.id}", "it has no message", permanent=True)
        text, message_blocks = shown or self._request_message(request)
        self.messenger.update(
            f"update the message of request {request.id}",
            request.channel,
            request.message_ts,
            text,
            message_blocks,
        )

    def _request_message(self, request: VerificationRequest) -> tuple[str, blocks.Blocks]:
        if blocks.shown_as_batch(request):  # its progress, and the time left as of now
            return blocks.batch_message(request, self.approvals_required, self.clock())
        return blocks.request_message(request, self.approvals_required, self._history(request))

    def _adopt_copy(self, request: VerificationRequest) -> bool:
        """Look for a copy of the request message Slack already holds (an earlier post whose
        answer was lost); if there is one, record it as the request's message and bring it up
        to date instead of posting again. False when there is none (or history is not ours to
        read), so the caller posts."""
        found = self.messenger.find_request_message(request)
        if found is None:
            return False
        log.warning(
            "Request %s was already posted (message %s; Slack's answer was lost): updating "
            "that message instead of posting a second one",
            request.id,
            found.ts,
        )
        self.records.set_message(request.id, found.channel, found.ts)
        self._update_message(replace(request, channel=found.channel, message_ts=found.ts))
        return True

    def _superseded(self, request_id: str) -> bool:
        """True when more than one message update is queued for the request (this one and a
        later one): both would render the same current state, so one call is enough."""
        queued = self.records.outbox_entries(request_id)
        return sum(1 for e in queued if e.kind == Notice.SHOW) > 1

    def _history(self, request: VerificationRequest) -> History:
        """What the store knows of earlier requests for the same email or domain, as of now:
        the newest HISTORY_SHOWN, and whether there were more (so no count is silently cut)."""
        since = self.clock() - timedelta(days=HISTORY_DAYS)
        limit = HISTORY_SHOWN + 1
        while True:
            found = self.records.requests_about(
                request.email, request.domain, since=since, limit=limit
            )
            # Newer requests (for the same domain) take places too: look further until one more
            # than is shown is found, or there is nothing left to find.
            earlier = [r for r in found if r.id != request.id and r.created_at < request.created_at]
            if len(found) < limit or len(earlier) > HISTORY_SHOWN:
                break
            limit *= 4
        return History(
            request.email,
            request.domain,
            HISTORY_DAYS,
            tuple(earlier[:HISTORY_SHOWN]),
            more=len(earlier) > HISTORY_SHOWN,
        )

    # -- the thread ----------------------------------------------------------------------------

    def _reply(self, what: str, request: VerificationRequest, text: str, **kw: Any) -> Posted:
        """Post in the request's thread."""
        if not request.message_ts:
            raise DeliveryError(what, "it has no message", permanent=True)
        return self.messenger.post(
            what,
            request.channel or self.messenger.channel,
            text,
            kw.get("message_blocks"),
            thread_ts=request.message_ts,
        )

    def _reply_result(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        described = self._as_of(entry.audit_id, request)
        if blocks.shown_as_batch(request):  # the run's one reply: counts, failed and unknown
            text, reply_blocks = blocks.batch_result_reply(described)
        else:
            text, reply_blocks = blocks.result_reply(described)
        if not described.message_ts:
            raise DeliveryError(
                f"reply about request {request.id}", "it has no message", permanent=True
            )
        posted = self._reply(
            f"reply in the thread of request {request.id}",
            described,
            text,
            message_blocks=reply_blocks,
        )
        # It offers Check provider, Retry, Resolved (a batch's: Retry, Resolved).
        if described.state is State.UNKNOWN:
            self._remember(request, Surface.RESULT_REPLY, posted, entry.audit_id)

    def _reply_check(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        if blocks.shown_as_batch(request):
            # Never offered on a batch (one domain's reading cannot speak for its emails).
            log.warning("No provider check to show for bulk request %s", request.id)
            return
        event = self.records.audit_entry(entry.audit_id) if entry.audit_id is not None else None
        reading = request.readback
        if event is not None and isinstance(event.details.get("reading"), dict):
            reading = view_from_dict(event.details["reading"])  # what that click read
        if reading is None:
            raise DeliveryError(entry.kind, "there is no reading to show", permanent=True)
        by = event.actor if event is not None else "an approver"
        if not request.message_ts:
            raise DeliveryError(
                f"reply about request {request.id}", "it has no message", permanent=True
            )
        text, reply_blocks = blocks.check_reply(request, reading, by)
        posted = self._reply(
            f"reply with a provider check in the thread of request {request.id}",
            request,
            text,
            message_blocks=reply_blocks,
        )
        if request.state is State.UNKNOWN:  # it offers Check provider, Retry, Resolved
            self._remember(request, Surface.CHECK_REPLY, posted, entry.audit_id)

    def _remind(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        if request.state is not State.PENDING or request.is_expired(self.clock()):
            return  # never once it is decided (or past its time)
        if not request.message_ts:
            raise DeliveryError(
                f"remind about request {request.id}", "it has no message", permanent=True
            )
        self._reply(
            f"remind about request {request.id}",
            request,
            blocks.reminder_reply(request, self.approvers, self.approvals_required),
        )

    def _escalated(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        if request.state is not State.PENDING or request.is_expired(self.clock()):
            return  # decided (or past its time) before this was told: nothing to approve
        event = self.records.audit_entry(entry.audit_id) if entry.audit_id is not None else None
        after = event.details.get("after_seconds") if event is not None else None
        text = blocks.escalation_reply(request, after if isinstance(after, int | float) else None)
        self._reply(f"tell of the escalation of request {request.id}", request, text)

    # -- the requester's DMs -------------------------------------------------------------------

    def _dm_posted(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        if not request.message_ts:
            # DMs have their own lane: the post may simply not have gone out yet.
            still_posting = request.state is State.PENDING
            raise DeliveryError(
                entry.kind,
                "the request message is not posted yet"
                if still_posting
                else "the request was never posted",
                permanent=not still_posting,
            )
        if blocks.shown_as_batch(request):
            text, dm_blocks = blocks.batch_submitted_dm(request, self.messenger.channel)
        else:
            text, dm_blocks = blocks.submitted_dm(request, self.messenger.channel)
        self.messenger.dm(request.requester, text, dm_blocks)  # no button: never settled

    def _dm_outcome(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        decided = self._as_of(entry.audit_id, request)
        if blocks.shown_as_batch(request):  # counts, and the thread for the details
            text = blocks.batch_outcome_dm(decided, self.messenger.channel)
        else:
            text = blocks.outcome_dm(decided, self.messenger.channel)
        self.messenger.dm(request.requester, text)

    def _dm_not_posted(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        outcome = request.items[0].outcome  # a batch's items all close with its request
        reason = outcome.message if isinstance(outcome, NotPosted) else "Slack refused it"
        self.messenger.dm(
            request.requester, blocks.not_posted_dm(request, self.messenger.channel, reason)
        )

    # -- buttons that can no longer act --------------------------------------------------------

    def _settle_replies(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        self._settle(request, _UNKNOWN_SURFACES)

    def _settle_dm(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        self._settle(request, frozenset({Surface.CANCEL_DM}))

    def _remember(
        self, request: VerificationRequest, surface: Surface, posted: Posted, audit_id: int | None
    ) -> None:
        """Keep where a message with buttons went, to take them away once they cannot act."""
        if not (posted.channel and posted.ts):
            log.warning("Slack did not say where the %s of request %s went", surface, request.id)
            return
        self.records.record_buttons(
            request.id, surface, posted.channel, posted.ts, audit_id=audit_id, now=self.clock()
        )

    def _settle(self, request: VerificationRequest, surfaces: frozenset[Surface]) -> None:
        """Rewrite each of the request's messages (of ``surfaces``) whose buttons can no longer
        act, saying what happened instead. Cancel acts only while the request is pending; Check
        provider, Retry and Resolved only on the request's current unknown outcome (those
        offered on an earlier one, which a Retry ended, no longer do)."""
        live = [b for b in self.records.live_buttons(request.id) if Surface(b.surface) in surfaces]
        if not live:
            return
        trail = self.records.audit_log(request.id) if surfaces & _UNKNOWN_SURFACES else []
        # The audit entry that made the current unknown outcome (None: it is not unknown now).
        current = None
        if request.state is State.UNKNOWN:
            current = max(
                (
                    e.id
                    for e in trail
                    if e.id is not None
                    and e.to_state is State.UNKNOWN
                    and e.from_state is State.EXECUTING
                ),
                default=None,
            )
        for buttons in live:
            if buttons.surface == Surface.CANCEL_DM:
                if request.state is State.PENDING:
                    continue  # Cancel still acts
                text, new_blocks = blocks.settled_dm(request, self.messenger.channel)
            else:
                if current is not None and (buttons.audit_id or 0) >= current:
                    continue  # offered on the current unknown outcome: they still act
                text, new_blocks = self._settled_reply(request, buttons, trail)
            try:
                self.messenger.update(
                    f"update message {buttons.ts} in {buttons.channel}",
                    buttons.channel,
                    buttons.ts,
                    text,
                    new_blocks,
                )
            except DeliveryError as exc:
                if not exc.permanent:
                    raise  # Slack's trouble: the whole notice is tried again later
                # Deleted, say: nothing left to rewrite; the others are still settled.
                log.warning(
                    "Could not rewrite the %s of request %s: %s",
                    buttons.surface,
                    request.id,
                    exc.reason,
                )
            self.records.settle_buttons(buttons.id, now=self.clock())

    def _settled_reply(
        self, request: VerificationRequest, buttons: PostedButtons, trail: list[AuditEntry]
    ) -> tuple[str, blocks.Blocks]:
        """A thread reply as it was posted, without Check provider / Retry / Resolved, and a
        line saying who decided what instead (the first Retry or Resolve after it)."""
        after = next(
            (
                e
                for e in trail
                if (e.id or 0) > (buttons.audit_id or 0)
                and e.action in (Action.RETRY, Action.RESOLVE)
            ),
            None,
        )
        note = blocks.moved_on_note(after.action if after else None, after.actor if after else None)
        if blocks.shown_as_batch(request):  # its items as they are now: Retry queued some again
            return blocks.batch_result_reply(
                self._as_of(buttons.audit_id, request), retry=False, note=note
            )
        if buttons.surface == Surface.CHECK_REPLY:
            event = next((e for e in trail if e.id == buttons.audit_id), None)
            reading: DomainReading | None = request.readback
            if event is not None and isinstance(event.details.get("reading"), dict):
                reading = view_from_dict(event.details["reading"])
            if reading is not None:
                by = event.actor if event is not None else "an approver"
                return blocks.check_reply(request, reading, by, offer=False, note=note)
        described = self._as_of(buttons.audit_id, request)
        return blocks.result_reply(described, retry=False, note=note)

    # -- the change a notice describes ---------------------------------------------------------

    def _as_of(self, audit_id: int | None, request: VerificationRequest) -> VerificationRequest:
        """The request as the change of audit entry ``audit_id`` left it.

        A thread reply or DM describes one change: if it is delivered late (after a Retry has
        moved the request on), it must still say what that change did. The entry names the
        change's audit entry, which holds its details. A bulk request's items are as they are
        now (its audit entries are per item); the request's state, deciders and note are the
        change's.
        """
        event = self.records.audit_entry(audit_id) if audit_id is not None else None
        if event is None or event.to_state not in DESCRIBED_STATES:
            return request
        if blocks.shown_as_batch(request):
            note = (
                event.details.get("note")
                if event.action in (Action.REJECT, Action.RESOLVE)
                else None
            )
            return replace(
                request,
                state=event.to_state,
                decided_by=request.decided_by if event.actor == "bot" else event.actor,
                decision_note=note or request.decision_note,
            )
        outcome = (
            outcome_from_dict(event.details)
            if event.action in PROVIDER_ACTIONS
            else request.outcome
        )
        note = (
            event.details.get("note") if event.action in (Action.REJECT, Action.RESOLVE) else None
        )
        readback = request.readback
        if event.action in PROVIDER_ACTIONS and isinstance(event.details.get("readback"), dict):
            readback = view_from_dict(event.details["readback"])
        return replace(
            request.with_item(state=event.to_state, outcome=outcome, readback=readback),
            state=event.to_state,
            decided_by=request.decided_by if event.actor == "bot" else event.actor,
            decision_note=note or request.decision_note,
        )


def _digest(text: str, message_blocks: blocks.Blocks) -> str:
    """What a message shows, in a few bytes: equal digests, equal messages."""
    return hashlib.sha256(json.dumps([text, message_blocks], sort_keys=True).encode()).hexdigest()
