"""The outbox: what the bot must tell Slack is stored with the change that caused it, then sent.

A provider result is never lost because Slack was down when it arrived. Each state change that
Slack should hear about stores outbox entries in the same transaction (see the store's
``transition`` and ``create``), each linked to the audit entry of that change. The service
delivers them at once; whatever could not be delivered is retried with backoff by the
maintenance loop (``bot.maintenance``), in this process or any other replica, and after a
restart.

Entries name *what* to tell (a notice, bot/slack/notices.py); bot/slack/render.py renders each
from the request's stored state at delivery time. Each request has two lanes, the channel (its
message, updates and thread) and direct messages to the requester: within a lane entries are
delivered strictly in order, and a DM Slack keeps refusing never holds up the channel. A lease,
unique to each claim, keeps two deliverers from sending the same entry.

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
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.model import State, VerificationRequest, utcnow
from bot.domain.ports import OutboxEntry
from bot.slack.notices import Notice
from bot.slack.notifier import DeliveryError
from bot.slack.render import Messenger, Records, Renderer

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # longer than a Slack call with the SDK's rate-limit retries
# Slack's own trouble is retried this long after the entry was queued (the age alert on the
# outbox fires long before), then given up on: about 680 attempts at the capped backoff.
GIVE_UP_AFTER = timedelta(days=7)
MAX_BACKOFF = 900.0  # seconds: 1 s, 2 s, 4 s … 15 min


class OutboxQueue(Records, Protocol):
    """What the outbox needs of the store: its queue, and the requests the entries are about."""

    def get(self, request_id: str) -> VerificationRequest | None: ...

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
        messenger: Messenger,
        *,
        on_unpostable: Callable[[str, str], object] | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        approvals_required: int = 1,
        approvers: Sequence[str] = (),
    ) -> None:
        """``on_unpostable(request_id, slack_error)`` is called when Slack will never take a
        pending request's message (the service closes the request). ``approvals_required``
        and ``approvers`` are shown on request messages and mentioned by reminders."""
        self.queue = queue
        self.on_unpostable = on_unpostable
        self.clock = clock
        self.owner = owner or default_owner()
        self.renderer = Renderer(
            queue,
            messenger,
            approvals_required=approvals_required,
            approvers=approvers,
            clock=lambda: self.clock(),
        )

    def deliver(self, request_id: str) -> None:
        """Deliver what is due for one request now, in order within each lane, stopping in a
        lane at the first entry that fails."""
        while True:
            owner = self._claimant()
            # The oldest two lanes' heads (of channel, DMs and the step's completion), ours under
            # this claim; the loop takes the next heads once these are finished with.
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
            self.renderer.send(entry, request)
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

    def _after_giving_up(
        self, entry: OutboxEntry, request: VerificationRequest, reason: str
    ) -> None:
        """A request that can never be posted is handed over to be closed."""
        if entry.kind != Notice.POST_REQUEST or request.state is not State.PENDING:
            return
        if self.on_unpostable is not None:
            self.on_unpostable(request.id, reason)
