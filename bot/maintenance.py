"""The maintenance loop: what must happen without anyone clicking.

Every ``interval`` seconds (and once at start-up), on every replica:

* pending requests past REQUEST_TTL become ``expired`` and their message loses its buttons;
* requests whose claim's lease ran out while ``executing`` (their process stopped or stalled
  mid-call) become ``unknown``, with a Retry button in the thread (see :func:`lease_seconds`;
  a claim made before leases: after ``interrupted_after`` seconds, :func:`interrupted_bound`);
* requests pending for REMIND_EVERY since they last changed get a reminder in their thread
  (one replica sends it);
* outbox entries that Slack did not take earlier are delivered;
* pending requests still without a reading of the provider's view ``lookup_after`` seconds
  after they were made (their process stopped before the lookup was recorded) are looked up,
  at most ``max_lookups`` a round, last, so a slow provider holds up no other step.

Every step is a compare-and-set in the store, so running it on several replicas at once
changes each request exactly once, and each message is sent by one replica. (But a lookup:
two replicas' rounds in the same moment may both read the provider's view, which is
read-only there; the later reading is the one shown.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.domain.service import Approvals
from bot.provider.view import VIEW_CALLS, VIEW_TIMEOUT
from bot.slack.outbox import Outbox
from bot.slack.step_failures import StepFailures
from bot.store import StoreError

log = logging.getLogger(__name__)

INTERVAL = 15.0  # seconds between rounds: well within "at least once a minute"
# Slack for a claim older than the longest provider call, plus this much for clock skew
# between replicas and the store's own latency.
INTERRUPTED_GRACE = 30.0
# A request made longer ago than this with no reading of the provider's view lost its lookup:
# a lookup takes at most VIEW_CALLS calls of twice VIEW_TIMEOUT each (30 s), plus the same grace.
LOOKUP_AFTER = VIEW_CALLS * 2 * VIEW_TIMEOUT + INTERRUPTED_GRACE
# Lookups one round makes at most: each is bounded (above), so is the round.
MAX_LOOKUPS = 3


# A claim's lease: one attempt's deadline plus this much for clock skew between replicas, the
# store's latency and writing the outcome. A crash mid-call is offered for Retry within the
# lease plus one round's INTERVAL: with the default HOSTUP_TIMEOUT of 15 s, about 40 s.
LEASE_GRACE = 10.0


def lease_seconds(setting: float, attempt_deadline: float) -> float:
    """Seconds a claim may call the provider before the sweep may take it (renewed before each
    further attempt). ``setting`` is INTERRUPTED_AFTER: 0 (the default) derives it, one
    attempt's deadline plus LEASE_GRACE; a positive value is used as it is (soaks, tests)."""
    return setting if setting > 0 else attempt_deadline + LEASE_GRACE


def interrupted_bound(setting: float, max_call_seconds: float) -> float:
    """Seconds a request claimed without a lease (by a bot before leases, schema 5) may stay
    ``executing`` before a round calls its call interrupted (a claim with a lease is taken once
    its lease ran out, see :func:`lease_seconds`).

    ``setting`` is INTERRUPTED_AFTER: 0 (the default) derives the bound from the provider
    client, the longest a call can take plus INTERRUPTED_GRACE, so a live call is never taken
    for a stopped one. A positive value is used as it is: the soak and tests shorten the bound
    with it, so that they need not wait out a real call's bound.
    """
    return setting if setting > 0 else max_call_seconds + INTERRUPTED_GRACE


class Maintenance:
    def __init__(
        self,
        approvals: Approvals,
        outbox: Outbox,
        interrupted_after: float,
        interval: float = INTERVAL,
        on_round: Callable[[bool], None] | None = None,
        lookup_after: float = LOOKUP_AFTER,
        max_lookups: int = MAX_LOOKUPS,
        step_failures: StepFailures | None = None,
    ) -> None:
        self.approvals = approvals
        # Workflow Builder step runs still to be failed (Slack did not take it yet).
        self.step_failures = step_failures
        self.lookup_after = lookup_after
        self.max_lookups = max_lookups
        self.on_round = on_round  # told of each round of the loop: whether it succeeded
        self.outbox = outbox
        self.interrupted_after = interrupted_after
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        """One round; returns how many requests it expired, found interrupted, reminded
        approvers of, escalated and looked up, and how many outbox entries it finished
        (besides those of the requests it changed, which the service delivers at once)."""
        expired = self.approvals.expire_due()
        interrupted = self.approvals.recover_interrupted(self.interrupted_after)
        reminded = self.approvals.remind_due()
        escalated = self.approvals.escalate_due()
        delivered = self.outbox.deliver_due()
        if self.step_failures is not None:
            delivered += self.step_failures.deliver_due()
        looked_up = self.approvals.look_up_missing(self.lookup_after, self.max_lookups)
        return {
            "expired": len(expired),
            "interrupted": len(interrupted),
            "reminded": len(reminded),
            "escalated": len(escalated),
            "delivered": delivered,
            "looked_up": len(looked_up),
        }

    def start(self) -> Maintenance:
        self._thread = threading.Thread(target=self._loop, name="maintenance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def run_round(self) -> bool:
        """One round as the loop runs it: a failure is logged, not raised, and ``on_round`` is
        told whether the round succeeded. Returns that."""
        ok = False
        try:
            self.run_once()
            ok = True
        except StoreError as exc:
            log.error("Maintenance round skipped: the store is unavailable: %s", exc)
        except Exception:  # noqa: BLE001 - the loop must outlive one bad round; logged in full
            log.exception("Maintenance round failed")
        if self.on_round is not None:
            self.on_round(ok)
        return ok

    def _loop(self) -> None:
        while True:
            self.run_round()
            if self._stop.wait(self.interval):
                return
