"""The resend of the verification email (the provider's v2 action): the id found as the view
finds it, the language passed through, every documented error shape typed, the retries that are
safe (and only those), a POST that may have acted left unknown, the 200 read as untrusted, and
the stand-in's model of the action as the reference documents it.

The provider client against the stand-in provider, over real HTTP on loopback; its shared
fixtures are in tests/conftest.py and helpers in tests/provider_client.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from provider_client import KEY, MakeClient, free_port

from bot.domain.outcomes import Resent
from bot.provider.client import longest_call
from bot.provider.failures import ProviderError
from bot.provider.view import VIEW_CALLS, VIEW_TIMEOUT
from bot.standins.provider import (
    RESEND_BLOCKED_CODE,
    RESEND_BLOCKED_STATUS,
    RESEND_MODES,
    FakeProvider,
    Response,
    problem,
    rate_limited_problem,
)

DOMAIN = "example.com"


def resendable(provider: FakeProvider, name: str = DOMAIN, **fields: Any) -> str:
    """Make ``name`` a pending domain whose view allows a resend; its id."""
    return provider.set_domain(name, can_resend=True, recipient=f"owner@{name}", **fields).id


def agreeing(asked: list[float]) -> Callable[[float], bool]:
    """A renew that records each wait it is asked for and agrees to it."""

    def renew(seconds: float) -> bool:
        asked.append(seconds)
        return True

    return renew


def resend_error(client: Any, domain: str = DOMAIN, **kwargs: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        client.resend(domain, language=kwargs.pop("language", "en"), **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------------
# Success


def test_resend_finds_the_id_then_posts_the_action_in_the_language_asked(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """The id comes from the list by name; the action is one POST with ``lang`` as asked, the
    key as a Bearer token only, no body; the documented 200 becomes a Resent."""
    domain_id = resendable(provider)
    resent = make_client().resend(DOMAIN, language="sv")
    assert isinstance(resent, Resent)
    assert (resent.recipient, resent.domain, resent.domain_id, resent.method) == (
        f"owner@{DOMAIN}",
        DOMAIN,
        domain_id,
        "email",
    )
    assert resent.sent_at.endswith("Z")
    [listing] = provider.view_calls
    assert (listing["path"], listing["query"]) == ("/api/v2/domains", {"name": [DOMAIN]})
    [call] = provider.resend_calls
    assert call["method"] == "POST"
    assert call["path"] == f"/api/v2/domains/{domain_id}/email-verification/actions/resend"
    assert call["query"] == {"lang": ["sv"]}
    assert call["body"] == b""
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in call["headers"]
    assert [(s["domain"], s["lang"]) for s in provider.resends(DOMAIN)] == [(DOMAIN, "sv")]
    assert provider.calls == []  # nothing reached the v1 API


def test_english_is_passed_through_too_and_a_known_id_skips_the_list(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """``language="en"`` is sent as ``lang=en`` (not left to the default); a known id is used
    as it is, path-escaped, without listing."""
    domain_id = resendable(provider)
    make_client().resend(DOMAIN, language="en", domain_id=domain_id)
    assert provider.view_calls == []
    [call] = provider.resend_calls
    assert call["query"] == {"lang": ["en"]}
    provider.enqueue_resend(Response(200, _documented()))
    make_client().resend(DOMAIN, language="en", domain_id="dom_../x?y")
    assert provider.resend_calls[-1]["path"] == (
        "/api/v2/domains/dom_..%2Fx%3Fy/email-verification/actions/resend"
    )


def test_a_language_the_action_does_not_document_is_refused_before_any_call(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """Only en and sv: anything else is the caller's bug, and nothing is sent."""
    resendable(provider)
    with pytest.raises(ValueError, match="en, sv"):
        make_client().resend(DOMAIN, language="de")
    assert provider.view_calls == [] and provider.resend_calls == []


# ---------------------------------------------------------------------------------------------
# Refused: nothing was sent


def test_a_domain_the_provider_does_not_list_is_rejected_and_nothing_sent(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """Not in the list filtered by name: ``rejected`` (nothing done) saying so; no POST."""
    provider.unknown_domains.add(DOMAIN)
    error = resend_error(make_client())
    assert (error.kind, error.outcome_unknown, error.outcome.nothing_done) == (
        "rejected",
        False,
        True,
    )
    assert error.message == (
        f"The provider does not list {DOMAIN} on this account, so no verification email was sent."
    )
    assert provider.resend_calls == []


def test_can_resend_false_is_the_gates_refusal_with_the_views_reason(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """A domain whose view says canResend false: the stand-in's 409 problem, read as
    ``rejected`` with its code, its request id, and the view's reason as the detail; no email."""
    provider.set_domain(DOMAIN, can_resend=False, resend_reason="Verification is not pending.")
    error = resend_error(make_client())
    assert (error.kind, error.status, error.code) == (
        "rejected",
        RESEND_BLOCKED_STATUS,
        RESEND_BLOCKED_CODE,
    )
    assert error.message == "Resend blocked: Verification is not pending."
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert error.outcome.nothing_done
    assert len(provider.resend_calls) == 1 and provider.resends() == []


@pytest.mark.parametrize(
    ("mode", "kind", "status", "code", "words"),
    [
        ("invalid_request", "rejected", 400, "invalid_request", "Validation failed: "),
        ("unauthorized", "auth", 401, "unauthorized", "Authentication required."),
        ("forbidden", "auth", 403, "forbidden", "the resend needs the write:domains scope"),
        ("not_found", "rejected", 404, "not_found", "No domain matching the given ID"),
        ("blocked", "rejected", 409, RESEND_BLOCKED_CODE, "Not available for this domain."),
    ],
)
def test_each_documented_refusal_is_typed_with_its_code_and_request_id(
    make_client: MakeClient,
    provider: FakeProvider,
    sleeps: list[float],
    mode: str,
    kind: str,
    status: int,
    code: str,
    words: str,
) -> None:
    """A 4xx problem document: its kind, status, ``code`` and ``requestId`` kept, its title and
    detail the message; never retried, nothing done."""
    resendable(provider)
    scripted = RESEND_MODES[mode]()
    provider.enqueue_resend(scripted)
    error = resend_error(make_client())
    assert (error.kind, error.status, error.code) == (kind, status, code)
    assert words in error.message
    assert error.request_id == scripted.request_id
    assert error.outcome.nothing_done and not error.outcome_unknown
    assert len(provider.resend_calls) == 1 and sleeps == [] and provider.resends() == []


def test_field_level_errors_of_an_invalid_request_are_in_the_message(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """``errors[]`` (pointer: detail) follow the title and detail, at most three, then a count;
    an unexpected 4xx such as 422 is rejected all the same."""
    resendable(provider)
    errors = [{"pointer": f"/f{i}", "detail": f"bad {i}", "code": "x"} for i in range(5)]
    provider.enqueue_resend(
        problem(
            400, "invalid_request", "The request failed.", title="Validation failed", errors=errors
        ),
        problem(422, "unprocessable", "Cannot do that now."),
    )
    first = resend_error(make_client())
    assert first.message == (
        "Validation failed: The request failed. (/f0: bad 0; /f1: bad 1; /f2: bad 2; 2 more)"
    )
    second = resend_error(make_client())
    assert (second.kind, second.status, second.message) == (
        "rejected",
        422,
        "Unprocessable Entity: Cannot do that now.",
    )


def test_the_stand_in_validates_lang_and_the_body_as_documented(provider: FakeProvider) -> None:
    """The stand-in's action: ``lang`` other than en or sv, or a body other than none or
    ``{}``, is a 400 invalid_request with a field-level error; ``{}`` is accepted; without the
    write:domains scope it is 403; an id it does not know is 404."""
    domain_id = resendable(provider)
    url = f"{provider.url}/v2/domains/{domain_id}/email-verification/actions/resend"
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(headers=auth) as http:
        bad_lang = http.post(url, params={"lang": "de"})
        bad_body = http.post(url, json={"email": "x@example.com"})
        empty = http.post(url, json={})
        unknown = http.post(url.replace(domain_id, "dom_nope"))
        provider.scopes.discard("write:domains")
        no_scope = http.post(url)
    assert bad_lang.status_code == 400
    assert bad_lang.json()["code"] == "invalid_request"
    assert bad_lang.json()["errors"][0]["pointer"] == "/lang"
    assert bad_body.status_code == 400 and bad_body.json()["errors"][0]["pointer"] == "/"
    assert empty.status_code == 200 and empty.json()["ok"] is True
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (no_scope.status_code, no_scope.json()["code"]) == (403, "forbidden")
    assert [s["lang"] for s in provider.resends()] == [None]  # only the {} one sent an email


# ---------------------------------------------------------------------------------------------
# 429: retried after Retry-After, when renew agrees


def test_429_is_retried_after_retry_after_once_renew_agrees(
    make_client: MakeClient, provider: FakeProvider, sleeps: list[float]
) -> None:
    """A 429 (the documented rate_limited problem with Retry-After and X-RateLimit headers)
    waits Retry-After, capped, after asking renew for that long; then the resend succeeds."""
    resendable(provider)
    provider.enqueue_resend(rate_limited_problem("2"), rate_limited_problem("120"))
    asked: list[float] = []
    resent = make_client(max_attempts=3, max_retry_after=30.0).resend(
        DOMAIN, language="sv", renew=agreeing(asked)
    )
    assert resent.recipient == f"owner@{DOMAIN}"
    assert asked == [2.0, 30.0] and sleeps == [2.0, 30.0]
    assert len(provider.resend_calls) == 3 and len(provider.resends()) == 1


def test_429_stops_when_renew_says_no_or_the_attempts_run_out(
    make_client: MakeClient, provider: FakeProvider, sleeps: list[float]
) -> None:
    """renew saying no ends the attempts at once: ``rate_limited``, nothing done; so does the
    last attempt's 429."""
    resendable(provider)
    last = rate_limited_problem("1")
    provider.enqueue_resend(last)
    error = resend_error(make_client(), renew=lambda s: False)
    assert (error.kind, error.status, error.code) == ("rate_limited", 429, "rate_limited")
    assert error.message == "Rate limit exceeded: Rate limit exceeded. Please try again later."
    assert error.request_id == last.request_id
    assert error.outcome.nothing_done and sleeps == []
    provider.script_resend("rate_limited", times=2)
    error = resend_error(make_client(max_attempts=2))
    assert error.kind == "rate_limited" and sleeps == [30.0]
    assert provider.resends() == []


def test_a_connection_that_never_reached_the_provider_is_retried_when_renew_agrees(
    make_client: MakeClient, sleeps: list[float]
) -> None:
    """Nothing listening: retried with the confirm client's backoff, renew asked each time,
    then ``unreachable`` (nothing was sent)."""
    asked: list[float] = []
    client = make_client(f"http://127.0.0.1:{free_port()}/api", max_attempts=3)
    error = resend_error(client, domain_id="dom_1", renew=agreeing(asked))
    assert (error.kind, error.outcome_unknown) == ("unreachable", False)
    assert asked == [0.2, 0.4] and sleeps == [0.2, 0.4]


# ---------------------------------------------------------------------------------------------
# After the POST may have reached the provider: unknown, never retried


@pytest.mark.parametrize("mode", ["server_error", "bad_gateway"])
def test_a_5xx_leaves_the_outcome_unknown_and_is_not_retried(
    make_client: MakeClient, provider: FakeProvider, sleeps: list[float], mode: str
) -> None:
    """500 (internal_error problem) or a proxy's 502 page: ``server_error``, outcome unknown,
    one call."""
    resendable(provider)
    provider.script_resend(mode)
    error = resend_error(make_client(), renew=lambda s: True)
    assert (error.kind, error.outcome_unknown) == ("server_error", True)
    assert "may or may not have sent the email" in error.message
    if mode == "server_error":
        assert error.code == "internal_error"
        assert error.message.startswith("Internal server error: An unexpected error occurred.")
    assert len(provider.resend_calls) == 1 and sleeps == []


@pytest.mark.parametrize("mode", ["hang", "close_after_read"])
def test_no_answer_after_sending_is_unknown_and_the_email_was_sent(
    make_client: MakeClient, provider: FakeProvider, sleeps: list[float], mode: str
) -> None:
    """A timeout or a hang-up after the request was sent: ``timeout``, outcome unknown, not
    retried; the stand-in sent the email all the same (its answer was lost)."""
    resendable(provider)
    provider.enqueue_resend(Response.hang(5) if mode == "hang" else Response.close_after_read())
    error = resend_error(make_client(timeout=0.3), renew=lambda s: True)
    assert (error.kind, error.outcome_unknown) == ("timeout", True)
    assert len(provider.resend_calls) == 1 and sleeps == []
    assert len(provider.resends(DOMAIN)) == 1


def _documented(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ok": True,
        "domain": {"id": "dom_1", "name": DOMAIN},
        "verification": {"recipient": f"owner@{DOMAIN}", "method": "email"},
        "sentAt": "2026-04-27T12:00:00.000Z",
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (Response(200, "<html>ok</html>", "text/html"), "not a JSON object"),
        (Response(200, [1, 2]), "not a JSON object"),
        (Response(200, _documented(ok=False)), "ok is not true"),
        (Response(200, _documented(ok="true")), "ok is not true"),
        (Response(200, {k: v for k, v in _documented().items() if k != "ok"}), "ok is not true"),
        (Response(200, _documented(verification={"method": "email"})), "recipient is missing"),
        (Response(200, _documented(verification="owner@example.com")), "recipient is missing"),
        (Response(200, _documented(sentAt=None)), "sentAt is missing"),
        (Response(200, _documented(sentAt=["x"])), "sentAt is missing"),
        (RESEND_MODES["wrong_shape"](), "recipient is missing"),
    ],
)
def test_a_200_not_in_the_documented_shape_is_unknown(
    make_client: MakeClient, provider: FakeProvider, answer: Response, why: str
) -> None:
    """A 200 that is not the documented answer: ``bad_response``, outcome unknown (it may have
    sent the email), never retried."""
    resendable(provider)
    provider.enqueue_resend(answer)
    error = resend_error(make_client())
    assert (error.kind, error.status, error.outcome_unknown) == ("bad_response", 200, True)
    assert why in error.message
    assert len(provider.resend_calls) == 1


def test_what_the_docs_leave_open_is_read_leniently(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """No ``domain``, another method, extra fields, control characters: still a Resent, with
    the id asked for, the text cleaned, and the X-Request-Id header as the request id."""
    domain_id = resendable(provider)
    body = _documented(verification={"recipient": "a\x00b@example.com", "method": "other"})
    del body["domain"]
    body["extra"] = {"anything": True}
    provider.enqueue_resend(Response.json(200, body, headers={"X-Request-Id": "req_h1"}))
    resent = make_client().resend(DOMAIN, language="en")
    assert (resent.recipient, resent.method, resent.domain_id, resent.provider_request_id) == (
        "a b@example.com",
        "other",
        domain_id,
        "req_h1",
    )


# ---------------------------------------------------------------------------------------------
# The lookup failed: nothing was sent


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("unauthorized", "auth"), ("rate_limited", "rate_limited"), ("server_error", "unreachable")],
)
def test_a_failed_lookup_sends_nothing_and_says_so(
    make_client: MakeClient, provider: FakeProvider, mode: str, kind: str
) -> None:
    """The list by name failed: the resend was never reached, so it is a failure with nothing
    done, whatever the list's own failure was."""
    resendable(provider)
    provider.script_view(mode)
    error = resend_error(make_client())
    assert error.kind == kind
    assert error.outcome.nothing_done
    assert f"could not look up {DOMAIN}" in error.message
    assert provider.resend_calls == []


# ---------------------------------------------------------------------------------------------
# Secrets, and the lease


def test_the_api_key_never_appears_in_a_failure(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """A provider echoing the key in every field of its problem document, or in a 200's
    recipient, gets it redacted from every message, code, request id and repr."""
    resendable(provider)
    echo = {
        "type": KEY,
        "title": f"Bad key {KEY}",
        "status": 409,
        "detail": f"Key {KEY} refused",
        "code": KEY,
        "requestId": KEY,
        "errors": [{"pointer": KEY, "detail": KEY}],
    }
    provider.enqueue_resend(
        Response.json(409, echo),
        Response.json(500, echo),
        Response(200, _documented(verification={"recipient": KEY})),
    )
    client = make_client()
    for _ in range(2):
        error = resend_error(client)
        for text in (error.message, str(error), repr(error), error.code, error.request_id):
            assert KEY not in str(text)
        assert KEY not in json.dumps(error.outcome.__dict__)
    resent = client.resend(DOMAIN, language="en")
    assert KEY not in repr(resent)


def test_max_duration_covers_a_resend_with_its_lookup_and_read_back() -> None:
    """The lease bound is the longer operation: a resend's list calls, its attempts and the
    waits between them, then the read-back."""
    timeout, attempts, retry_after = 15.0, 3, 30.0
    view = min(timeout, VIEW_TIMEOUT)
    resend = (VIEW_CALLS - 1) * 2 * view + attempts * 2 * timeout + (attempts - 1) * retry_after
    assert longest_call(timeout, attempts, retry_after) >= resend + VIEW_CALLS * 2 * view
