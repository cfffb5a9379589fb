"""The provider client against the stand-in provider, over real HTTP on loopback."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.domain.outcomes import Cleared, ProviderFailed, outcome_to_dict
from bot.domain.views import ViewFailure
from bot.provider import reading
from bot.provider.client import HostupClient
from bot.provider.confirm import MAX_ATTEMPTS, ProviderStatus
from bot.provider.failures import ProviderError
from bot.provider.view import VIEW_CALLS, VIEW_TIMEOUT
from bot.standins.provider import MODES, VIEW_MODES, ErrorShape, FakeProvider, Response

KEY = "hk_live_9f8e7d6c5b4a-very-secret"
EMAIL = "alice@example.com"
CONFIRM = "/api/email-verification/confirmed"

MakeClient = Callable[..., HostupClient]


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(provider: FakeProvider, sleeps: list[float]) -> Iterator[MakeClient]:
    clients: list[HostupClient] = []

    def make(
        url: str | None = None, *, key: str = KEY, timeout: float = 0.3, **kwargs: Any
    ) -> HostupClient:
        client = HostupClient(
            url or provider.url,
            key,
            timeout,
            sleep=sleeps.append,
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def confirm_error(client: HostupClient, email: str = EMAIL) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        client.confirm(email)
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documented_success(**data: object) -> dict[str, object]:
    body: dict[str, object] = {
        "success": True,
        "message": "Verification caches cleared",
        "clearedDomains": ["example.com"],
        "clientsNotified": ["3704"],
    }
    body.update(data)
    return {
        "success": True,
        "timestamp": "2025-01-02T03:04:05.678Z",
        "requestId": "0b6c9a52-1f0e-4c1e-9a43-5c0f2b7e9d11",
        "data": body,
    }


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
# Error answers


STATUS_KINDS = [
    (400, "rejected"),
    (401, "auth"),
    (403, "auth"),
    (404, "rejected"),
    (409, "rejected"),
    (429, "rate_limited"),
    (500, "server_error"),
    (502, "server_error"),
    (503, "server_error"),
]


@pytest.mark.parametrize("shape", ["documented", "problem"])
@pytest.mark.parametrize(("status", "kind"), STATUS_KINDS)
def test_error_statuses_in_both_shapes(
    provider: FakeProvider,
    make_client: MakeClient,
    sleeps: list[float],
    status: int,
    kind: str,
    shape: ErrorShape,
) -> None:
    """Each error status maps to its kind with the provider's code, message and requestId."""
    message, code = f"Refused with {status}", f"CODE_{status}"
    scripted = Response.error(status, message, code=code, shape=shape)
    provider.enqueue(scripted)
    error = confirm_error(make_client(max_attempts=1))
    assert error.kind == kind
    assert error.status == status
    assert error.code == f"CODE_{status}"
    assert error.message == f"Refused with {status}"
    assert error.request_id == scripted.request_id and error.request_id is not None
    assert error.outcome_unknown is False
    assert error.outcome == ProviderFailed(
        kind=kind,
        status=status,
        code=f"CODE_{status}",
        message=f"Refused with {status}",
        provider_request_id=scripted.request_id,
        outcome_unknown=False,
    )
    assert str(error) == (
        f"Refused with {status} (HTTP {status}, code CODE_{status}, "
        f"request id {scripted.request_id})"
    )
    assert len(provider.calls) == 1
    assert sleeps == []


def test_documented_400_uses_message_over_error(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """The documented 400 shows "Email is required", not the generic "Bad Request"."""
    provider.script("bad_request")
    error = confirm_error(make_client())
    assert (error.kind, error.code, error.message) == (
        "rejected",
        "BAD_REQUEST",
        "Email is required",
    )


def test_problem_details_without_detail_fall_back_to_title(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """RFC 7807 with only a title: the title is the message."""
    body = {"type": "about:blank", "title": "Conflict", "status": 409, "requestId": "r-409"}
    provider.enqueue(Response.json(409, body, content_type="application/problem+json"))
    error = confirm_error(make_client())
    assert (error.kind, error.message, error.code, error.request_id) == (
        "rejected",
        "Conflict",
        None,
        "r-409",
    )


def test_error_fields_of_the_wrong_type_are_ignored(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """Lists and dicts are ignored, an int requestId becomes a string, and we explain instead."""
    body = {"code": ["X"], "message": {"en": "no"}, "detail": None, "requestId": 123}
    provider.enqueue(Response.json(400, body))
    error = confirm_error(make_client())
    assert error.kind == "rejected"
    assert error.code is None
    assert error.request_id == "123"
    assert error.message == "The provider refused the request (400 Bad Request) without saying why."


def test_long_and_control_character_text_is_cleaned(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """Provider strings lose control characters and are cut to 500 (message) / 200 (ids)."""
    body = {
        "message": "line\none\x00\x1b[31m" + "x" * 1000,
        "code": "C" * 300,
        "requestId": "r" * 300,
    }
    provider.enqueue(Response.json(400, body))
    error = confirm_error(make_client())
    assert error.message.startswith("line one [31mxxx")
    assert len(error.message) == 500 and error.message.endswith("…")
    assert error.code == "C" * 199 + "…"
    assert error.request_id == "r" * 199 + "…"


def test_html_error_page_is_explained(provider: FakeProvider, make_client: MakeClient) -> None:
    """A 502 HTML page from a proxy: server_error with our own sentence, request id from header."""
    page = Response.html(502)
    provider.enqueue(Response(502, page.body, page.content_type, {"X-Request-Id": "edge-77"}))
    error = confirm_error(make_client())
    assert error.kind == "server_error"
    assert error.status == 502
    assert error.message == (
        "The provider answered 502 Bad Gateway with an HTML page instead of JSON."
    )
    assert error.request_id == "edge-77"
    assert error.code is None
    assert error.outcome_unknown is False


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            Response(500, "oops", "text/plain"),
            "The provider answered 500 Internal Server Error with something that is not JSON.",
        ),
        (Response(503, b""), "The provider answered 503 Service Unavailable with an empty body."),
        (
            Response(404, {}),
            "The provider does not know this address (404 Not Found); HOSTUP_API_URL may be wrong.",
        ),
        (Response(401, {}), "The provider refused the API key (401 Unauthorized)."),
    ],
)
def test_error_answers_without_a_message_get_our_sentence(
    provider: FakeProvider, make_client: MakeClient, response: Response, message: str
) -> None:
    """Error answers that do not explain themselves get a plain sentence from us."""
    provider.enqueue(response)
    assert confirm_error(make_client()).message == message


def test_redirect_is_a_bad_response(provider: FakeProvider, make_client: MakeClient) -> None:
    """A redirect is not followed: bad_response naming the target, one call."""
    provider.enqueue(Response(301, b"", headers={"Location": "https://elsewhere.example/api"}))
    error = confirm_error(make_client())
    assert error.kind == "bad_response"
    assert error.status == 301
    assert "https://elsewhere.example/api" in error.message
    assert len(provider.calls) == 1


# ---------------------------------------------------------------------------------------------
# 200s that are not the documented answer


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            Response.wrong_shape(),
            "The provider answered 200 OK but did not report success.",
        ),
        (
            Response.not_successful("Nothing to clear"),
            "The provider answered 200 OK but did not report success: Nothing to clear",
        ),
        (
            Response.json(200, {"success": True, "requestId": "r1"}),
            "The provider answered 200 OK but did not report success.",
        ),
        (
            Response.json(200, documented_success(success=False, message="Cache busy")),
            "The provider answered 200 OK but did not report success: Cache busy",
        ),
        (
            Response.json(200, documented_success(clearedDomains="example.com")),
            "The provider answered 200 OK but not in the documented shape: "
            "clearedDomains is not a list of names.",
        ),
        (
            Response.json(200, documented_success(clearedDomains=[7])),
            "The provider answered 200 OK but not in the documented shape: "
            "clearedDomains is not a list of names.",
        ),
        (
            Response.json(200, documented_success(clientsNotified=[1.5])),
            "The provider answered 200 OK but not in the documented shape: "
            "clientsNotified is not a list of ids.",
        ),
        (
            Response.json(200, documented_success(clientsNotified=[True])),
            "The provider answered 200 OK but not in the documented shape: "
            "clientsNotified is not a list of ids.",
        ),
        (
            Response.json(200, documented_success(clientsNotified=None)),
            "The provider answered 200 OK but not in the documented shape: "
            "clientsNotified is not a list of ids.",
        ),
        (
            Response.json(200, [1, 2]),
            "The provider answered 200 OK with JSON that is not an object.",
        ),
        (
            Response.html(200),
            "The provider answered 200 OK with an HTML page instead of JSON.",
        ),
        (
            Response(200, "[" * 100_000),
            "The provider answered 200 OK with something that is not JSON.",
        ),
    ],
)
def test_200_that_is_not_the_documented_answer_is_a_bad_response(
    provider: FakeProvider, make_client: MakeClient, response: Response, message: str
) -> None:
    """Wrong shape, success false, wrong list types, HTML or junk: bad_response, never success."""
    provider.enqueue(response)
    error = confirm_error(make_client())
    assert error.kind == "bad_response"
    assert error.status == 200
    assert error.message == message
    assert error.outcome_unknown is False
    assert len(provider.calls) == 1


def test_not_successful_keeps_the_request_id(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """A 200 with success false still carries the provider's requestId for support."""
    scripted = Response.not_successful()
    provider.enqueue(scripted)
    assert confirm_error(make_client()).request_id == scripted.request_id


def test_oversized_answer_is_a_bad_response(
    provider: FakeProvider, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer over the size cap is refused rather than read into memory."""
    monkeypatch.setattr(reading, "MAX_BODY_BYTES", 1000)
    provider.cleared_domains = [f"d{i}.example" for i in range(200)]
    error = confirm_error(make_client())
    assert error.kind == "bad_response"
    assert error.message == "The provider answered 200 OK with a body larger than 1000 bytes."


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


# ---------------------------------------------------------------------------------------------
# The API key stays secret


def test_api_key_never_appears_in_errors_or_logs(
    provider: FakeProvider,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever fails (even a provider echoing the key), str, repr, to_dict and logs lack it."""
    caplog.set_level(logging.DEBUG)
    client = make_client()
    provider.enqueue(
        Response.error(401, f"Key {KEY} is not valid", code=KEY, shape="problem"),
        Response.html(502),
        Response.hang(10),
        Response.close_after_read(),
        *(Response.rate_limited("0") for _ in range(3)),
    )
    errors = [confirm_error(client) for _ in range(5)]
    errors.append(confirm_error(make_client(key="wrong-key")))
    errors.append(confirm_error(make_client(f"http://127.0.0.1:{free_port()}/api")))
    assert [e.kind for e in errors] == [
        "auth",
        "server_error",
        "timeout",
        "timeout",
        "rate_limited",
        "auth",
        "unreachable",
    ]
    assert errors[0].message == "Key [redacted] is not valid"
    for error in errors:
        serialised = json.dumps(outcome_to_dict(error.outcome))
        for text in (str(error), repr(error), serialised, str(error.args)):
            assert KEY not in text
    assert KEY not in repr(client)
    assert caplog.records, "the client logs its attempts"
    assert KEY not in caplog.text


def test_api_key_with_a_line_break_is_refused_without_echoing_it() -> None:
    """A key that cannot be a header value is refused up front, and the key is not repeated."""
    with pytest.raises(ValueError) as info:
        HostupClient("http://127.0.0.1:1/api", "abc\ndef", 1.0)
    assert "abc" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# The stand-in itself


def test_stand_in_refuses_a_wrong_key_without_using_the_script(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """A wrong X-API-Key gets 401 problem details; the scripted answer waits for a good key."""
    provider.script("server_error")
    error = confirm_error(make_client(key="nope"))
    assert (error.kind, error.status, error.message) == ("auth", 401, "Invalid or missing API key")
    assert confirm_error(make_client()).kind == "server_error"
    assert make_client().confirm(EMAIL).cleared_domains == ("example.com",)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_stand_in_mode_fails_the_client(
    provider: FakeProvider, make_client: MakeClient, mode: str
) -> None:
    """Every named mode makes the client raise, and the next call succeeds again."""
    provider.script(mode, times=3)
    confirm_error(make_client())
    provider.reset()
    assert make_client().confirm(EMAIL).cleared_domains == ("example.com",)


def test_stand_in_hang_does_not_block_other_requests_or_stop(make_client: MakeClient) -> None:
    """A hanging answer neither holds up a concurrent request nor makes stop() wait for it."""
    fake = FakeProvider(api_key=KEY).start()
    try:
        fake.enqueue(Response.hang(30))
        slow = make_client(fake.url, timeout=30)
        outcome: list[ProviderError] = []

        def call_slow() -> None:
            try:
                slow.confirm(EMAIL)
            except ProviderError as error:
                outcome.append(error)

        thread = threading.Thread(target=call_slow)
        thread.start()
        deadline = time.monotonic() + 5
        while not fake.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        assert make_client(fake.url).confirm(EMAIL).cleared_domains == ("example.com",)
        assert time.monotonic() - started < 1
    finally:
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 2
    thread.join(timeout=5)
    assert not thread.is_alive()
    [error] = outcome
    assert (error.kind, error.outcome_unknown) == ("timeout", True)


def test_stand_in_delay_applies_to_every_answer(
    provider: FakeProvider, make_client: MakeClient
) -> None:
    """delay holds every answer back by that many seconds."""
    provider.delay = 0.2
    started = time.monotonic()
    make_client(timeout=2).confirm(EMAIL)
    assert time.monotonic() - started >= 0.2


def test_stand_in_unknown_mode_is_refused(provider: FakeProvider) -> None:
    """script() names the known modes when given an unknown one."""
    with pytest.raises(ValueError, match="known: bad_request"):
        provider.script("explode")


def test_a_trickled_answer_is_cut_off_at_the_deadline() -> None:
    """httpx times each read, not the whole answer; a provider that trickles its body is cut
    off after twice the timeout (what max_duration promises), as an unknown outcome."""
    release = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n"
            )
            # 8 bytes at a time, each well within the read timeout, until the client hangs up.
            while not release.wait(0.05):
                try:
                    conn.sendall(b"        ")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = HostupClient(
        f"http://127.0.0.1:{server.getsockname()[1]}/api", "k", 0.3, max_attempts=1
    )
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            client.confirm("alice@example.com")
    finally:
        elapsed = time.monotonic() - started
        release.set()
        client.close()
        server.close()
        thread.join(timeout=5)
    assert info.value.outcome_unknown is True
    assert elapsed <= client.max_duration + 0.5


# ---------------------------------------------------------------------------------------------
# The v2 per-domain view


def test_view_finds_the_id_by_name_then_reads_the_view(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """``view`` lists by name for the id, then reads that id's view: two GETs with the key as a
    Bearer token (and not as X-API-Key); every documented field is read."""
    provider.set_domain(
        "example.com",
        status="pending",
        recipient="owner@example.com",
        expires_at="2026-12-10T00:00:00.000Z",
        can_resend=True,
    )
    view = make_client().view("example.com")
    assert (view.status, view.recipient, view.expires_at, view.can_resend) == (
        "pending",
        "owner@example.com",
        "2026-12-10T00:00:00.000Z",
        True,
    )
    assert (view.is_verified, view.is_suspended, view.method) == (False, False, "email")
    assert view.domain_id == provider.domain("example.com").id
    calls = provider.view_calls
    assert [c["path"] for c in calls] == [
        "/api/v2/domains",
        f"/api/v2/domains/{view.domain_id}/email-verification",
    ]
    assert calls[0]["query"] == {"name": ["example.com"]}
    for call in calls:
        assert call["headers"]["authorization"] == f"Bearer {KEY}"
        assert "x-api-key" not in call["headers"]
    assert provider.calls == []  # nothing reached the v1 API


def test_view_with_a_known_id_is_one_call_and_the_id_is_path_escaped(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """A known id skips the list; an id with a slash or a ``?`` cannot change the path."""
    provider.enqueue_view(Response.json(200, {"status": "verified", "isVerified": True}))
    view = make_client().view("example.com", "dom_../x?y")
    assert view.verified and view.domain_id == "dom_../x?y"
    [call] = provider.view_calls
    assert call["path"] == "/api/v2/domains/dom_..%2Fx%3Fy/email-verification"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "pending"},  # every other field missing
        {"data": {"status": "pending"}},  # in an envelope, as the v1 API answers
        {
            "status": "pending",
            "isVerified": "no",
            "isSuspended": 1,
            "verification": "email",
            "actions": {"canResend": True},
            "reason": ["x"],
        },  # fields of the wrong type are left out
        {"status": "Pending\u0000\n", "reason": "a\x1bb"},  # control characters dropped
    ],
)
def test_view_reads_any_shape_with_a_status_leniently(
    make_client: MakeClient, provider: FakeProvider, body: dict[str, Any]
) -> None:
    provider.enqueue_view(Response.json(200, body))
    view = make_client().view("example.com", "dom_1")
    assert view.status == "pending"
    assert view.reason in (None, "a b")
    assert view.is_verified is None or isinstance(view.is_verified, bool)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (Response.json(200, {"verified": True}), "bad_response"),  # no status
        (Response.json(200, ["pending"]), "bad_response"),
        (Response.html(200), "bad_response"),
        (Response(401, {"code": "unauthorized"}, "application/problem+json"), "no_scope"),
        (Response(403, {"code": "forbidden"}, "application/problem+json"), "no_scope"),
        (Response(404, {"code": "not_found"}, "application/problem+json"), "not_found"),
        (Response(429, {}, "application/problem+json", {"Retry-After": "60"}), "rate_limited"),
        (Response(503, {}, "application/problem+json"), "server_error"),
        (Response(302, b"", "text/html", {"Location": "https://x"}), "bad_response"),
        (Response.close_after_read(), "timeout"),
        (Response.hang(5), "timeout"),
    ],
)
def test_view_failures_are_typed_and_never_retried(
    make_client: MakeClient,
    provider: FakeProvider,
    sleeps: list[float],
    answer: Response,
    kind: str,
) -> None:
    """Each way the view can fail is one ViewFailure of its kind, after a single attempt (no
    Retry-After wait: a reading must stay quick)."""
    provider.enqueue_view(answer)
    with pytest.raises(ViewFailure) as failed:
        make_client().view("example.com", "dom_1")
    assert failed.value.unavailable.kind == kind
    assert len(provider.view_calls) == 1 and sleeps == []
    assert KEY not in failed.value.unavailable.message


def test_view_of_a_domain_not_on_the_account_is_not_found(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """The list has no item of that name (or only others): not_found, without a second call."""
    provider.unknown_domains.add("example.com")
    with pytest.raises(ViewFailure) as failed:
        make_client().view("example.com")
    assert failed.value.unavailable.kind == "not_found"
    provider.enqueue_view(Response.json(200, {"data": [{"id": "dom_9", "name": "other.org"}]}))
    with pytest.raises(ViewFailure):
        make_client().view("example.com")
    assert len(provider.view_calls) == 2


def test_view_timeout_is_capped_and_bounds_the_executing_time(make_client: MakeClient) -> None:
    """A reading's calls time out after at most VIEW_TIMEOUT, and max_duration (the
    interrupted-call sweep's bound) covers the confirm call and a full reading after it."""
    client = make_client(timeout=60)
    assert client.view_timeout == VIEW_TIMEOUT
    assert client.max_view_duration == VIEW_CALLS * 2 * VIEW_TIMEOUT
    quick = make_client(timeout=0.3)
    assert quick.view_timeout == 0.3
    assert quick.max_duration > quick.max_view_duration > 0


def test_view_access_probes_the_list_once(make_client: MakeClient, provider: FakeProvider) -> None:
    """``view_access`` is None for a key with read:domains, else says why, after one GET."""
    client = make_client()
    assert client.view_access() is None
    provider.scopes.clear()
    refused = client.view_access()
    assert refused is not None and refused.kind == "no_scope" and "read:domains" in refused.message
    assert [c["query"] for c in provider.view_calls] == [{"limit": ["1"]}, {"limit": ["1"]}]


# ---------------------------------------------------------------------------------------------
# The metrics hook: each exchange told once, with what the client made of it


@pytest.mark.parametrize(
    ("answers", "told"),
    [
        ([], ["ok"]),
        ([Response.html(200)], ["bad_response"]),
        ([Response.not_successful()], ["bad_response"]),
        ([Response.wrong_shape()], ["bad_response"]),
        ([Response.json(200, "[1, 2]")], ["bad_response"]),
        ([Response.error(400, "Email is required")], ["rejected"]),
        ([Response.html(502)], ["server_error"]),
        ([Response.rate_limited("0"), Response(action="normal")], ["rate_limited", "ok"]),
        ([Response.hang(5)], ["timeout"]),
    ],
)
def test_confirm_tells_each_exchange_once_with_the_outcome_it_made_of_it(
    provider: FakeProvider, make_client: MakeClient, answers: list[Response], told: list[str]
) -> None:
    """The metrics hook hears of every HTTP exchange exactly once, with ``ok`` only when the
    answer became a result: a 200 the client refuses is told as the failure it raised."""
    heard: list[tuple[str, str, float]] = []
    provider.enqueue(*answers)
    client = make_client(observe=lambda *call: heard.append(call))
    try:
        client.confirm(EMAIL)
    except ProviderError as error:
        assert error.kind == told[-1]
    assert [(endpoint, outcome) for endpoint, outcome, _ in heard] == [
        ("confirm", outcome) for outcome in told
    ]
    assert all(seconds >= 0 for _, _, seconds in heard)


def test_oversized_and_unreachable_exchanges_are_told_as_such(
    provider: FakeProvider, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 too large to read is told as bad_response; each attempt at a provider that cannot
    be reached is told as unreachable."""
    heard: list[str] = []
    monkeypatch.setattr(reading, "MAX_BODY_BYTES", 1000)
    provider.cleared_domains = [f"d{i}.example" for i in range(200)]
    confirm_error(make_client(observe=lambda _e, outcome, _s: heard.append(outcome)))
    assert heard == ["bad_response"]
    heard.clear()
    unreachable = make_client(
        f"http://127.0.0.1:{free_port()}/api", observe=lambda _e, outcome, _s: heard.append(outcome)
    )
    assert confirm_error(unreachable).kind == "unreachable"
    assert heard == ["unreachable"] * MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("answer", "told"),
    [
        (None, [("domains", "ok"), ("view", "ok")]),
        (Response.html(200), [("domains", "bad_response")]),
        (
            Response.json(200, {"data": [{"id": "x", "name": "other.org"}]}),
            [("domains", "not_found")],
        ),
        (
            Response(401, {"code": "unauthorized"}, "application/problem+json"),
            [("domains", "no_scope")],
        ),
    ],
)
def test_view_tells_each_exchange_once_with_the_outcome_it_made_of_it(
    provider: FakeProvider,
    make_client: MakeClient,
    answer: Response | None,
    told: list[tuple[str, str]],
) -> None:
    """A reading's exchanges are told with the reading's own kinds: an HTML page where the
    list of domains should be is bad_response (not "no such domain", and not ok)."""
    heard: list[tuple[str, str]] = []
    if answer is not None:
        provider.enqueue_view(answer)
    client = make_client(observe=lambda endpoint, outcome, _s: heard.append((endpoint, outcome)))
    try:
        client.view("example.com")
    except ViewFailure as failure:
        assert failure.unavailable.kind == told[-1][1]
    assert heard == told


def test_readings_of_one_domain_under_way_share_one_list_call(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """Pins the sharing of the domain's id between readings under way at once in one process
    (a read-back right after an approval, while the request's lookup is still listing): one
    list call serves both, then each reads the view. Nothing is kept once they are over: the
    next reading lists again."""
    client = make_client(timeout=2)
    provider.enqueue_view(Response(action="normal", delay=0.5))  # the list, answered late
    first: list[Any] = []
    thread = threading.Thread(target=lambda: first.append(client.view("example.com")))
    thread.start()
    provider.wait_for_view_calls(1)  # the first reading's list call is under way
    second = client.view("Example.com.")
    thread.join(timeout=10)
    domain_id = provider.domain("example.com").id
    assert first[0].domain_id == second.domain_id == domain_id
    view_path = f"/api/v2/domains/{domain_id}/email-verification"
    assert [c["path"] for c in provider.view_calls] == ["/api/v2/domains", view_path, view_path]
    client.view("example.com")
    assert [c["path"] for c in provider.view_calls][3:] == ["/api/v2/domains", view_path]


def test_a_shared_list_call_that_fails_fails_both_readings(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """Pins that a reading which joined another's list call takes its failure too, without a
    list call of its own (waiting, then listing again, could outlast a reading's bound)."""
    client = make_client(timeout=2)
    failing = VIEW_MODES["server_error"]()
    provider.enqueue_view(dataclasses.replace(failing, delay=0.5))
    first: list[ViewFailure] = []

    def read() -> None:
        try:
            client.view("example.com")
        except ViewFailure as failure:
            first.append(failure)

    thread = threading.Thread(target=read)
    thread.start()
    provider.wait_for_view_calls(1)
    with pytest.raises(ViewFailure) as second:
        client.view("example.com")
    thread.join(timeout=10)
    assert first[0].unavailable.kind == second.value.unavailable.kind == "server_error"
    assert len(provider.view_calls) == 1


def test_a_failed_view_call_carries_the_id_the_list_found(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """Pins that a reading whose view call fails keeps the id its list call found (so the next
    reading is one call), but not when the list failed, nor when the view says 404 (an id the
    provider does not know is not worth keeping)."""
    client = make_client()
    domain_id = provider.domain("example.com").id
    normal = Response(action="normal")
    cases = [
        ((normal, VIEW_MODES["server_error"]()), "server_error", domain_id),
        ((normal, Response.json(200, {"verified": True})), "bad_response", domain_id),
        ((normal, VIEW_MODES["hang"]()), "timeout", domain_id),
        ((normal, VIEW_MODES["not_found"]()), "not_found", None),
        ((VIEW_MODES["server_error"](),), "server_error", None),
    ]
    for answers, kind, kept in cases:
        provider.enqueue_view(*answers)
        with pytest.raises(ViewFailure) as failed:
            client.view("example.com")
        assert (failed.value.unavailable.kind, failed.value.unavailable.domain_id) == (kind, kept)


@pytest.mark.parametrize(
    "pages",
    [{}, {"hasMore": False, "nextCursor": None}, {"hasMore": True, "nextCursor": "cur_2"}],
)
def test_the_list_is_read_with_or_without_its_pagination_fields(
    make_client: MakeClient, provider: FakeProvider, pages: dict[str, Any]
) -> None:
    """Pins that the list is read leniently around its cursor pagination: with ``hasMore`` and
    ``nextCursor`` (as the reference's cursor-paginated lists answer) or without them, the id
    is taken from the first page (filtered by exact name) and no further page is asked for."""
    domain_id = provider.domain("example.com").id
    listed = {"data": [{"id": domain_id, "name": "example.com"}], **pages}
    provider.enqueue_view(Response.json(200, listed))
    assert make_client().view("example.com").domain_id == domain_id
    assert [c["path"] for c in provider.view_calls][1:] == [
        f"/api/v2/domains/{domain_id}/email-verification"
    ]


def v2_get(provider: FakeProvider, path: str, **params: str) -> Any:
    answer = httpx.get(
        f"{provider.url}/v2/{path}", params=params, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert answer.status_code == 200
    return answer.json()


def test_the_stand_in_list_is_a_cursor_page_and_leaves_service_status_alone(
    provider: FakeProvider,
) -> None:
    """Pins the stand-in's list as the reference documents it: a cursor-paginated answer
    (``hasMore``, ``nextCursor``), and a ``serviceStatus`` the view's ``isSuspended`` does not
    decide (the reference ties them nowhere)."""
    provider.set_domain("example.com", is_suspended=True)
    listed = v2_get(provider, "domains", name="example.com")
    assert (listed["hasMore"], listed["nextCursor"]) == (False, None)
    [item] = listed["data"]
    assert item["serviceStatus"] == "active"
    assert v2_get(provider, f"domains/{item['id']}/email-verification")["isSuspended"] is True


def test_the_stand_in_drops_the_reason_of_a_domain_that_turns_verified(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """Pins the stand-in's reason text as the reference words it: pending (and expired,
    suspended) states carry one; verified means no attention item, so no reason, unless a
    test gives one; the confirm turning a domain verified drops it too."""
    client = make_client()
    assert client.view("example.com").reason  # pending, with its reason
    provider.set_domain("example.com", status="verified")
    assert client.view("example.com").reason is None
    provider.set_domain("example.com", status="verified", reason="Verified by support.")
    assert client.view("example.com").reason == "Verified by support."
    provider.status_after_confirm = "verified"
    assert client.view("b.example").reason
    client.confirm("alice@b.example")
    assert client.view("b.example").reason is None
