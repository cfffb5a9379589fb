"""The batch runners: on every replica, BULK_CONCURRENCY threads that run approved bulk requests'
items at the provider's pace (bot/domain/bulk.py ``run_next``; the store shares the pace, the
concurrency and each item's claim between replicas).

A thread asks for the next item, calls the provider for it and asks again; told to wait (the
pace, every slot busy, nothing queued), it waits that long, or until this process queues items
(an approval, a Retry: ``wake``). A store that fails is logged and retried after a pause; the
threads never end but by ``stop``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from bot.domain.ports import Claimed, Hold
from bot.domain.service import Approvals
from bot.store import StoreError

log = logging.getLogger(__name__)

# The longest a thread waits before asking again (another replica's approval is found by then).
MAX_WAIT: Final = 2.0
# After a failed step (the store unavailable, say), the pause before the next one.
FAILURE_PAUSE: Final = 1.0


class BatchRunner:
    def __init__(self, approvals: Approvals, threads: int) -> None:
        self.approvals = approvals
        self.threads = threads
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._woken = 0  # bumped by each wake: a thread that sees it change asks at once
        self._threads: list[threading.Thread] = []

    def start(self) -> BatchRunner:
        self._stop.clear()
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"batch-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop asking for items; a call under way finishes (its outcome is recorded)."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def wake(self) -> None:
        """Items were queued by this process: every waiting thread asks at once."""
        with self._wake:
            self._woken += 1
            self._wake.notify_all()

    def step(self) -> Claimed | Hold:
        """One step as a thread runs it: a failure is logged, not raised (then a pause)."""
        try:
            return self.approvals.run_next()
        except StoreError as exc:
            log.error("Batch runner: the store is unavailable: %s", exc)
        except Exception:  # noqa: BLE001 - the runner must outlive one bad step; logged in full
            log.exception("Batch runner step failed")
        return Hold(FAILURE_PAUSE)

    def drain(self, timeout: float = 120.0) -> int:
        """Run on the calling thread until nothing is queued (waiting out the pace in real
        time); the number of items run. For the sandbox and tests; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        ran = 0
        while time.monotonic() < deadline:
            got = self.step()
            if isinstance(got, Claimed):
                ran += 1
                continue
            if got.idle:
                return ran
            time.sleep(min(got.seconds, MAX_WAIT, max(deadline - time.monotonic(), 0.0)))
        raise TimeoutError(f"bulk items still queued after {timeout:.0f} s")

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                seen = self._woken
            got = self.step()
            if isinstance(got, Claimed):
                continue
            with self._wake:
                if self._woken == seen and not self._stop.is_set():
                    self._wake.wait(min(got.seconds, MAX_WAIT))
