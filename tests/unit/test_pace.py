"""What a provider answer says of its rate limit: the domain's Pace (bot/domain/pace.py), how
long it says to wait, and how the client reads the headers into it
(bot/provider/reading.py ``read_pace``): documented forms, lenient forms, garbage and huge
values; and that outcomes carrying a pace compare and serialise as before."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.outcomes import (
    Cleared,
    ProviderFailed,
    Resent,
    outcome_from_dict,
    outcome_to_dict,
)
from bot.domain.pace import MAX_WAIT, Pace
from bot.provider.reading import MAX_PACE_COUNT, read_pace

AT = datetime(2026, 4, 27, 12, 0, 0, tzinfo=UTC)


def pace_of(**headers: str) -> Pace | None:
    """``read_pace`` of these headers (underscores become dashes, names in lower case, as
    httpx.Headers looks them up), read at AT; the values as httpx would decode them."""
    return read_pace({k.replace("_", "-").lower(): v for k, v in headers.items()}, AT)


# ---------------------------------------------------------------------------------------------
# Pace.wait


def test_wait_is_what_is_left_of_retry_after() -> None:
    """Retry-After counts from when the answer was read: later, less is left; never below 0."""
    pace = Pace(read_at=AT, retry_after=10.0)
    assert pace.wait(AT) == 10.0
    assert pace.wait(AT + timedelta(seconds=4)) == 6.0
    assert pace.wait(AT + timedelta(seconds=30)) == 0.0


def test_wait_prefers_retry_after_to_the_reset() -> None:
    """Both given: Retry-After decides, as the reference says to use it."""
    pace = Pace(read_at=AT, retry_after=2.0, remaining=0, reset_at=AT + timedelta(seconds=40))
    assert pace.wait(AT) == 2.0


def test_wait_until_the_reset_only_when_nothing_is_left() -> None:
    """Without Retry-After, the reset counts only when no calls are left in the window."""
    reset = AT + timedelta(seconds=3)
    assert Pace(read_at=AT, remaining=0, reset_at=reset).wait(AT) == 3.0
    assert Pace(read_at=AT, remaining=0, reset_at=reset).wait(AT + timedelta(seconds=5)) == 0.0
    assert Pace(read_at=AT, remaining=4, reset_at=reset).wait(AT) == 0.0
    assert Pace(read_at=AT, remaining=0).wait(AT) == 0.0
    assert Pace(read_at=AT, limit=20).wait(AT) == 0.0


def test_wait_is_bounded() -> None:
    """However long the provider asks for, a Pace asks for at most MAX_WAIT (or ``most``)."""
    pace = Pace(read_at=AT, retry_after=86_400.0)
    assert pace.wait(AT) == MAX_WAIT
    assert pace.wait(AT, most=12.5) == 12.5
    far = Pace(read_at=AT, remaining=0, reset_at=AT + timedelta(hours=20))
    assert far.wait(AT) == MAX_WAIT


def test_wait_across_time_zones() -> None:
    """Aware times in any zone compare as instants."""
    cet = timezone(timedelta(hours=2))
    pace = Pace(read_at=AT, remaining=0, reset_at=datetime(2026, 4, 27, 14, 0, 7, tzinfo=cet))
    assert pace.wait(AT) == 7.0


def test_exhausted_means_none_left() -> None:
    """``exhausted`` only when the answer said 0 remaining."""
    assert Pace(read_at=AT, remaining=0).exhausted
    assert not Pace(read_at=AT, remaining=1).exhausted
    assert not Pace(read_at=AT).exhausted


@pytest.mark.parametrize(
    "fields",
    [
        {"read_at": datetime(2026, 4, 27, 12, 0)},
        {"read_at": AT, "reset_at": datetime(2026, 4, 27, 12, 0)},
        {"read_at": AT, "limit": -1},
        {"read_at": AT, "remaining": -1},
        {"read_at": AT, "retry_after": -0.5},
        {"read_at": AT, "retry_after": float("inf")},
        {"read_at": AT, "retry_after": float("nan")},
    ],
)
def test_a_pace_refuses_what_it_cannot_mean(fields: dict[str, object]) -> None:
    """Naive times, negative counts or waits, and non-finite waits are programming errors."""
    with pytest.raises(ValueError):
        Pace(**fields)  # type: ignore[arg-type]


def test_wait_needs_an_aware_now() -> None:
    """A naive ``now`` is refused rather than guessed."""
    with pytest.raises(ValueError):
        Pace(read_at=AT, retry_after=1.0).wait(datetime(2026, 4, 27, 12, 0))


# ---------------------------------------------------------------------------------------------
# read_pace: the documented headers


def test_the_documented_429_headers() -> None:
    """Retry-After seconds, X-RateLimit-Limit and -Remaining counts, -Reset an ISO time (the
    names in any case, as an answer's headers are)."""
    headers = httpx.Headers(
        {
            "Retry-After": "30",
            "X-RateLimit-Limit": "60",
            "x-ratelimit-remaining": "0",
            "X-RATELIMIT-RESET": "2026-04-27T12:00:30.000Z",
        }
    )
    pace = read_pace(headers, AT)
    assert pace is not None
    assert pace == Pace(
        read_at=AT,
        limit=60,
        remaining=0,
        reset_at=AT + timedelta(seconds=30),
        retry_after=30.0,
    )
    assert pace.wait(AT) == 30.0


def test_no_headers_is_no_pace() -> None:
    """An answer that says nothing of the rate limit has no pace (None), nor one whose every
    header is garbage."""
    assert pace_of() is None
    assert pace_of(Content_Type="application/json") is None
    assert pace_of(Retry_After="soon", X_RateLimit_Limit="lots", X_RateLimit_Reset="later") is None


def test_headers_are_read_each_on_its_own() -> None:
    """One garbage header is left out; the others are still read."""
    pace = pace_of(X_RateLimit_Limit="sixty", X_RateLimit_Remaining="7")
    assert pace == Pace(read_at=AT, remaining=7)


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("2026-04-27T12:00:30Z", AT + timedelta(seconds=30)),
        ("2026-04-27T12:00:30.250+00:00", AT + timedelta(seconds=30.25)),
        ("2026-04-27T14:00:30+02:00", AT + timedelta(seconds=30)),
        # Without an offset: UTC, as the provider's timestamps are.
        ("2026-04-27T12:00:30", AT + timedelta(seconds=30)),
        # An HTTP-date.
        (format_datetime(AT + timedelta(seconds=45), usegmt=True), AT + timedelta(seconds=45)),
        # Unix epoch seconds (a fraction too).
        (str(int(AT.timestamp()) + 20), AT + timedelta(seconds=20)),
        (f"{AT.timestamp() + 2.5}", AT + timedelta(seconds=2.5)),
        # Seconds from now: a small number cannot be epoch seconds of today.
        ("15", AT + timedelta(seconds=15)),
        ("0", AT),
        # A reset just passed is still read (it means: no wait).
        ("2026-04-27T11:59:59Z", AT - timedelta(seconds=1)),
    ],
)
def test_reset_forms(reset: str, expected: datetime) -> None:
    """X-RateLimit-Reset is documented as an ISO time; an HTTP-date, epoch seconds and seconds
    from now are read too, since each is unambiguous."""
    pace = pace_of(X_RateLimit_Reset=reset)
    assert pace is not None and pace.reset_at == expected


@pytest.mark.parametrize(
    "reset",
    [
        "tomorrow",
        "",
        "   ",
        "2026-13-45T99:00:00Z",
        "nan",
        "inf",
        "-5",
        # Epoch milliseconds: a misread unit, not a time within a day.
        str(int(AT.timestamp() * 1000)),
        # A time far off, in either direction, is not a rate limit's window.
        "2026-05-27T12:00:00Z",
        "1999-01-01T00:00:00Z",
        str(int(AT.timestamp()) + 3 * 86_400),
        "1e308",
        "9" * 400,
        "2026-04-27T12:00:30Z, 2026-04-27T12:00:31Z",
        "2026-04-27T12:00:30Z\x00",
    ],
)
def test_reset_garbage_is_ignored(reset: str) -> None:
    """A reset that is not a time within a day of the answer is left out, never an error."""
    assert pace_of(X_RateLimit_Reset=reset, X_RateLimit_Limit="5") == Pace(read_at=AT, limit=5)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 2 ", 2.0),
        (format_datetime(AT + timedelta(seconds=40), usegmt=True), 40.0),
        (format_datetime(AT - timedelta(seconds=40), usegmt=True), 0.0),
        # Huge: still "wait", cut to a day (and Pace.wait cuts further).
        ("99999999999", 86_400.0),
        ("1e300", 86_400.0),
    ],
)
def test_retry_after_forms(retry_after: str, expected: float) -> None:
    """Retry-After: delta-seconds (a fraction too) or an HTTP-date, at most a day."""
    pace = pace_of(Retry_After=retry_after)
    assert pace is not None and pace.retry_after == expected


@pytest.mark.parametrize("retry_after", ["soon", "-1", "nan", "inf", "1e999", "", "0x10"])
def test_retry_after_garbage_is_ignored(retry_after: str) -> None:
    """A Retry-After that is no wait is left out."""
    assert pace_of(Retry_After=retry_after) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("60", 60),
        (" 7 ", 7),
        (str(MAX_PACE_COUNT), MAX_PACE_COUNT),
        (str(MAX_PACE_COUNT + 1), None),
        ("9" * 40, None),
        ("-1", None),
        ("1.0", None),
        ("1e3", None),
        ("+5", None),
        ("²", None),
        ("٣", None),
        ("5, 5", None),
        ("", None),
    ],
)
def test_counts(value: str, expected: int | None) -> None:
    """X-RateLimit-Limit and -Remaining: plain non-negative integers, bounded; else left out."""
    pace = pace_of(X_RateLimit_Limit=value, X_RateLimit_Remaining=value, Retry_After="1")
    assert pace is not None
    assert (pace.limit, pace.remaining) == (expected, expected)


@given(
    st.dictionaries(
        st.sampled_from(
            ["retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]
        ),
        st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=80),
    )
)
def test_any_header_values_read_without_error(headers: dict[str, str]) -> None:
    """Whatever the provider sends, reading it never raises, and what is read is bounded: a
    wait of at most MAX_WAIT, a reset within a day, counts within MAX_PACE_COUNT."""
    pace = read_pace(headers, AT)
    if pace is None:
        return
    assert 0.0 <= pace.wait(AT) <= MAX_WAIT
    if pace.reset_at is not None:
        assert abs(pace.reset_at - AT) <= timedelta(days=1)
    for count in (pace.limit, pace.remaining):
        assert count is None or 0 <= count <= MAX_PACE_COUNT


# ---------------------------------------------------------------------------------------------
# Outcomes carrying a pace


PACE = Pace(read_at=AT, limit=20, remaining=0, retry_after=1.0)


@pytest.mark.parametrize(
    "outcome",
    [
        Cleared(cleared_domains=("example.com",), clients_notified=("3704",), message="ok"),
        Resent(recipient="hostmaster@example.com", sent_at="2026-04-27T12:00:00Z", domain="e.se"),
        ProviderFailed(kind="rate_limited", message="Too many requests.", status=429),
    ],
)
def test_a_pace_is_no_part_of_the_outcome(outcome: Cleared | Resent | ProviderFailed) -> None:
    """An outcome with a pace serialises exactly as without one, compares equal to it, and
    reads back (without the pace: it is never stored)."""
    paced = dataclasses.replace(outcome, pace=PACE)
    assert paced.pace == PACE and outcome.pace is None
    assert outcome_to_dict(paced) == outcome_to_dict(outcome)
    assert "pace" not in outcome_to_dict(paced)
    assert paced == outcome
    assert outcome_from_dict(outcome_to_dict(paced)) == outcome
