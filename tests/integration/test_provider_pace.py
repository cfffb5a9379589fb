"""The provider's rate limit end to end: the stand-in provider limited (its sliding window on a
test's clock, its documented 429 and headers) and the client reading what each answer says of
it (a Pace on the result, on the failure and on ``last_pace``), over real HTTP on loopback.

The limiter's clock is the test's, and the client's sleeps move it, so a 429 and the call
after its Retry-After are both decided without sleeping. Shared fixtures are in
tests/conftest.py and helpers in tests/provider_client.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from provider_client import CONFIRM, EMAIL, KEY, MakeClient, confirm_error

from bot.domain.outcomes import outcome_to_dict
from bot.domain.pace import Pace
from bot.provider.client import HostupClient
from bot.provider.failures import ProviderError
from bot.standins.provider import FakeProvider, Response, problem

DOMAIN = "example.com"


class Clock:
    """Monotonic seconds for the stand-in's limiter, moved by the client's sleeps."""

    def __init__(self) -> None:
        self.now = 50.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def paced_client(provider: FakeProvider, clock: Clock) -> Iterator[HostupClient]:
    """A client of ``provider`` whose sleeps move ``clock`` (one attempt unless told)."""
    with HostupClient(provider.url, KEY, 0.5, max_attempts=1, sleep=clock.sleep) as client:
        yield client


def resendable(provider: FakeProvider, name: str = DOMAIN) -> str:
    return provider.set_domain(name, can_resend=True, recipient=f"owner@{name}").id


def near(when: datetime | None, seconds: float) -> bool:
    """``when`` is about ``seconds`` from now (the stand-in stamps it on the wall clock)."""
    assert when is not None
    target = datetime.now(UTC) + timedelta(seconds=seconds)
    return abs((when - target).total_seconds()) < 0.5


# ---------------------------------------------------------------------------------------------
# A 429 with the documented headers: a failure that carries its pace


def test_beyond_the_limit_a_confirm_fails_with_the_providers_pace(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """Two confirms a second: the third at the same instant is answered 429 with the
    documented problem document and headers, does nothing, and fails ``rate_limited``; the
    failure (and its outcome, and ``last_pace``) carry what the headers said."""
    provider.rate_limit(2, clock=clock)
    provider.status_after_confirm = "verified"
    paced_client.confirm("a@a.example")
    paced_client.confirm("b@b.example")
    error = confirm_error(paced_client, "c@c.example")
    assert (error.kind, error.status, error.code) == ("rate_limited", 429, "rate_limit_exceeded")
    assert error.outcome.nothing_done
    pace = error.pace
    assert pace is not None and error.outcome.pace is pace
    assert (pace.limit, pace.remaining, pace.retry_after) == (2, 0, 1.0)
    assert near(pace.reset_at, 1.0)
    assert 0.0 < pace.wait(datetime.now(UTC)) <= 1.0
    assert paced_client.last_pace is pace
    assert provider.rate_limited_count == 1
    assert [call["status"] for call in provider.calls] == [200, 200, 429]
    assert provider.domain("c.example").status == "pending"  # the 429 did nothing
    assert provider.domain("b.example").status == "verified"


def test_the_stored_outcome_is_unchanged_by_the_pace(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """What the service stores of a rate-limited failure is the form it always was."""
    provider.rate_limit(1, clock=clock)
    paced_client.confirm(EMAIL)
    error = confirm_error(paced_client)
    assert error.outcome.pace is not None
    assert outcome_to_dict(error.outcome) == {
        "type": "provider_error",
        "kind": "rate_limited",
        "status": 429,
        "code": "rate_limit_exceeded",
        "message": "Too many requests.",
        "provider_request_id": error.request_id,
        "outcome_unknown": False,
    }


def test_a_confirm_retried_after_retry_after_goes_through(
    provider: FakeProvider, clock: Clock
) -> None:
    """With attempts to spare, the client waits the 429's Retry-After (moving the clock), and
    the next attempt is within the limit: the confirm succeeds, after one 429."""
    provider.rate_limit(1, clock=clock)
    with HostupClient(provider.url, KEY, 0.5, sleep=clock.sleep) as client:
        client.confirm("a@a.example")
        cleared = client.confirm("b@b.example")
    assert cleared.cleared_domains == ("b.example",)
    assert clock.slept == [1.0]
    assert [call["status"] for call in provider.calls] == [200, 429, 200]
    assert provider.rate_limited_count == 1


def test_the_limit_counts_confirms_and_resends_together(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """One count for both actions (as a limit per key would); the resend's lookup is not
    counted. A resend beyond it fails ``rate_limited`` with its pace, and sends nothing."""
    provider.rate_limit(2, clock=clock, code="rate_limited")
    resendable(provider)
    paced_client.confirm(EMAIL)
    paced_client.resend(DOMAIN, language="en")
    with pytest.raises(ProviderError) as info:
        paced_client.resend(DOMAIN, language="en")
    error = info.value
    assert (error.kind, error.status, error.code) == ("rate_limited", 429, "rate_limited")
    assert error.message == "Rate limit exceeded: Rate limit exceeded. Please try again later."
    assert error.pace is not None and error.outcome.pace is error.pace
    assert (error.pace.limit, error.pace.remaining, error.pace.retry_after) == (2, 0, 1.0)
    assert len(provider.resends()) == 1
    assert len(provider.view_calls) == 2  # both lookups answered, neither limited
    clock.now += 1.0
    assert paced_client.resend(DOMAIN, language="en").recipient == f"owner@{DOMAIN}"


def test_the_wait_says_until_the_window_frees(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """The Retry-After of a 429 is the time until the window frees, in whole seconds rounded
    up: one call in 4 s, refused 1.5 s after it, says wait 3."""
    provider.rate_limit(0.25, burst=1, clock=clock)
    paced_client.confirm(EMAIL)
    clock.now += 1.5
    pace = confirm_error(paced_client).pace
    assert pace is not None
    assert (pace.limit, pace.remaining, pace.retry_after) == (1, 0, 3.0)
    assert near(pace.reset_at, 2.5)


# ---------------------------------------------------------------------------------------------
# Successes: the headers when the provider sends them


def test_by_default_a_success_says_nothing_of_the_limit(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """The reference documents the headers on 429s: the stand-in sends none on a success
    unless told, and the result's pace is None, as is ``last_pace``."""
    provider.rate_limit(5, clock=clock)
    cleared = paced_client.confirm(EMAIL)
    assert cleared.pace is None and paced_client.last_pace is None
    assert "x-ratelimit-remaining" not in provider.calls[0]["headers"]  # (a request's headers)


def test_a_success_carries_remaining_and_reset_when_sent(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """Told to send the headers on every answer: each success carries limit, remaining (after
    it) and the reset, with no Retry-After; the one that used the window up says wait until the
    reset; ``last_pace`` follows."""
    provider.rate_limit(3, clock=clock, headers_on_success=True)
    resendable(provider)
    first = paced_client.confirm(EMAIL)
    assert first.pace is not None
    assert (first.pace.limit, first.pace.remaining, first.pace.retry_after) == (3, 2, None)
    assert near(first.pace.reset_at, 1.0)
    assert first.pace.wait(datetime.now(UTC)) == 0.0
    clock.now += 0.25
    resent = paced_client.resend(DOMAIN, language="sv")
    assert resent.pace is not None and resent.pace.remaining == 1
    assert near(resent.pace.reset_at, 0.75)
    last = paced_client.confirm(EMAIL)
    assert last.pace is not None and last.pace.exhausted
    assert 0.4 < last.pace.wait(datetime.now(UTC)) <= 0.75
    assert paced_client.last_pace is last.pace


# ---------------------------------------------------------------------------------------------
# What the client makes of headers the stand-in is scripted to send


def test_garbage_headers_never_fail_a_call(
    provider: FakeProvider, paced_client: HostupClient
) -> None:
    """A success with unreadable rate-limit headers is a success, with no pace; a readable
    one among them is kept."""
    garbage = {
        "Retry-After": "later",
        "X-RateLimit-Limit": "-4",
        "X-RateLimit-Remaining": "99999999999999999999",
        "X-RateLimit-Reset": "the day after tomorrow",
    }
    body = {
        "success": True,
        "requestId": "r1",
        "data": {"success": True, "clearedDomains": [DOMAIN], "clientsNotified": ["1"]},
    }
    provider.enqueue(Response.json(200, body, headers=garbage))
    assert paced_client.confirm(EMAIL).pace is None
    provider.enqueue(Response.json(200, body, headers={**garbage, "X-RateLimit-Remaining": "4"}))
    cleared = paced_client.confirm(EMAIL)
    assert cleared.pace is not None
    assert (cleared.pace.limit, cleared.pace.remaining, cleared.pace.reset_at) == (None, 4, None)


def test_an_epoch_reset_is_read_and_a_huge_retry_after_bounded(
    provider: FakeProvider, paced_client: HostupClient
) -> None:
    """A 429 whose reset is in Unix seconds and whose Retry-After is a year: the reset is read,
    the wait is cut to a day, and what a caller is told to wait is at most MAX_WAIT."""
    reset = int(datetime.now(UTC).timestamp()) + 30
    headers = {"Retry-After": str(365 * 86_400), "X-RateLimit-Reset": str(reset)}
    provider.enqueue(Response.json(429, {"message": "slow down"}, headers=headers))
    pace = confirm_error(paced_client).pace
    assert pace is not None
    assert pace.retry_after == 86_400.0
    assert pace.reset_at == datetime.fromtimestamp(reset, UTC)
    assert pace.wait(datetime.now(UTC)) == 300.0


def test_a_failed_lookup_carries_the_lookups_pace(
    provider: FakeProvider, paced_client: HostupClient
) -> None:
    """The resend's lookup answered 429 (with Retry-After): the resend fails ``rate_limited``,
    nothing sent, with what that answer said."""
    resendable(provider)
    provider.enqueue_view(
        problem(429, "rate_limited", "Too many requests.", headers={"Retry-After": "7"})
    )
    with pytest.raises(ProviderError) as info:
        paced_client.resend(DOMAIN, language="en")
    assert info.value.kind == "rate_limited"
    assert info.value.pace is not None and info.value.pace.retry_after == 7.0
    assert provider.resend_calls == []


def test_a_failure_without_an_answer_keeps_the_last_pace(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """A call that got no answer (the connection closed) has no pace of its own, and leaves
    ``last_pace`` as the last answer set it."""
    provider.rate_limit(1, clock=clock)
    paced_client.confirm(EMAIL)
    first = confirm_error(paced_client).pace
    clock.now += 1.0
    provider.script("close_after_read")
    error = confirm_error(paced_client)
    assert error.kind == "timeout" and error.pace is None
    assert paced_client.last_pace is first


# ---------------------------------------------------------------------------------------------
# The limiter over HTTP, and concurrency


def test_at_most_n_calls_a_second_over_http(
    provider: FakeProvider, paced_client: HostupClient, clock: Clock
) -> None:
    """Ten calls in one instant at five a second: five accepted, five 429s counted; the
    scripted answer queued is kept for the first call let through afterwards."""
    provider.rate_limit(5, clock=clock)
    outcomes: list[str] = []
    for _ in range(10):
        try:
            paced_client.confirm(EMAIL)
            outcomes.append("ok")
        except ProviderError as error:
            outcomes.append(error.kind)
    assert outcomes == ["ok"] * 5 + ["rate_limited"] * 5
    assert provider.rate_limited_count == 5
    provider.script("server_error")
    assert confirm_error(paced_client).kind == "rate_limited"
    clock.now += 1.0
    assert confirm_error(paced_client).kind == "server_error"
    provider.reset()
    assert provider.rate_limited_count == 0


def test_concurrent_calls_are_limited_and_last_pace_is_the_latest(
    provider: FakeProvider, clock: Clock
) -> None:
    """Twelve confirms from four threads at once, three a second: exactly three go through;
    every refusal carries its pace; ``last_pace`` is the one read last."""
    provider.rate_limit(3, clock=clock)
    results: list[Any] = []
    lock = threading.Lock()
    with HostupClient(provider.url, KEY, 2.0, max_attempts=1, sleep=clock.sleep) as client:

        def work() -> None:
            for _ in range(3):
                try:
                    outcome: Any = client.confirm(EMAIL)
                except ProviderError as error:
                    outcome = error
                with lock:
                    results.append(outcome)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        refused = [r for r in results if isinstance(r, ProviderError)]
        assert len(results) == 12 and len(refused) == 9
        assert all(r.kind == "rate_limited" and r.pace is not None for r in refused)
        paces: list[Pace] = [r.pace for r in refused if r.pace is not None]
        last = client.last_pace
        assert last is not None and last in paces
        assert last.read_at == max(pace.read_at for pace in paces)
    assert provider.rate_limited_count == 9
    assert sum(call["path"] == CONFIRM for call in provider.calls) == 12


def test_latency_applies_to_the_429_too(
    provider: FakeProvider, make_client: MakeClient, clock: Clock
) -> None:
    """The stand-in's latency (``delay``) is before every answer, a 429 included: the limit is
    counted when the call arrives."""
    provider.rate_limit(1, clock=clock)
    provider.delay = 0.2
    client = make_client(timeout=2.0, max_attempts=1)
    started = datetime.now(UTC)
    client.confirm(EMAIL)
    error = confirm_error(client)
    assert error.kind == "rate_limited"
    assert datetime.now(UTC) - started >= timedelta(seconds=0.4)
