"""The stand-in provider's rate limit (bot/standins/provider_limit.py), on its own: a sliding
window that accepts at most ``burst`` calls in any ``burst / calls_per_second`` seconds, the
documented headers and 429 it answers with. The clock is a test's: no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.standins.provider_limit import RateLimit, Verdict, too_many


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_at_most_n_calls_a_second() -> None:
    """20 calls a second: the first 20 at one instant are accepted, the 21st refused, with 0
    remaining; a second later the window has room again."""
    clock = Clock()
    limit = RateLimit(20, clock=clock)
    verdicts = [limit.take() for _ in range(25)]
    assert [v.allowed for v in verdicts] == [True] * 20 + [False] * 5
    assert [v.remaining for v in verdicts[:3]] == [19, 18, 17]
    assert all(v.remaining == 0 and v.limit == 20 for v in verdicts[19:])
    clock.advance(0.999)
    assert not limit.take().allowed
    clock.advance(0.001)
    assert limit.take().allowed


def test_no_second_anywhere_holds_more_than_n() -> None:
    """Calls offered every 10 ms for 5 s at a limit of 20 a second: in every one-second span,
    wherever it starts, at most 20 were accepted, and the limit was used to the full."""
    clock = Clock()
    start = clock.now
    limit = RateLimit(20, clock=clock)
    accepted: list[float] = []
    for i in range(500):
        clock.now = start + i * 0.01
        if limit.take().allowed:
            accepted.append(clock.now)
    for i, at in enumerate(accepted):
        in_span = [t for t in accepted[i:] if t < at + 1.0]
        assert len(in_span) <= 20
    assert len(accepted) == 100  # 20 a second for 5 s


def test_refused_calls_do_not_count() -> None:
    """A caller that keeps asking while refused is let in as soon as the window frees."""
    clock = Clock()
    limit = RateLimit(2, clock=clock)
    assert limit.take().allowed and limit.take().allowed
    for _ in range(50):
        assert not limit.take().allowed
    clock.advance(1.0)
    assert limit.take().allowed


def test_burst_sets_the_window() -> None:
    """burst 5 at 20 a second: at most 5 in any 0.25 s."""
    clock = Clock()
    limit = RateLimit(20, burst=5, clock=clock)
    assert (limit.limit, limit.window) == (5, 0.25)
    assert [limit.take().allowed for _ in range(6)] == [True] * 5 + [False]
    clock.advance(0.25)
    assert limit.take().allowed


def test_reset_and_retry_after() -> None:
    """The reset is when the oldest counted call leaves the window; Retry-After is that in
    whole seconds, rounded up, at least 1."""
    clock = Clock()
    limit = RateLimit(2, burst=2, clock=clock)
    first = limit.take()
    assert first.reset_in == 1.0 and first.retry_after == 0
    clock.advance(0.3)
    limit.take()
    clock.advance(0.5)
    refused = limit.take()
    assert not refused.allowed
    assert refused.reset_in == pytest.approx(0.2)
    assert refused.retry_after == 1
    slow = RateLimit(0.1, burst=1, clock=clock)  # one call in 10 s
    slow.take()
    clock.advance(2.5)
    assert slow.take().retry_after == 8


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (float("nan"), None), (5, 0)])
def test_a_limit_must_let_something_through(rate: float, burst: int | None) -> None:
    """A rate that is not positive, or a burst under 1, is refused."""
    with pytest.raises(ValueError):
        RateLimit(rate, burst=burst)


def test_the_documented_headers() -> None:
    """X-RateLimit-Limit, -Remaining and -Reset (an ISO time to the millisecond, UTC, ``Z``)
    on every verdict; Retry-After only on a refusal."""
    verdict = Verdict(allowed=False, limit=20, remaining=0, reset_in=0.4)
    before = datetime.now(UTC)
    headers = verdict.headers(refused=True)
    assert headers["X-RateLimit-Limit"] == "20"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["Retry-After"] == "1"
    reset = headers["X-RateLimit-Reset"]
    assert reset.endswith("Z") and len(reset) == len("2026-04-27T12:00:00.000Z")
    at = datetime.fromisoformat(reset)
    assert before + timedelta(seconds=0.39) <= at <= datetime.now(UTC) + timedelta(seconds=0.41)
    assert "Retry-After" not in Verdict(True, 20, 19, 1.0).headers(refused=False)


@pytest.mark.parametrize(
    ("code", "title", "detail"),
    [
        ("rate_limit_exceeded", "Too many requests", "Too many requests."),
        ("rate_limited", "Rate limit exceeded", "Rate limit exceeded. Please try again later."),
    ],
)
def test_the_documented_429(code: str, title: str, detail: str) -> None:
    """The 429 is the documented RFC 7807 problem document of its code, with the headers."""
    response = too_many(Verdict(False, 20, 0, 0.5), "/api/email-verification/confirmed", code)  # type: ignore[arg-type]
    assert response.status == 429
    assert response.content_type == "application/problem+json"
    assert isinstance(response.body, dict)
    assert response.body["type"] == f"https://developer.hostup.se/errors/{code}"
    assert (response.body["code"], response.body["title"]) == (code, title)
    assert (response.body["detail"], response.body["status"]) == (detail, 429)
    assert response.body["instance"] == "/api/email-verification/confirmed"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "0"
