"""The outbox: what the bot must tell Slack is stored with the change that caused it, then sent.

A provider result is never lost because Slack was down when it arrived. Each state change that
Slack should hear about stores outbox entries in the same transaction (see the store's
``transition`` and ``create``), each linked to the audit entry of that change. The service
delivers them at once; whatever could not be delivered is retried with backoff by the
maintenance loop (``bot.maintenance``), in this process or any other replica, and after a
restart.

Entries name *what* to tell (a kind); the content is rendered from the request's stored state
at delivery time, so a late delivery never shows a stale state (a thread reply or DM describes
the change that queued it, from that change's audit entry). Each request has two lanes, the
channel (its message, updates and thread) and direct messages to the requester: within a lane
entries are delivered strictly in order, and a DM Slack keeps refusing never holds up the
channel. A lease, unique to each claim, keeps two deliverers from sending the same entry.

Slack's own trouble (an outage, rate limits, a lost answer) is retried with exponential backoff
capped at MAX_BACKOFF (15 minutes) for GIVE_UP_AFTER (7 days) from when the entry was queued,
whatever the number of attempts; a person's mistake (a refusal that asking again cannot change:
``not_in_channel``, ``invalid_auth``, …) is given up on at once. Each give-up is audited on the
request (``delivery_given_up``, with the notice and Slack's error) and counted in /metrics.

The outbox changes no request's state: when Slack will never take a request's message (refused
for good, or not taken for GIVE_UP_AFTER), it hands the request to ``on_unpostable`` (the
service closes it, if it is still pending, and tells the requester). Until then a request
whose message is not posted yet stays pending (and expires at REQUEST_TTL as any other).

A request message carries message metadata naming its request. When its post may already have
gone out (an earlier attempt got no answer, or its claimer died mid-call), the channel's history
is read first and a copy found there is adopted and updated instead of posting a second one
(with the channels:history / groups:history scope; without it, the post is made again).

Messages with buttons that stop acting once the request moves on (the requester's DM with
Cancel, the thread replies with Check provider / Retry / Resolved) are remembered where Slack
put them, and rewritten to say what happened instead when a later change queues
``SETTLE_DM`` / ``SETTLE_REPLIES``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.model import (
    DESCRIBED_STATES,
    HISTORY_DAYS,
    HISTORY_SHOWN,
    PROVIDER_ACTIONS,
    Action,
    AuditEntry,
    History,
    Notice,
    OutboxEntry,
    PostedButtons,
    State,
    Surface,
    VerificationRequest,
    utcnow,
)
from bot.domain.outcomes import NotPosted, outcome_from_dict
from bot.domain.views import DomainReading, view_from_dict
from bot.slack import blocks
from bot.slack.notifier import DeliveryError, Posted

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # longer than a Slack call with the SDK's rate-limit retries
# Slack's own trouble is retried this long after the entry was queued (the age alert on the
# outbox fires long before), then given up on: about 680 attempts at the capped backoff.
GIVE_UP_AFTER = timedelta(days=7)
MAX_BACKOFF = 900.0  # seconds: 1 s, 2 s, 4 s … 15 min
# The surfaces whose buttons act on an unknown outcome (Check provider, Retry, Resolved).
_UNKNOWN_SURFACES = frozenset({Surface.RESULT_REPLY, Surface.CHECK_REPLY})


class OutboxQueue(Protocol):
    """What the outbox needs of the store: its queue, and the requests the entries are about."""

    def get(self, request_id: str) -> VerificationRequest | None: ...

    def audit_entry(self, entry_id: int) -> AuditEntry | None: ...

    def requests_about(
        self, email: str, domain: str | None = None, *, since: datetime, limit: int = 20
    ) -> list[VerificationRequest]: ...

    def set_message(self, request_id: str, channel: str, message_ts: str) -> None: ...

    def claim_outbox(
        self,
        *,
        now: datetime,
        owner: str,
        lease_seconds: float,
        limit: int = 50,
        request_id: str | None = None,
    ) -> list[OutboxEntry]: ...

    def complete_outbox(self, entry_id: int, owner: str, *, now: datetime) -> None: ...

    def retry_outbox(
        self, entry_id: int, owner: str, *, error: str, next_attempt_at: datetime
    ) -> None: ...

    def bury_outbox(self, entry_id: int, owner: str, *, error: str, now: datetime) -> None: ...

    def give_up_outbox(
        self, entry_id: int, owner: str, *, error: str, now: datetime, details: dict[str, Any]
    ) -> bool: ...

    def audit_log(self, request_id: str) -> list[AuditEntry]: ...

    def record_buttons(
        self,
        request_id: str,
        surface: Surface,
        channel: str,
        ts: str,
        *,
        audit_id: int | None,
        now: datetime,
    ) -> None: ...

    def live_buttons(self, request_id: str) -> list[PostedButtons]: ...

    def settle_buttons(self, buttons_id: int, *, now: datetime) -> None: ...

    def outbox_entries(self, request_id: str | None = None) -> list[OutboxEntry]: ...


class Messenger(Protocol):
    """What the outbox needs of Slack (bot.slack.notifier.Notifier); each call raises
    DeliveryError."""

    channel: str

    def post_request(
        self, request: VerificationRequest, history: History | None = None
    ) -> Posted: ...

    def find_request_message(self, request: VerificationRequest) -> Posted | None: ...

    def show(self, request: VerificationRequest, history: History | None = None) -> None: ...

    def reply_result(self, request: VerificationRequest) -> Posted: ...

    def reply_check(
        self, request: VerificationRequest, reading: DomainReading, by: str
    ) -> Posted: ...

    def remind(self, request: VerificationRequest) -> None: ...

    def dm(
        self, user_id: str, text: str, message_blocks: blocks.Blocks | None = None
    ) -> Posted: ...

    def rewrite(self, channel: str, ts: str, text: str, message_blocks: blocks.Blocks) -> None: ...


def backoff(attempts: int) -> timedelta:
    """Wait before the next try, after ``attempts`` failed ones: 1 s, 2 s, 4 s … 15 min."""
    return timedelta(seconds=min(MAX_BACKOFF, 2.0 ** min(max(0, attempts), 32)))


def default_owner() -> str:
    """Who holds a lease: unique per process, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Outbox:
    def __init__(
        self,
        queue: OutboxQueue,
        notifier: Messenger,
        *,
        on_unpostable: Callable[[str, str], object] | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        """``on_unpostable(request_id, slack_error)`` is called when Slack will never take a
        pending request's message (the service closes the request)."""
        self.queue = queue
        self.notifier = notifier
        self.on_unpostable = on_unpostable
        self.clock = clock
        self.owner = owner or default_owner()

    def deliver(self, request_id: str) -> None:
        """Deliver what is due for one request now, in order within each lane, stopping in a
        lane at the first entry that fails."""
        while True:
            owner = self._claimant()
            # At most one head per lane (channel, DMs): both are ours under this claim.
            entries = self.queue.claim_outbox(
                now=self.clock(),
                owner=owner,
                lease_seconds=LEASE_SECONDS,
                limit=2,
                request_id=request_id,
            )
            finished = [self._deliver_one(entry, owner) for entry in entries]
            if not any(finished):
                return

    def deliver_due(self, limit: int = 100) -> int:
        """Deliver what is due for every request; returns how many entries it finished with.

        Claims one entry at a time, right before sending it, so no lease can run out on an
        entry still waiting its turn in a long backlog (another replica would send it too).
        """
        done = 0
        for _ in range(limit):
            owner = self._claimant()
            entries = self.queue.claim_outbox(
                now=self.clock(), owner=owner, lease_seconds=LEASE_SECONDS, limit=1
            )
            if not entries:
                break
            if self._deliver_one(entries[0], owner):
                done += 1
                # What waited behind it in that request's queue is now at the head.
                self.deliver(entries[0].request_id)
        return done

    def _claimant(self) -> str:
        """A lease holder unique to one claim: threads of one process never share a lease."""
        return f"{self.owner}:{uuid.uuid4().hex[:8]}"

    def _deliver_one(self, entry: OutboxEntry, owner: str) -> bool:
        """Deliver one claimed entry. True when it is finished with (sent or given up on)."""
        request = self.queue.get(entry.request_id)
        try:
            if request is None:
                raise DeliveryError(entry.kind, "the request is gone", permanent=True)
            self._send(entry, request)
        except DeliveryError as exc:
            attempts = entry.attempts + 1
            now = self.clock()
            horizon = entry.created_at + GIVE_UP_AFTER
            if exc.permanent or now >= horizon:
                log.error(
                    "Giving up on %s for request %s after %d attempt(s) over %s: %s",
                    entry.kind,
                    entry.request_id,
                    attempts,
                    now - entry.created_at,
                    exc.reason,
                )
                if request is None:
                    self.queue.bury_outbox(entry.id, owner, error=exc.reason, now=now)
                    return True
                why = "refused" if exc.permanent else f"not taken for {GIVE_UP_AFTER.days} days"
                details: dict[str, Any] = {
                    "notice": entry.kind,
                    "attempts": attempts,
                    "queued_at": entry.created_at.isoformat(),
                    "why": why,
                }
                if self.queue.give_up_outbox(
                    entry.id, owner, error=exc.reason, now=now, details=details
                ):
                    self._after_giving_up(entry, request, exc.reason)
                return True
            # The last try is made at the horizon itself, so every entry gets its full week.
            retry_at = min(now + backoff(entry.attempts), horizon)
            log.warning(
                "Slack did not take %s for request %s (%s); retrying at %s",
                entry.kind,
                entry.request_id,
                exc.reason,
                retry_at.isoformat(timespec="seconds"),
            )
            self.queue.retry_outbox(entry.id, owner, error=exc.reason, next_attempt_at=retry_at)
            return False
        self.queue.complete_outbox(entry.id, owner, now=self.clock())
        return True

    def _as_of(self, entry: OutboxEntry, request: VerificationRequest) -> VerificationRequest:
        """The request as the change that queued ``entry`` left it.

        A thread reply or DM describes one change: if it is delivered late (after a Retry has
        moved the request on), it must still say what that change did. The entry names the
        change's audit entry, which holds its details.
        """
        return self._as_of_change(entry.audit_id, request)

    def _as_of_change(
        self, audit_id: int | None, request: VerificationRequest
    ) -> VerificationRequest:
        """The request as the change of audit entry ``audit_id`` left it (see ``_as_of``)."""
        event = self.queue.audit_entry(audit_id) if audit_id is not None else None
        if event is None or event.to_state not in DESCRIBED_STATES:
            return request
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
            request,
            state=event.to_state,
            outcome=outcome,
            readback=readback,
            decided_by=request.decided_by if event.actor == "bot" else event.actor,
            decision_note=note or request.decision_note,
        )

    def _send(self, entry: OutboxEntry, request: VerificationRequest) -> None:
        kind = entry.kind
        channel = self.notifier.channel
        if kind == Notice.POST_REQUEST:
            if request.message_ts:
                return  # posted already (a delivery whose completion was lost): never twice
            if entry.tried and self._adopt_copy(request):
                return  # Slack had posted it; its answer was lost
            posted = self.notifier.post_request(request, self._history(request))
            self.queue.set_message(request.id, posted.channel, posted.ts)
        elif kind == Notice.SHOW:
            if self._superseded(request.id):
                return  # a later update is queued: it shows the same (current) state
            self.notifier.show(request, self._history(request))
        elif kind == Notice.REPLY_RESULT:
            described = self._as_of(entry, request)
            posted = self.notifier.reply_result(described)
            if described.state is State.UNKNOWN:  # it offers Check provider, Retry, Resolved
                self._remember(request, Surface.RESULT_REPLY, posted, entry.audit_id)
        elif kind == Notice.REPLY_CHECK:
            event = self.queue.audit_entry(entry.audit_id) if entry.audit_id is not None else None
            reading = request.readback
            if event is not None and isinstance(event.details.get("reading"), dict):
                reading = view_from_dict(event.details["reading"])  # what that click read
            if reading is None:
                raise DeliveryError(kind, "there is no reading to show", permanent=True)
            by = event.actor if event is not None else "an approver"
            posted = self.notifier.reply_check(request, reading, by)
            if request.state is State.UNKNOWN:  # it offers Check provider, Retry, Resolved
                self._remember(request, Surface.CHECK_REPLY, posted, entry.audit_id)
        elif kind == Notice.DM_POSTED:
            if not request.message_ts:
                # DMs have their own lane: the post may simply not have gone out yet.
                still_posting = request.state is State.PENDING
                raise DeliveryError(
                    kind,
                    "the request message is not posted yet"
                    if still_posting
                    else "the request was never posted",
                    permanent=not still_posting,
                )
            text, dm_blocks = blocks.submitted_dm(request, channel)
            posted = self.notifier.dm(request.requester, text, dm_blocks)
            self._remember(request, Surface.CANCEL_DM, posted, entry.audit_id)
        elif kind == Notice.DM_OUTCOME:
            decided = self._as_of(entry, request)
            self.notifier.dm(request.requester, blocks.outcome_dm(decided, channel))
        elif kind == Notice.REMIND:
            if request.state is State.PENDING and not request.is_expired(self.clock()):
                self.notifier.remind(request)  # never once it is decided (or past its time)
        elif kind == Notice.DM_NOT_POSTED:
            outcome = request.outcome
            reason = outcome.message if isinstance(outcome, NotPosted) else "Slack refused it"
            self.notifier.dm(request.requester, blocks.not_posted_dm(request, channel, reason))
        elif kind == Notice.SETTLE_REPLIES:
            self._settle(request, _UNKNOWN_SURFACES)
        elif kind == Notice.SETTLE_DM:
            self._settle(request, frozenset({Surface.CANCEL_DM}))
        else:
            raise DeliveryError(kind, "unknown kind of delivery", permanent=True)

    def _adopt_copy(self, request: VerificationRequest) -> bool:
        """Look for a copy of the request message Slack already holds (an earlier post whose
        answer was lost); if there is one, record it as the request's message and bring it up
        to date instead of posting again. False when there is none (or history is not ours to
        read), so the caller posts."""
        found = self.notifier.find_request_message(request)
        if found is None:
            return False
        log.warning(
            "Request %s was already posted (message %s; Slack's answer was lost): updating "
            "that message instead of posting a second one",
            request.id,
            found.ts,
        )
        self.queue.set_message(request.id, found.channel, found.ts)
        posted = replace(request, channel=found.channel, message_ts=found.ts)
        self.notifier.show(posted, self._history(request))
        return True

    def _remember(
        self, request: VerificationRequest, surface: Surface, posted: Posted, audit_id: int | None
    ) -> None:
        """Keep where a message with buttons went, to take them away once they cannot act."""
        if not (posted.channel and posted.ts):
            log.warning("Slack did not say where the %s of request %s went", surface, request.id)
            return
        self.queue.record_buttons(
            request.id, surface, posted.channel, posted.ts, audit_id=audit_id, now=self.clock()
        )

    def _settle(self, request: VerificationRequest, surfaces: frozenset[Surface]) -> None:
        """Rewrite each of the request's messages (of ``surfaces``) whose buttons can no longer
        act, saying what happened instead. Cancel acts only while the request is pending; Check
        provider, Retry and Resolved only on the request's current unknown outcome (those
        offered on an earlier one, which a Retry ended, no longer do)."""
        live = [b for b in self.queue.live_buttons(request.id) if b.surface in surfaces]
        if not live:
            return
        trail = self.queue.audit_log(request.id) if surfaces & _UNKNOWN_SURFACES else []
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
            if buttons.surface is Surface.CANCEL_DM:
                if request.state is State.PENDING:
                    continue  # Cancel still acts
                text, new_blocks = blocks.settled_dm(request, self.notifier.channel)
            else:
                if current is not None and (buttons.audit_id or 0) >= current:
                    continue  # offered on the current unknown outcome: they still act
                text, new_blocks = self._settled_reply(request, buttons, trail)
            try:
                self.notifier.rewrite(buttons.channel, buttons.ts, text, new_blocks)
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
            self.queue.settle_buttons(buttons.id, now=self.clock())

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
        if buttons.surface is Surface.CHECK_REPLY:
            event = next((e for e in trail if e.id == buttons.audit_id), None)
            reading = request.readback
            if event is not None and isinstance(event.details.get("reading"), dict):
                reading = view_from_dict(event.details["reading"])
            if reading is not None:
                by = event.actor if event is not None else "an approver"
                return blocks.check_reply(request, reading, by, offer=False, note=note)
        described = self._as_of_change(buttons.audit_id, request)
        return blocks.result_reply(described, retry=False, note=note)

    def _history(self, request: VerificationRequest) -> History:
        """What the store knows of earlier requests for the same email or domain, as of now:
        the newest HISTORY_SHOWN, and whether there were more (so no count is silently cut)."""
        since = self.clock() - timedelta(days=HISTORY_DAYS)
        limit = HISTORY_SHOWN + 1
        while True:
            found = self.queue.requests_about(
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

    def _superseded(self, request_id: str) -> bool:
        """True when more than one message update is queued for the request (this one and a
        later one): both would render the same current state, so one call is enough."""
        queued = self.queue.outbox_entries(request_id)
        return sum(1 for e in queued if e.kind == Notice.SHOW) > 1

    def _after_giving_up(
        self, entry: OutboxEntry, request: VerificationRequest, reason: str
    ) -> None:
        """A request that can never be posted is handed over to be closed."""
        if entry.kind != Notice.POST_REQUEST or request.state is not State.PENDING:
            return
        if self.on_unpostable is not None:
            self.on_unpostable(request.id, reason)
