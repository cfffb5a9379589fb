"""What one provider answer said about its rate limit, and how long a caller should wait.

The provider documents four headers on its 429 answers (developer.hostup.se/errors/rate_limited
and /errors/rate_limit_exceeded): ``Retry-After`` (seconds to wait before retrying),
``X-RateLimit-Limit`` (requests allowed in the active window), ``X-RateLimit-Remaining``
(requests left in it, "usually 0 on 429") and ``X-RateLimit-Reset`` (an ISO timestamp, when the
active window resets). It does not say whether they come on other answers, nor whether the
limit is per key or per endpoint. A :class:`Pace` is what one answer said, whatever its status,
read by the provider client (``bot.provider.reading.read_pace``) as untrusted and bounded; the
caller (a batch's runner) decides what to do with it, :meth:`Pace.wait` says how long to hold
off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

# The longest wait a Pace ever asks for: the provider's windows are short ("please wait a
# minute"); a provider that asks for longer is better surfaced than slept on.
MAX_WAIT: Final = 300.0


@dataclass(frozen=True, kw_only=True)
class Pace:
    """What one provider answer, received at ``read_at`` (aware), said about the rate limit.

    Every field but ``read_at`` may be missing: ``limit`` (requests allowed in the active
    window), ``remaining`` (left in it), ``reset_at`` (aware: when it resets) and
    ``retry_after`` (seconds from ``read_at`` before the next call).
    """

    read_at: datetime
    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.read_at.tzinfo is None:
            raise ValueError("read_at must be an aware datetime")
        if self.reset_at is not None and self.reset_at.tzinfo is None:
            raise ValueError("reset_at must be an aware datetime")
        for name, count in (("limit", self.limit), ("remaining", self.remaining)):
            if count is not None and count < 0:
                raise ValueError(f"{name} must not be negative")
        retry = self.retry_after
        if retry is not None and not (math.isfinite(retry) and retry >= 0):
            raise ValueError("retry_after must be a finite number of seconds, not negative")

    @property
    def exhausted(self) -> bool:
        """The answer said no calls are left in the active window."""
        return self.remaining == 0

    def wait(self, now: datetime, *, most: float = MAX_WAIT) -> float:
        """Seconds a caller should wait at ``now`` (aware) before its next call, at most
        ``most``: what is left of ``retry_after`` when it was given; else, when no calls were
        left, the time until ``reset_at``; else 0."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if self.retry_after is not None:
            left = self.retry_after - (now - self.read_at).total_seconds()
        elif self.exhausted and self.reset_at is not None:
            left = (self.reset_at - now).total_seconds()
        else:
            left = 0.0
        return min(max(left, 0.0), max(most, 0.0))
