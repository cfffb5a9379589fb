"""The v2 per-domain view: the list for the id then the view, lenient reading, typed failures
never retried, its deadline, readings under way sharing one list call, and the
stand-in's v2 answers as the reference documents them.

The provider client against the stand-in provider, over real HTTP on loopback; its other
concerns are in the other tests/integration/test_hostup_*.py, their shared fixtures in
tests/conftest.py and helpers in tests/provider_client.py.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import httpx
import pytest
from provider_client import KEY, MakeClient

from bot.domain.views import ViewFailure
from bot.provider.view import VIEW_CALLS, VIEW_TIMEOUT
from bot.standins.provider import VIEW_MODES, FakeProvider, Response

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


def test_view_reads_the_resend_gate_and_its_reason(
    make_client: MakeClient, provider: FakeProvider
) -> None:
    """actions.canResend {allowed, reason}: both are read (the reason cleaned of control
    characters), so a resend the gate closes is refused before approval in the provider's
    words; an open gate has no reason."""
    provider.enqueue_view(
        Response.json(
            200,
            {
                "status": "pending",
                "actions": {"canResend": {"allowed": False, "reason": "Sent 2 min ago\x1b"}},
            },
        )
    )
    provider.enqueue_view(
        Response.json(200, {"status": "pending", "actions": {"canResend": {"allowed": True}}})
    )
    closed = make_client().view("example.com", "dom_1")
    assert closed.can_resend is False and closed.resend_blocked == "Sent 2 min ago"
    opened = make_client().view("example.com", "dom_1")
    assert opened.can_resend is True and opened.resend_blocked is None


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
