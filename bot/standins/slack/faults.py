"""Failure injection: scripted failures (HTTP 429 with `Retry-After`, or `{"ok": false}`
answers, optionally only for some parameters), timeouts that answer too late having acted or
not, latency per method, whole outages (HTTP 503), and which calls are being answered now."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from bot.standins.slack.state import Failure, Params, Workspace


class Faults(Workspace):
    """The failure-injection side of `FakeSlack`."""

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
        where: Callable[[Params], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with a failure instead of doing them.

        `status` defaults to 429 for "ratelimited" (with a `Retry-After: retry_after` header,
        as slack_sdk's RateLimitErrorRetryHandler expects) and to 200 with
        `{"ok": false, "error": error}` otherwise. Failed calls change nothing. With `where`,
        only calls whose parameters it accepts fail (say, a post in a thread, not a DM).
        """
        resolved = status if status is not None else (429 if error == "ratelimited" else 200)
        with self._cond:
            self._failures.setdefault(method, []).append(
                Failure(
                    error, resolved, retry_after if resolved == 429 else None, times, where=where
                )
            )

    def time_out_next(self, method: str, seconds: float, *, acts: bool) -> None:
        """Let the next call of `method` time out: answer only after `seconds` (set it past
        the client's timeout), having done the call first when `acts` (Slack acted and its
        answer was lost) or not at all (the request never got through)."""
        with self._cond:
            failure = Failure("timeout", HTTPStatus.GATEWAY_TIMEOUT, None, 1, seconds, acts)
            self._failures.setdefault(method, []).append(failure)

    def outage(self, seconds: float) -> None:
        """A whole outage from now for `seconds`: every Web API call and response_url post
        answers HTTP 503 and does nothing."""
        with self._cond:
            self._outage_until = time.monotonic() + seconds

    def in_outage(self) -> bool:
        with self._cond:
            return time.monotonic() < self._outage_until

    def in_flight(self, method: str | None = None) -> list[int]:
        """The client ports of the Web API calls (of `method`) being answered now."""
        with self._cond:
            return [p for m, p in self._in_flight.values() if method is None or m == method]

    @contextmanager
    def _tracking(self, method: str, client_address: Any) -> Iterator[None]:
        key = next(self._counter)
        with self._cond:
            self._in_flight[key] = (method, int(client_address[1]))
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                del self._in_flight[key]
                self._cond.notify_all()

    def set_delay(self, method: str, seconds: float) -> None:
        """Make every call of `method` take at least `seconds` (0 removes the delay)."""
        with self._cond:
            self._delays[method] = seconds

    def _take_failure(
        self, method: str, *, timeouts: bool = False, params: Params | None = None
    ) -> Failure | None:
        """The next scripted failure of `method`, if it is a timeout (`timeouts`) or not, and
        (when it has a `where`) these `params` are ones it applies to."""
        queue = self._failures.get(method)
        if not queue or (queue[0].hang > 0) is not timeouts:
            return None
        if queue[0].where is not None and (params is None or not queue[0].where(params)):
            return None
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return failure
