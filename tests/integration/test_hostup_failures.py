"""Reading the provider's untrusted answers: each error status and shape classified, text
cleaned and cut, 200s that are not the documented answer refused as bad responses, and
the API key never shown.

The provider client against the stand-in provider, over real HTTP on loopback; its other
concerns are in the other tests/integration/test_hostup_*.py, their shared fixtures in
tests/conftest.py and helpers in tests/provider_client.py.
"""

from __future__ import annotations

import json
import logging

import pytest
from provider_client import KEY, MakeClient, confirm_error, documented_success, free_port

from bot.domain.outcomes import ProviderFailed, outcome_to_dict
from bot.provider import reading
from bot.provider.client import HostupClient
from bot.standins.provider import ErrorShape, FakeProvider, Response

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
