"""The confirm call and the status read: the documented request and answer, and when the
client retries (nothing sent yet, a 429 with its Retry-After) and when it never does
(the request was sent: the outcome is unknown).

The provider client against the stand-in provider, over real HTTP on loopback; its other
concerns are in the other tests/integration/test_hostup_*.py, their shared fixtures in
tests/conftest.py and helpers in tests/provider_client.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from provider_client import (
    CONFIRM,
    EMAIL,
    KEY,
    MakeClient,
    confirm_error,
    documented_success,
    free_port,
)

from bot.domain.outcomes import Cleared, outcome_to_dict
from bot.provider import reading
from bot.provider.confirm import ProviderStatus
from bot.provider.failures import ProviderError
from bot.standins.provider import FakeProvider, Response

# ---------------------------------------------------------------------------------------------
# Success


def test_confirm_parses_the_documented_answer(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """A documented 200 becomes the domain's Cleared outcome with every field, JSON-able in
    its serialised form."""
    provider.enqueue(Response.json(200, documented_success()))
    result = make_client().confirm(EMAIL)
    assert result == Cleared(
        cleared_domains=("example.com",),
        clients_notified=("3704",),
        message="Verification caches cleared",
        provider_request_id="0b6c9a52-1f0e-4c1e-9a43-5c0f2b7e9d11",
        timestamp="2025-01-02T03:04:05.678Z",
    )
    assert json.loads(json.dumps(outcome_to_dict(result))) == {
        "type": "cleared",
        "cleared_domains": ["example.com"],
        "clients_notified": ["3704"],
        "message": "Verification caches cleared",
        "provider_request_id": "0b6c9a52-1f0e-4c1e-9a43-5c0f2b7e9d11",
        "timestamp": "2025-01-02T03:04:05.678Z",
    }


def test_confirm_sends_exactly_the_documented_request(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """One POST to {base}/email-verification/confirmed with the key header and approved "yes"."""
    result = make_client().confirm(EMAIL)
    assert result.cleared_domains == ("example.com",)
    [call] = provider.calls
    assert call["method"] == "POST"
    assert call["path"] == CONFIRM
    assert call["headers"]["x-api-key"] == KEY
    assert call["headers"]["content-type"] == "application/json"
    assert call["headers"]["user-agent"] == "verify-email-bot"
    assert call["json"] == {"email": EMAIL, "approved": "yes"}


@pytest.mark.parametrize("suffix", ["", "/", "//"])
def test_base_url_with_or_without_trailing_slash(
    provider: FakeProvider, make_client: MakeClient, suffix: str
) -> None:
    """The /api path of the base URL is kept whether or not it ends with a slash."""
    make_client(provider.url + suffix).confirm(EMAIL)
    assert [call["path"] for call in provider.calls] == [CONFIRM]


def test_default_answer_is_uuid_request_id_and_domain_of_email(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """The stand-in's default answer clears the email's domain and carries a uuid requestId."""
    result = make_client().confirm("bob@Sub.Example.ORG")
    assert result.cleared_domains == ("sub.example.org",)
    assert result.clients_notified == ("3704",)
    assert result.provider_request_id is not None and len(result.provider_request_id) == 36
    assert result.timestamp is not None and result.timestamp.endswith("Z")


def test_numeric_client_ids_become_strings_and_long_lists_are_kept(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """clientsNotified may hold numbers; every list item is kept, as a string."""
    domains = [f"d{i}.example" for i in range(500)]
    provider.cleared_domains = domains
    provider.clients_notified = [3704, "3705", 12]
    result = make_client().confirm(EMAIL)
    assert result.cleared_domains == tuple(domains)
    assert result.clients_notified == ("3704", "3705", "12")


def test_status_reads_the_read_only_endpoint(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """status() GETs /email-verification/status and parses domains (objects, as documented),
    loading and lastChecked."""
    provider.status_domains = ["a.example", "b.example"]
    status = make_client().status()
    assert isinstance(status, ProviderStatus)
    assert status.domains == ("a.example", "b.example")
    assert status.listed == 2
    assert status.loading is False
    assert status.last_checked is not None and status.last_checked.endswith("Z")
    [call] = provider.calls
    assert (call["method"], call["path"], call["json"]) == (
        "GET",
        "/api/email-verification/status",
        None,
    )
    assert call["headers"]["x-api-key"] == KEY


@pytest.mark.parametrize(
    ("items", "names"),
    [
        ([], ()),
        ([{"domain": "a.example"}, {"domainName": "b.example"}], ("a.example", "b.example")),
        ([{"name": "a.example"}, {"domain_name": "b.example"}], ("a.example", "b.example")),
        ([{"fqdn": "a.example"}, {"hostname": "b.example"}], ("a.example", "b.example")),
        ([{"domain": {"name": "a.example", "id": "dom_1"}}], ("a.example",)),
        (["a.example", {"domain": "b.example"}], ("a.example", "b.example")),
        # Shapes the reference does not describe: counted, not named, never an error.
        ([{"id": 12, "status": "pending"}, {"domain": None}, {"domain": 42}], ()),
        ([7, None, True, ["a.example"], {"domain": ""}], ()),
        ([{"domain": "a\u0000\n.example"}], ("a .example",)),
    ],
)
def test_status_accepts_any_item_shape(
    provider: FakeProvider, make_client: MakeClient, items: list[Any], names: tuple[str, ...]
) -> None:
    """data.domains is documented as array<object> with no fields named: status() takes a name
    from the usual keys, or a plain string, and counts every item whatever its shape."""
    provider.status_items = items
    status = make_client().status()
    assert status.domains == names
    assert status.listed == len(items)


@pytest.mark.parametrize("domains", [{"a.example": {}}, "a.example", 3])
def test_status_domains_not_a_list_is_a_wrong_shape(
    provider: FakeProvider, make_client: MakeClient, domains: object
) -> None:
    """A documented array that is not an array at all is a shape error, said as such."""
    provider.enqueue(
        Response.json(
            200,
            {"success": True, "requestId": "r-1", "data": {"domains": domains, "loading": False}},
        )
    )
    with pytest.raises(ProviderError) as caught:
        make_client().status()
    assert caught.value.kind == "bad_response"
    assert "domains is not a list" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# After the request was sent: never retried, outcome unknown


def test_timeout_leaves_the_outcome_unknown_and_is_not_retried(
    provider: FakeProvider, make_client: MakeClient, sleeps: list[float]
) -> None:
    """No answer within the timeout: kind timeout, outcome_unknown, exactly one call."""
    provider.enqueue(Response.hang(10))
    started = time.monotonic()
    error = confirm_error(make_client(timeout=0.3))
    assert time.monotonic() - started < 2
    assert error.kind == "timeout"
    assert error.outcome_unknown is True
    assert error.status is None
    assert "may or may not have acted" in error.message
    assert len(provider.calls) == 1
    assert sleeps == []


def test_connection_closed_after_the_request_was_read(
    provider: FakeProvider, make_client: MakeClient, sleeps: list[float]
) -> None:
    """The provider read the request and hung up: outcome_unknown, exactly one call."""
    provider.script("close_after_read")
    error = confirm_error(make_client())
    assert error.kind == "timeout"
    assert error.outcome_unknown is True
    assert error.message == (
        "The provider broke the connection without answering after the request was sent. "
        "It may or may not have acted: check before trying again."
    )
    assert len(provider.calls) == 1
    assert provider.calls[0]["json"] == {"email": EMAIL, "approved": "yes"}
    assert sleeps == []


def test_status_timeout_is_not_an_unknown_outcome(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """status() changes nothing, so its timeout does not leave anything unknown."""
    provider.enqueue(Response.hang(10))
    with pytest.raises(ProviderError) as info:
        make_client().status()
    assert (info.value.kind, info.value.outcome_unknown) == ("timeout", False)


# ---------------------------------------------------------------------------------------------
# Before anything was sent: retried


def test_connection_refused_is_retried_then_unreachable(
    make_client: MakeClient, sleeps: list[float]
) -> None:
    """Nothing listening: retried with 0.2 s then 0.4 s backoff, then unreachable, not unknown."""
    error = confirm_error(make_client(f"http://127.0.0.1:{free_port()}/api", max_attempts=3))
    assert error.kind == "unreachable"
    assert error.outcome_unknown is False
    assert error.status is None
    assert "after 3 attempts" in error.message
    assert "Nothing was sent" in error.message
    assert sleeps == [0.2, 0.4]


# ---------------------------------------------------------------------------------------------
# 429


def test_429_retried_after_retry_after_then_rate_limited(
    provider: FakeProvider, make_client: MakeClient, sleeps: list[float]
) -> None:
    """429s wait Retry-After (capped at max_retry_after) and stop after max_attempts."""
    last = Response.rate_limited("5")
    provider.enqueue(Response.rate_limited("2"), Response.rate_limited("120"), last)
    error = confirm_error(make_client(max_attempts=3, max_retry_after=30.0))
    assert sleeps == [2.0, 30.0]
    assert len(provider.calls) == 3
    assert error.kind == "rate_limited"
    assert error.status == 429
    assert error.code == "TOO_MANY_REQUESTS"
    assert error.message == "Too many requests, slow down"
    assert error.request_id == last.request_id
    assert error.outcome_unknown is False


def test_429_without_message_says_how_many_attempts(
    provider: FakeProvider, make_client: MakeClient, sleeps: list[float]
) -> None:
    """A bare 429 that never clears is explained with the number of attempts made."""
    provider.enqueue(*(Response(429, {}) for _ in range(4)))
    error = confirm_error(make_client(max_attempts=4))
    assert error.message == (
        "The provider is limiting how often we call it (429 Too Many Requests, 4 attempts)."
    )
    assert sleeps == [1.0, 1.0, 1.0]
    assert len(provider.calls) == 4


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("1", 1.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (None, 1.0),
        ("soon", 1.0),
        ("-3", 1.0),
        ("nan", 1.0),
        (_http_date(timedelta(hours=-1)), 0.0),
        (_http_date(timedelta(hours=1)), 30.0),
    ],
)
def test_429_then_success(
    provider: FakeProvider,
    make_client: MakeClient,
    sleeps: list[float],
    retry_after: str | None,
    expected: float,
) -> None:
    """After one 429 the retry succeeds; the wait follows Retry-After, or 1 s if unreadable."""
    provider.enqueue(Response.rate_limited(retry_after))
    result = make_client().confirm(EMAIL)
    assert result.cleared_domains == ("example.com",)
    assert sleeps == [expected]
    assert len(provider.calls) == 2


def test_retry_after_http_date_counts_from_now() -> None:
    """An HTTP-date Retry-After is the number of seconds from now until then."""
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert reading.parse_retry_after("Thu, 02 Jan 2025 03:04:15 GMT", now) == 10.0
    assert reading.parse_retry_after("Thu, 02 Jan 2025 03:04:00 GMT", now) == 0.0
    assert reading.parse_retry_after("garbage, 99", now) is None


def test_other_statuses_are_never_retried(
    provider: FakeProvider, make_client: MakeClient, sleeps: list[float]
) -> None:
    """A 503 is reported at once, not retried."""
    provider.script("unavailable", times=3)
    assert confirm_error(make_client()).kind == "server_error"
    assert len(provider.calls) == 1
    assert sleeps == []
