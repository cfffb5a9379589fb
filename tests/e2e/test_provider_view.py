"""End to end: the provider's per-domain view, before approval, after the call, and to settle an
unknown outcome (Check provider, Resolved).

The real bot over real HTTP on loopback, against FakeSlack and FakeProvider, whose v2 view
(``GET /api/v2/domains?name=``, ``GET /api/v2/domains/{id}/email-verification``) answers as
the provider's reference documents it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from worlds import request_of

from bot.domain.core import LOOKUP_HOLD
from bot.domain.model import Action, State, utcnow
from bot.domain.views import ProviderView, ViewUnavailable
from bot.slack import ids
from bot.standins.driver import buttons, rendered
from bot.standins.provider import DOMAINS_PATH, Response
from bot.standins.world import (
    APPROVER,
    OUTSIDER,
    PROVIDER_KEY,
    REQUESTER,
    SECOND_APPROVER,
    World,
)

EMAIL = "alice@example.com"


def provider_line(message: dict[str, Any]) -> str:
    lines = [
        e.get("text", "")
        for b in message.get("blocks", [])
        if b.get("type") == "context"
        for e in b.get("elements", [])
        if ":satellite_antenna:" in e.get("text", "")
    ]
    assert lines, f"no provider line in {rendered(message)}"
    return lines[0]


def view_paths(world: World) -> list[str]:
    return ["list" if c["path"] == DOMAINS_PATH else "view" for c in world.provider.view_calls]


def unknown_request(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request approved whose call timed out: unknown, with its thread reply."""
    message = world.driver.ask(REQUESTER, EMAIL)
    world.provider.enqueue(Response.hang(30))
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    return message, world.driver.wait_thread_reply(message)


@pytest.fixture
def world(database_url, tmp_path):
    """The in-process bot on the backend under test; a provider call times out after 1 s."""
    settings = {"DATABASE_URL": database_url, "HOSTUP_TIMEOUT": 1}
    with World(database_path=tmp_path / "unused.db", settings=settings) as w:
        yield w


@pytest.fixture
def fast_world(tmp_path):
    """Provider calls time out after half a second (the view's calls too)."""
    with World(database_path=tmp_path / "bot.db", settings={"HOSTUP_TIMEOUT": 0.5}) as world:
        yield world


# ---------------------------------------------------------------------------------------------
# 1. Before approval


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({}, ["*pending* (checked", "sent to `h***@example.com`", "link expires"]),
        (
            {"status": "verified", "verified_at": "2026-11-30T09:00:00.000Z"},
            ["already *verified* since 2026-11-30: approving may change nothing"],
        ),
        (
            {"status": "unverified", "reason": "Registrant has not confirmed.", "recipient": None},
            ["*unverified*", "Registrant has not confirmed."],
        ),
        (
            {"status": "expired", "expires_at": "2026-11-01T00:00:00Z", "can_resend": True},
            ["verification *expired* on 2026-11-01", "the provider can resend the email"],
        ),
        ({"status": "unknown", "reason": None}, ["state *unknown*"]),
        ({"is_suspended": True}, ["the domain is *suspended*"]),
    ],
)
def test_the_request_shows_the_providers_state(world, fields, shown):
    """Each documented state reads as one line beside the request; the recipient is masked."""
    world.provider.set_domain("example.com", **fields)
    message = world.driver.ask(REQUESTER, EMAIL)
    line = provider_line(message)
    for words in shown:
        assert words in line, line
    assert "hostmaster@example.com" not in rendered(message)
    reading = request_of(world, message).view
    assert isinstance(reading, ProviderView) and reading.domain_id
    # The lookup is two calls, list then view, each with the key as a Bearer token only.
    assert view_paths(world) == ["list", "view"]
    for call in world.provider.view_calls:
        assert call["headers"]["authorization"].startswith("Bearer ")
        assert "x-api-key" not in call["headers"]
    assert world.provider.view_calls[0]["query"] == {"name": ["example.com"]}
    audit = world.services.store.audit_log(reading_request_id := request_of(world, message).id)
    assert [(e.action, e.from_state, e.to_state) for e in audit][-1] == (
        Action.LOOKUP,
        State.PENDING,
        State.PENDING,
    )
    assert audit[-1].details["reading"]["status"] == reading.status
    assert reading_request_id


@pytest.mark.parametrize(
    ("setup", "kind", "words"),
    [
        (lambda p: p.unknown_domains.add("example.com"), "not_found", "no domain by that name"),
        (lambda p: p.scopes.clear(), "no_scope", "needs read:domains"),
        (lambda p: p.script_view("unauthorized"), "no_scope", "HTTP 401"),
        (lambda p: p.script_view("rate_limited"), "rate_limited", "limiting"),
        (lambda p: p.script_view("server_error"), "server_error", "HTTP 500"),
        (lambda p: p.script_view("bad_gateway"), "server_error", "HTTP 502"),
        (lambda p: p.script_view("hang"), "timeout", "no answer in time"),
        (lambda p: p.script_view("close_after_read"), "timeout", "connection broke"),
        (
            lambda p: p.enqueue_view(Response.json(200, {"data": "nope"})),
            "bad_response",
            "not a list",
        ),
    ],
)
def test_a_failed_lookup_is_one_short_line_and_never_blocks(fast_world, setup, kind, words):
    """No such domain, a key without read:domains, 429, 5xx, a timeout, a broken connection, a
    wrong shape: one short line saying so, and the request is approved as usual."""
    world = fast_world
    setup(world.provider)
    message = world.driver.ask(REQUESTER, EMAIL)
    line = provider_line(message)
    assert "could not read the domain's state" in line and words in line, line
    assert len(line) < 300
    reading = request_of(world, message).view
    assert isinstance(reading, ViewUnavailable) and reading.kind == kind
    assert PROVIDER_KEY not in rendered(message)
    world.driver.approve(APPROVER, message)
    final = world.driver.final_message(message)
    assert "state: succeeded" in rendered(final)


def test_a_hanging_lookup_neither_delays_the_post_nor_blocks_the_approval(tmp_path):
    """The lookup runs after the request is posted (never on the ack path): while the provider's
    view hangs, the message is out, the requester is told, and an approver can approve and the
    provider is called. When the lookup gives up, the request is no longer pending: its
    reading is audited, not shown as the state before approval."""
    # The reading gives up after VIEW_TIMEOUT (5 s): everything below happens well before.
    with World(database_path=tmp_path / "bot.db", settings={"HOSTUP_TIMEOUT": 10}) as world:
        world.provider.enqueue_view(Response.hang(30))
        sent = world.driver.command(REQUESTER, EMAIL)
        reply = world.driver.submit_request(REQUESTER, world.driver.modal(sent), reason="T-1")
        assert reply.status == 200 and reply.body in ("", None, {})
        message = world.driver.request_message(EMAIL)
        world.provider.wait_for_view_calls(1)  # the lookup is under way (and hangs)
        assert request_of(world, message).view is None  # still hanging
        world.driver.approve(APPROVER, message)
        final = world.driver.final_message(message)
        assert "state: succeeded" in rendered(final)
        assert request_of(world, message).view is None  # the lookup still has not come back
        assert len([c for c in world.provider.calls if c["path"].endswith("/confirmed")]) == 1
        [late] = world.slack.wait_for(
            lambda: lookups(world, message) or None, what="the lookup giving up"
        )
        assert late.details["shown"] is False
        assert late.details["reading"]["kind"] == "timeout"
        assert request_of(world, message).view is None


# ---------------------------------------------------------------------------------------------
# 2. After success


def test_the_thread_reply_adds_the_state_read_back_after_the_call(world):
    """After a success the domain is read again (one call: its id is known) and the thread says
    what it reads now."""
    world.provider.status_after_confirm = "verified"
    message = world.driver.ask(REQUESTER, EMAIL)
    world.driver.approve(APPROVER, message)
    reply = world.driver.wait_thread_reply(message)
    assert "Provider now: already *verified*" in rendered(reply)
    assert view_paths(world) == ["list", "view", "view"]
    final = world.driver.final_message(message)
    assert "Provider after the call: already *verified*" in rendered(final)
    request = request_of(world, message)
    # Read after the outcome was recorded (outside the claim), and audited as such.
    trail = world.services.store.audit_log(request.id)
    assert [e.action for e in trail][-2:] == ["provider_success", "readback"]
    assert trail[-1].details["reading"]["status"] == "verified"


def test_a_failed_call_is_not_read_back(world):
    """A refusal (400) changed nothing: no read-back."""
    world.provider.script("bad_request")
    message = world.driver.ask(REQUESTER, EMAIL)
    world.driver.approve(APPROVER, message)
    world.driver.wait_thread_reply(message)
    assert view_paths(world) == ["list", "view"]
    assert request_of(world, message).readback is None


# ---------------------------------------------------------------------------------------------
# 3. After an unknown outcome


def test_after_a_timeout_the_state_is_read_back_once_and_explained(world):
    """The confirm call timed out but the provider acted: the automatic read-back says the
    domain now reads verified, what that means, and the request stays unknown."""
    world.provider.status_after_confirm = "verified"
    message, reply = unknown_request(world)
    shown = rendered(reply)
    assert "may or may not" in shown
    assert "The domain now reads *verified*: the call most likely took effect" in shown
    assert "Retry is probably not needed" in shown
    assert buttons(reply) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    assert request_of(world, message).state is State.UNKNOWN
    assert view_paths(world) == ["list", "view", "view"]


def test_after_a_timeout_a_still_pending_domain_suggests_retry(world):
    """The provider did not act: the read-back still says pending, so Retry may be needed."""
    message, reply = unknown_request(world)
    assert "The domain now reads *pending*" in rendered(reply)
    assert "most likely did not take effect" in rendered(reply)
    assert "Retry may be needed" in rendered(reply)


def test_check_provider_reads_again_and_says_what_it_means(world):
    """Check provider: one more read (its id known), a thread reply with the reading and its
    meaning and Retry and Resolved beside it; audited; the request stays unknown."""
    message, reply = unknown_request(world)
    world.provider.set_domain("example.com", status="verified")
    calls = len(world.provider.view_calls)
    clicked = world.driver.click(SECOND_APPROVER, reply, ids.CHECK_ACTION)
    assert clicked.reply.status == 200
    check = world.slack.wait_for(
        lambda: replies[-1] if len(replies := world.driver.thread(message)) >= 2 else None,
        what="the check reply",
    )
    shown = rendered(check)
    assert "checked the provider" in shown and f"<@{SECOND_APPROVER}>" in shown
    assert "the call most likely took effect; Retry is probably not needed" in shown
    assert buttons(check) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    assert [c["path"] == DOMAINS_PATH for c in world.provider.view_calls[calls:]] == [False]
    request = request_of(world, message)
    assert request.state is State.UNKNOWN
    assert isinstance(request.readback, ProviderView) and request.readback.status == "verified"
    last = world.services.store.audit_log(request.id)[-1]
    assert (last.action, last.actor, last.to_state) == (
        Action.CHECK,
        SECOND_APPROVER,
        State.UNKNOWN,
    )
    assert len([c for c in world.provider.calls if c["path"].endswith("/confirmed")]) == 1


def test_check_provider_is_for_approvers_and_unknown_outcomes_only(world):
    """A non-approver's Check is refused privately and reads nothing; so is a Check on a
    request that succeeded (from a stale button)."""
    message, reply = unknown_request(world)
    calls = len(world.provider.view_calls)
    answer = world.driver.answer(world.driver.click(OUTSIDER, reply, ids.CHECK_ACTION))
    assert "Only approvers" in answer
    assert len(world.provider.view_calls) == calls
    world.driver.click(APPROVER, reply, ids.RETRY_ACTION)
    # The retry's outcome, then its read-back (made after the outcome is recorded).
    world.slack.wait_for(
        lambda: (
            [e.action for e in world.services.store.audit_log(request_of(world, message).id)][-2:]
            == ["provider_success", "readback"]
            or None
        ),
        what="the retry and its read-back",
    )
    calls = len(world.provider.view_calls)
    answer = world.driver.answer(world.driver.click(APPROVER, reply, ids.CHECK_ACTION))
    assert "Only a request whose outcome is unknown" in answer
    assert len(world.provider.view_calls) == calls


def resolve(world: World, user: str, reply: dict[str, Any], note: str):
    clicked = world.driver.click(user, reply, ids.RESOLVE_ACTION)
    view = world.driver.modal(clicked)
    assert view["callback_id"] == ids.RESOLVE_VIEW
    return world.driver.submit(user, view, {ids.RESOLVE_NOTE_BLOCK: {ids.RESOLVE_NOTE_INPUT: note}})


def test_resolved_closes_an_unknown_outcome_with_who_and_why(world):
    """An approver closes it as resolved: a final state, audited with who and why, shown on the
    message and in the thread, the requester told; Retry is refused afterwards."""
    message, reply = unknown_request(world)
    assert resolve(world, SECOND_APPROVER, reply, "Provider shows verified").status == 200
    final = world.slack.wait_for(
        lambda: (
            m
            if "state: resolved"
            in rendered(m := world.slack.message(world.driver.channel, message["ts"]))
            else None
        ),
        what="the resolved message",
    )
    assert "*Resolved by" in rendered(final) and "Provider shows verified" in rendered(final)
    assert buttons(final) == []
    request = request_of(world, message)
    assert (request.state, request.decided_by) == (State.RESOLVED, SECOND_APPROVER)
    last = world.services.store.audit_log(request.id)[-1]
    assert (last.action, last.actor, last.from_state, last.to_state) == (
        Action.RESOLVE,
        SECOND_APPROVER,
        State.UNKNOWN,
        State.RESOLVED,
    )
    assert last.details["note"] == "Provider shows verified"
    world.slack.wait_for(
        lambda: any("resolved" in rendered(r) for r in world.driver.thread(message)) or None,
        what="the resolved reply",
    )
    world.slack.wait_for(
        lambda: (
            any(
                "closed it as resolved" in m.get("text", "")
                for m in world.slack.messages(REQUESTER)
            )
            or None
        ),
        what="the requester's DM",
    )
    answer = world.driver.answer(world.driver.click(APPROVER, reply, ids.RETRY_ACTION))
    assert "this one is resolved" in answer
    assert len([c for c in world.provider.calls if c["path"].endswith("/confirmed")]) == 1


def test_resolved_keeps_four_eyes_and_needs_a_reason(tmp_path):
    """The requester (an approver too) may not resolve their own request; a non-approver may
    not; an empty reason is refused in the form."""
    settings = {"REQUESTERS": "*", "HOSTUP_TIMEOUT": 1}
    with World(database_path=tmp_path / "bot.db", settings=settings) as world:
        message = world.driver.ask(APPROVER, EMAIL)
        world.provider.enqueue(Response.hang(30))
        world.driver.approve(SECOND_APPROVER, message)
        world.driver.final_message(message)
        reply = world.driver.wait_thread_reply(message)
        own = world.driver.answer(world.driver.click(APPROVER, reply, ids.RESOLVE_ACTION))
        assert "someone else" in own
        outsider = world.driver.answer(world.driver.click(OUTSIDER, reply, ids.RESOLVE_ACTION))
        assert "Only approvers" in outsider
        empty = resolve(world, SECOND_APPROVER, reply, "   ")
        assert empty.body["response_action"] == "errors"
        assert "Say why" in empty.body["errors"][ids.RESOLVE_NOTE_BLOCK]
        assert request_of(world, message).state is State.UNKNOWN


def test_resolved_over_socket_mode(tmp_path):
    """The same Check provider and Resolved over Socket Mode: the check's thread reply names
    who checked and offers Retry and Resolved again; Resolved closes the request with who and
    why, on the message and in the audit log."""
    settings = {"HOSTUP_TIMEOUT": 1}
    with World(socket_mode=True, database_path=tmp_path / "s.db", settings=settings) as world:
        message, reply = unknown_request(world)
        clicked = world.driver.click(APPROVER, reply, ids.CHECK_ACTION)
        assert clicked.reply.status == 200
        check = world.slack.wait_for(
            lambda: replies[-1] if len(replies := world.driver.thread(message)) >= 2 else None,
            what="the check reply",
        )
        assert "checked the provider" in rendered(check) and f"<@{APPROVER}>" in rendered(check)
        assert buttons(check) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
        assert resolve(world, SECOND_APPROVER, reply, "checked: verified").status == 200
        final = world.slack.wait_for(
            lambda: (
                m if "state: resolved" in rendered(m := world.driver.current(message)) else None
            ),
            what="the resolved message",
        )
        assert "*Resolved by" in rendered(final) and buttons(final) == []
        request = request_of(world, message)
        assert (request.state, request.decided_by) == (State.RESOLVED, SECOND_APPROVER)
        last = world.services.store.audit_log(request.id)[-1]
        assert (last.action, last.actor) == (Action.RESOLVE, SECOND_APPROVER)
        assert last.details["note"] == "checked: verified"


# ---------------------------------------------------------------------------------------------
# Races and failures of the readings


def lookups(world: World, message: dict[str, Any]) -> list[Any]:
    """The request's lookup entries in its audit log."""
    request = request_of(world, message)
    return [e for e in world.services.store.audit_log(request.id) if e.action == Action.LOOKUP]


def test_a_lookup_that_comes_back_after_the_approval_is_not_shown_as_before_it(tmp_path):
    """Pins the race of a slow lookup: its reading comes back after the request was approved
    (and the provider called, so the domain already reads verified). It is audited but never
    shown as the state before approval ("approving may change nothing" appears on no update of
    the message), and the read-back reuses the id the lookup's list call found: three v2 calls
    for the request (list, the lookup's view, the read-back's view), not four."""
    with World(database_path=tmp_path / "bot.db", settings={"HOSTUP_TIMEOUT": 10}) as world:
        world.provider.view_delay = 1.5  # each v2 answer: the lookup takes 3 s
        world.provider.status_after_confirm = "verified"
        sent = world.driver.command(REQUESTER, EMAIL)
        world.driver.submit_request(REQUESTER, world.driver.modal(sent), reason="T-1")
        message = world.driver.request_message(EMAIL)
        world.provider.wait_for_view_calls(1)  # the lookup's list call is under way
        world.driver.approve(APPROVER, message)
        world.provider.wait_for_calls(1)  # the confirm call: made under the claim
        assert request_of(world, message).state is not State.PENDING
        assert lookups(world, message) == []  # the race is real: claimed before the reading
        final = world.driver.final_message(message)
        assert "state: succeeded" in rendered(final)
        [late] = world.slack.wait_for(lambda: lookups(world, message) or None, what="the lookup")
        assert late.details["shown"] is False and late.from_state is not State.PENDING
        assert late.details["reading"]["status"] == "verified"  # what the call itself did
        request = request_of(world, message)
        assert request.view is None
        assert isinstance(request.readback, ProviderView) and request.readback.verified
        updates = [
            json.dumps(c.params.get("blocks"))
            for c in world.slack.calls_to("chat.update")
            if c.params.get("ts") == message["ts"]
        ]
        assert updates and not any("approving may change nothing" in u for u in updates)
        final = world.slack.message(world.driver.channel, message["ts"])
        assert "Provider after the call: already *verified*" in rendered(final)
        assert view_paths(world) == ["list", "view", "view"]


@pytest.mark.parametrize(("mode", "kind"), [("hang", "timeout"), ("server_error", "server_error")])
def test_a_read_back_that_fails_after_a_timeout_does_not_settle_it(world, mode, kind):
    """Pins the automatic read-back failing after an unknown outcome (the view hangs past its
    timeout, or answers 500): the thread says the view could not be read and that this does
    not settle whether the call took effect, and still offers Check provider, Retry and
    Resolved; the request stays unknown. The read-back is one call (the id is known)."""
    message = world.driver.ask(REQUESTER, EMAIL)
    world.provider.script_view(mode)
    world.provider.enqueue(Response.hang(30))
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    shown = rendered(reply := world.driver.wait_thread_reply(message))
    assert "may or may not" in shown
    assert "Provider now: could not read the domain's state" in shown
    assert "that does not settle whether the call took effect" in shown
    assert buttons(reply) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    request = request_of(world, message)
    assert request.state is State.UNKNOWN
    assert isinstance(request.readback, ViewUnavailable) and request.readback.kind == kind
    assert view_paths(world) == ["list", "view", "view"]


def test_check_provider_when_the_view_fails_says_it_does_not_settle(world):
    """Pins Check provider under a server error of the view: the check reply says the view
    could not be read (HTTP 500) and that this does not settle it, with the three buttons
    again; audited with who clicked; the request stays unknown and the provider's confirm is
    not called again."""
    message, reply = unknown_request(world)
    world.provider.script_view("server_error")
    world.driver.click(SECOND_APPROVER, reply, ids.CHECK_ACTION)
    check = world.slack.wait_for(
        lambda: replies[-1] if len(replies := world.driver.thread(message)) >= 2 else None,
        what="the check reply",
    )
    shown = rendered(check)
    assert "Provider now: could not read the domain's state" in shown and "HTTP 500" in shown
    assert "that does not settle whether the call took effect" in shown
    assert buttons(check) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
    request = request_of(world, message)
    assert request.state is State.UNKNOWN
    assert isinstance(request.readback, ViewUnavailable)
    assert request.readback.kind == "server_error"
    last = world.services.store.audit_log(request.id)[-1]
    assert (last.action, last.actor) == (Action.CHECK, SECOND_APPROVER)
    assert last.details["reading"]["type"] == "unavailable"
    assert len([c for c in world.provider.calls if c["path"].endswith("/confirmed")]) == 1


def test_a_lookup_whose_view_failed_keeps_the_id_for_the_read_back(world):
    """Pins that a reading whose list call found the id but whose view call failed keeps the
    id: the read-back after the approval is then one call, not the list again."""
    world.provider.enqueue_view(Response(action="normal"))  # the list, as usual
    world.provider.script_view("server_error")  # then the view fails
    world.provider.status_after_confirm = "verified"
    message = world.driver.ask(REQUESTER, EMAIL)
    assert "HTTP 500" in provider_line(message)
    view = request_of(world, message).view
    assert isinstance(view, ViewUnavailable)
    assert view.domain_id == world.provider.domain("example.com").id
    world.driver.approve(APPROVER, message)
    reply = world.driver.wait_thread_reply(message)
    assert "Provider now: already *verified*" in rendered(reply)
    assert view_paths(world) == ["list", "view", "view"]


def test_a_lookup_cut_off_is_made_by_the_maintenance_round(tmp_path):
    """Pins the recovery of a lookup that never happened (the process stopped between posting
    the request and reading the provider's view): a maintenance round looks up a pending
    request without a reading once it is older than the grace, shows the line and audits it;
    a younger one, and one already read, are left alone."""
    with World(database_path=tmp_path / "bot.db") as world:
        approvals = world.services.approvals
        # Stored, as submit does, but the lookup that follows never runs: the message, held
        # for it, is posted by a maintenance round once its hold (LOOKUP_HOLD) is over.
        approvals.submit(EMAIL, "T-1", REQUESTER)
        maintenance = world.services.maintenance
        held = utcnow() + LOOKUP_HOLD + timedelta(seconds=1)
        approvals.clock = lambda: held
        assert maintenance.run_once()["looked_up"] == 0  # it may still be under way
        message = world.driver.request_message(EMAIL)
        assert request_of(world, message).view is None
        assert world.provider.view_calls == []
        moment = utcnow() + timedelta(seconds=maintenance.lookup_after + 1)
        approvals.clock = lambda: moment
        assert maintenance.run_once()["looked_up"] == 1
        shown = world.driver.with_provider_line(message)
        assert "*pending*" in provider_line(shown)
        assert [e.actor for e in lookups(world, message)] == ["bot"]
        assert maintenance.run_once()["looked_up"] == 0  # read once is enough
        assert view_paths(world) == ["list", "view"]
