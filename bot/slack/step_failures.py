"""Failing a Workflow Builder step run whose request could not be made (functions.completeError
with the command's words), durably: the words are stored first, then sent at once, and what
Slack does not take is sent again by every maintenance round (any replica), with the outbox's
backoff, for as long as the outbox would try (GIVE_UP_AFTER).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bot.domain.model import utcnow
from bot.domain.ports import StepFailure
from bot.slack.notifier import DeliveryError
from bot.slack.outbox import GIVE_UP_AFTER, LEASE_SECONDS, backoff

log = logging.getLogger(__name__)


class StepFailureQueue(Protocol):
    def record_step_failure(self, execution_id: str, error: str, *, now: datetime) -> bool: ...

    def claim_step_failures(
        self, *, now: datetime, lease_seconds: float, limit: int = 20
    ) -> list[StepFailure]: ...

    def finish_step_failure(self, execution_id: str, *, now: datetime) -> None: ...

    def retry_step_failure(
        self, execution_id: str, *, error: str, next_attempt_at: datetime
    ) -> None: ...


class StepFailer(Protocol):
    def fail_step(self, execution_id: str, error: str) -> bool: ...


class StepFailures:
    def __init__(
        self,
        queue: StepFailureQueue,
        notifier: StepFailer,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.queue = queue
        self.notifier = notifier
        self.clock = clock

    def record(self, execution_id: str, words: str) -> None:
        """Keep ``words`` to fail the run with (once: a run's event delivered again keeps
        nothing more); ``deliver_due`` sends them."""
        self.queue.record_step_failure(execution_id, words, now=self.clock())

    def fail(self, execution_id: str, words: str) -> None:
        """Fail the run with ``words``: kept, then sent now (and later, until Slack takes it)."""
        self.record(execution_id, words)
        self.deliver_due()

    def deliver_due(self, limit: int = 20) -> int:
        """Send the due failures; how many were finished with."""
        done = 0
        for failure in self.queue.claim_step_failures(
            now=self.clock(), lease_seconds=LEASE_SECONDS, limit=limit
        ):
            if self._send(failure):
                done += 1
        return done

    def _send(self, failure: StepFailure) -> bool:
        now = self.clock()
        try:
            self.notifier.fail_step(failure.execution_id, failure.error)
        except DeliveryError as exc:
            if exc.permanent or now - failure.created_at >= GIVE_UP_AFTER:
                log.error(
                    "Step run %s could not be failed; given up: %s", failure.execution_id, exc
                )
            else:
                log.warning(
                    "Step run %s: failing it did not work yet (attempt %d): %s",
                    failure.execution_id,
                    failure.attempts,
                    exc,
                )
                self.queue.retry_step_failure(
                    failure.execution_id,
                    error=str(exc),
                    next_attempt_at=now + backoff(failure.attempts),
                )
                return False
        self.queue.finish_step_failure(failure.execution_id, now=now)
        log.info("Step run %s failed: no request could be made", failure.execution_id)
        return True
