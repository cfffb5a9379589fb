"""The stand-in provider's rate limit: at most ``limit`` calls accepted in any ``window``
seconds (a sliding window), and the 429 it answers beyond that, as the provider documents it.

The provider's reference (developer.hostup.se/errors/rate_limit_exceeded and
/errors/rate_limited) documents a 429 whose body is an RFC 7807 problem document (code
``rate_limit_exceeded``, "Too many requests", or ``rate_limited``, "Rate limit exceeded") and
whose headers are ``Retry-After`` (seconds to wait before retrying), ``X-RateLimit-Limit``
(requests allowed in the active window), ``X-RateLimit-Remaining`` (left in it, "usually 0 on
429") and ``X-RateLimit-Reset`` (an ISO timestamp, when the active window resets). It documents
these headers on 429 answers only, and does not say whether the limit is per key or per
endpoint, nor how its window moves. So the stand-in:

* counts the calls it accepts over a sliding window (the strictest reading: no more than
  ``limit`` in any ``window`` seconds, whichever moment they start; a caller that keeps to it
  keeps to a fixed window too); a call answered 429 does not count;
* sends the headers on its 429s, and on the other answers of a limited call only when told to
  (``headers_on_success``: not documented, but what many providers do);
* sends ``Retry-After`` as whole seconds (HTTP's delta-seconds), rounded up, and
  ``X-RateLimit-Reset`` to the millisecond, as the provider's timestamps are written.

The clock is injectable (monotonic seconds), so a test decides when each call arrives.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.standins.provider_answers import Response, problem

RateLimitCode = Literal["rate_limit_exceeded", "rate_limited"]

# The documented problem documents, by code: (title, detail).
DOCUMENTED_429: dict[RateLimitCode, tuple[str, str]] = {
    "rate_limit_exceeded": ("Too many requests", "Too many requests."),
    "rate_limited": ("Rate limit exceeded", "Rate limit exceeded. Please try again later."),
}


@dataclass(frozen=True)
class Verdict:
    """What the limiter made of one call: ``allowed`` or not; ``limit`` and ``remaining`` (after
    this call) in the window; ``reset_in``: seconds until the window next frees a call (0 when
    none is counted)."""

    allowed: bool
    limit: int
    remaining: int
    reset_in: float

    @property
    def retry_after(self) -> int:
        """Whole seconds, rounded up, until a call would be accepted (at least 1 when refused)."""
        if self.allowed:
            return 0
        return max(1, math.ceil(self.reset_in))

    def headers(self, *, refused: bool) -> dict[str, str]:
        """The documented headers: X-RateLimit-Limit, -Remaining, -Reset (ISO, from the wall
        clock now), and Retry-After when ``refused``."""
        reset = datetime.now(UTC) + timedelta(seconds=self.reset_in)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if refused:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimit:
    """At most ``burst`` calls in any ``burst / calls_per_second`` seconds (``burst`` defaults
    to ``calls_per_second``, at least 1: a window of a second). Thread-safe."""

    def __init__(
        self,
        calls_per_second: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(calls_per_second) and calls_per_second > 0):
            raise ValueError("calls_per_second must be a positive number")
        limit = max(1, round(calls_per_second)) if burst is None else burst
        if limit < 1:
            raise ValueError("burst must be at least 1")
        self.calls_per_second = calls_per_second
        self.limit = limit
        self.window = limit / calls_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._accepted: deque[float] = deque()  # when each call in the window was accepted

    def take(self) -> Verdict:
        """Count a call arriving now, if the window has room for it."""
        with self._lock:
            now = self._clock()
            accepted = self._accepted
            while accepted and accepted[0] + self.window <= now:
                accepted.popleft()
            allowed = len(accepted) < self.limit
            if allowed:
                accepted.append(now)
            reset_in = max(0.0, accepted[0] + self.window - now) if accepted else 0.0
            return Verdict(allowed, self.limit, self.limit - len(accepted), reset_in)


def too_many(verdict: Verdict, path: str, code: RateLimitCode) -> Response:
    """The documented 429 for a refused call to ``path``: the problem document of ``code``,
    with Retry-After and the X-RateLimit headers."""
    title, detail = DOCUMENTED_429[code]
    return problem(429, code, detail, path, title=title, headers=verdict.headers(refused=True))
