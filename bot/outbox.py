"""The outbox: what the bot must tell Slack is stored with the change that caused it, then sent.

A provider result is never lost because Slack was down when it arrived. Each state change that
Slack should hear about stores outbox entries in the same transaction (see ``Store.transition``
and ``Store.create``). The listener that made the change delivers them at once; whatever could
not be delivered is retried with backoff by the maintenance loop (``bot.maintenance``), in this
process or any other replica, and after a restart.

Entries name *what* to tell (a kind); the content is rendered from the request's stored state
at delivery time, so a late delivery never shows a stale state. Entries of one request are
delivered strictly in order, and a lease keeps two replicas from sending the same one.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from bot import blocks
from bot.approvals import Notice, OutboxEntry, State, Store, VerificationRequest, utcnow
from bot.notify import DeliveryError, Notifier

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # longer than a Slack call with the SDK's rate-limit retries
MAX_ATTEMPTS = 20  # with the backoff below, about two and a half hours of trying
MAX_BACKOFF = 600.0


def backoff(attempts: int) -> timedelta:
    """Wait before the next try, after ``attempts`` failed ones: 1 s, 2 s, 4 s … 10 min."""
    return timedelta(seconds=min(MAX_BACKOFF, 2.0 ** max(0, attempts)))


def default_owner() -> str:
    """Who holds a lease: unique per process, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Outbox:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.owner = owner or default_owner()

    def deliver(self, request_id: str) -> None:
        """Deliver what is due for one request now, in order, stopping at the first that fails."""
        while True:
            entries = self.store.claim_outbox(
                now=self.clock(),
                owner=self.owner,
                lease_seconds=LEASE_SECONDS,
                limit=1,
                request_id=request_id,
            )
            if not entries or not self._deliver_one(entries[0]):
                return

    def deliver_due(self, limit: int = 100) -> int:
        """Deliver what is due for every request (the heads of their queues, then what follows).

        Returns how many entries were delivered or given up on.
        """
        done = 0
        entries = self.store.claim_outbox(
            now=self.clock(), owner=self.owner, lease_seconds=LEASE_SECONDS, limit=limit
        )
        for entry in entries:
            if self._deliver_one(entry):
                done += 1
                # Entries behind it in the same request's queue are now at its head.
                self.deliver(entry.request_id)
        return done

    def _deliver_one(self, entry: OutboxEntry) -> bool:
        """Deliver one claimed entry. True when it is finished with (sent or given up on)."""
        request = self.store.get(entry.request_id)
        try:
            if request is None:
                raise DeliveryError(entry.kind, "the request is gone", permanent=True)
            self._send(entry.kind, request)
        except DeliveryError as exc:
            attempts = entry.attempts + 1
            if exc.permanent or attempts >= MAX_ATTEMPTS:
                log.error(
                    "Giving up on %s for request %s after %d attempt(s): %s",
                    entry.kind,
                    entry.request_id,
                    attempts,
                    exc.reason,
                )
                self.store.bury_outbox(entry.id, self.owner, error=exc.reason, now=self.clock())
                if request is not None:
                    self._after_giving_up(entry, request, exc.reason)
                return True
            retry_at = self.clock() + backoff(entry.attempts)
            log.warning(
                "Slack did not take %s for request %s (%s); retrying at %s",
                entry.kind,
                entry.request_id,
                exc.reason,
                retry_at.isoformat(timespec="seconds"),
            )
            self.store.retry_outbox(
                entry.id, self.owner, error=exc.reason, next_attempt_at=retry_at
            )
            return False
        self.store.complete_outbox(entry.id, self.owner, now=self.clock())
        return True

    def _send(self, kind: str, request: VerificationRequest) -> None:
        channel = self.notifier.channel
        if kind == Notice.POST_REQUEST:
            if request.message_ts:
                return  # posted already (a delivery whose completion was lost): never twice
            self.notifier.post_request(request)
        elif kind == Notice.SHOW:
            if self._superseded(request.id):
                return  # a later update is queued: it shows the same (current) state
            self.notifier.show(request)
        elif kind == Notice.REPLY_RESULT:
            self.notifier.reply_result(request)
        elif kind == Notice.DM_POSTED:
            if not request.message_ts:
                raise DeliveryError(kind, "the request was never posted", permanent=True)
            self.notifier.dm(request.requester, blocks.submitted_dm(request, channel))
        elif kind == Notice.DM_OUTCOME:
            self.notifier.dm(request.requester, blocks.outcome_dm(request, channel))
        elif kind == Notice.DM_NOT_POSTED:
            reason = str((request.outcome or {}).get("message") or "Slack refused it")
            self.notifier.dm(request.requester, blocks.not_posted_dm(request, channel, reason))
        else:
            raise DeliveryError(kind, "unknown kind of delivery", permanent=True)

    def _superseded(self, request_id: str) -> bool:
        """True when more than one message update is queued for the request (this one and a
        later one): both would render the same current state, so one call is enough."""
        queued = self.store.outbox_entries(request_id)
        return sum(1 for e in queued if e.kind == Notice.SHOW) > 1

    def _after_giving_up(
        self, entry: OutboxEntry, request: VerificationRequest, reason: str
    ) -> None:
        """A request that can never be posted is closed, and its requester told why."""
        if entry.kind != Notice.POST_REQUEST or request.state is not State.PENDING:
            return
        closed = self.store.transition(
            request.id,
            frozenset({State.PENDING}),
            State.EXPIRED,
            actor="bot",
            action="post_failed",
            now=self.clock(),
            details={"error": reason},
            outcome={"message": f"Slack said {reason}"},
            outbox=(Notice.DM_NOT_POSTED,),
        )
        if closed is not None:
            self.deliver(request.id)
