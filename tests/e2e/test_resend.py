"""End to end over real HTTP: "Resend the verification email", approved and run.

A resend approved is sent once, in RESEND_LANGUAGE, by the provider's v2 action (never its
confirm endpoint); the request message, its thread and the requester's DM say so, naming the
recipient masked. Every way the action can fail (each of the stand-in's RESEND_MODES) ends as
one thread reply saying what happened, with the provider's code and requestId where it gave
them: failed when nothing was sent, unknown when the email may have gone out, and then Retry
(offered) sends it once more. A domain the provider does not list is refused before approval.
The audit export names the operation.

The real bot on loopback against FakeSlack and FakeProvider (``World``). Provider calls time out
after half a second, so the modes with no answer are quick; the sweep of every mode runs on
SQLite only (the store's part is the same for each), the flows on each backend.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from worlds import confirm_calls, request_of

from bot.domain.model import Action, Operation, State
from bot.domain.outcomes import NotResendable, ProviderFailed, Resent
from bot.slack import ids
from bot.standins.driver import buttons
from bot.standins.provider import (
    RESEND_BLOCKED_CODE,
    RESEND_MODES,
    Response,
    rate_limited_problem,
)
from bot.standins.world import APPROVER, CHANNEL, REQUESTER, World

EMAIL = "alice@example.com"
DOMAIN = "example.com"
RECIPIENT = f"hostmaster@{DOMAIN}"  # the stand-in's, for a domain it creates
MASKED = f"h***@{DOMAIN}"
SETTINGS = {"HOSTUP_TIMEOUT": 0.5, "RESEND_LANGUAGE": "sv"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """The bot on the backend under test, RESEND_LANGUAGE sv; every domain can be resent."""
    settings = {**SETTINGS, "DATABASE_URL": database_url}
    with World(database_path=tmp_path / "unused.db", settings=settings) as w:
        w.provider.default_can_resend = True
        yield w


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    """The same on SQLite only, its file at tmp_path/bot.db."""
    with World(database_path=tmp_path / "bot.db", settings=SETTINGS) as w:
        w.provider.default_can_resend = True
        yield w


def visible(message: dict[str, Any]) -> str:
    """What a person reads: every section and context text, then the fallback text."""
    parts: list[str] = []
    for block in message.get("blocks") or []:
        if block.get("type") == "section":
            parts.append(block["text"]["text"])
        elif block.get("type") == "context":
            parts.extend(e.get("text", "") for e in block["elements"])
    parts.append(message.get("text", ""))
    return "\n".join(parts)


@dataclass(frozen=True)
class Settled:
    """One approved resend once the bot has finished with it."""

    message: dict[str, Any]  # the request message as first posted
    final: dict[str, Any]  # the request message in its final state
    reply: dict[str, Any]  # the thread reply
    request: Any  # as stored

    @property
    def reply_text(self) -> str:
        return visible(self.reply)

    @property
    def final_text(self) -> str:
        return visible(self.final)


def resend(world: World, *answers: Response, email: str = EMAIL) -> Settled:
    """Ask to resend for ``email``, queue the resend action's ``answers``, approve, and wait
    for the outcome: the message final and its thread reply (posted once the domain was read
    back, after a success or an unknown outcome)."""
    message = world.driver.ask(REQUESTER, email, operation="resend")
    world.provider.enqueue_resend(*answers)
    assert world.driver.approve(APPROVER, message).reply.status == 200
    final = world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)
    return Settled(message, final, reply, request_of(world, message))


# ---------------------------------------------------------------------------------------------
# Approved and sent


def test_an_approved_resend_is_sent_once_in_the_chosen_language(world):
    """Approved, the resend is one POST to the provider's resend action with lang=sv
    (RESEND_LANGUAGE) and no call to confirm; the message says *Email resent* to the masked
    recipient, the thread reply names the domain, the masked recipient and the request, the
    requester's DM says the email went out again; the store keeps the Resent outcome and the
    audit trail ends with the call's success and the read-back."""
    settled = resend(world)

    [call] = world.provider.resend_calls
    assert call["method"] == "POST" and call["query"] == {"lang": ["sv"]}
    [sent] = world.provider.resends(DOMAIN)
    assert (sent["recipient"], sent["lang"]) == (RECIPIENT, "sv")
    assert confirm_calls(world) == 0
    assert f"*Email resent* to `{MASKED}`" in settled.final_text
    assert "state: succeeded" in settled.final_text and not buttons(settled.final)
    reply = settled.reply_text
    assert f"Verification email *resent* for `{DOMAIN}` (asked for `{EMAIL}`)" in reply
    assert f"*Sent to:* `{MASKED}`" in reply
    assert f"request `{settled.request.id}`" in reply
    assert "No provider requestId" in reply  # the documented 200 carries none
    for text in (reply, settled.final_text):
        assert RECIPIENT not in text
    told = world.driver.dm_with(REQUESTER, "sent the verification email again")
    assert f"to `{MASKED}`" in told["text"] and f"<#{CHANNEL}>" in told["text"]
    request = settled.request
    assert (request.operation, request.state) == (Operation.RESEND, State.SUCCEEDED)
    assert isinstance(request.outcome, Resent) and request.outcome.recipient == RECIPIENT
    trail = world.services.store.audit_log(request.id)
    assert [e.action for e in trail][-2:] == [Action.PROVIDER_SUCCESS, Action.READBACK]


def test_the_providers_request_id_of_a_resend_is_in_the_reply(sqlite_world):
    """A 200 that carries an X-Request-Id: the thread reply gives it as the provider's
    requestId, and the store keeps it."""
    body = {
        "ok": True,
        "domain": {"id": sqlite_world.provider.domain(DOMAIN).id, "name": DOMAIN},
        "verification": {"recipient": RECIPIENT, "method": "email"},
        "sentAt": "2026-12-07T09:00:00.000Z",
    }
    answer = Response.json(200, body, headers={"X-Request-Id": "req_resend_e2e_1"})

    settled = resend(sqlite_world, answer)

    assert "Provider requestId: `req_resend_e2e_1`" in settled.reply_text
    assert f"*Sent to:* `{MASKED}`" in settled.reply_text
    assert settled.request.outcome.provider_request_id == "req_resend_e2e_1"


# ---------------------------------------------------------------------------------------------
# Every way the resend action fails


@dataclass(frozen=True)
class Failure:
    """What one of the stand-in's RESEND_MODES ends as."""

    state: State
    words: tuple[str, ...]  # in the thread reply
    status: int | None = None  # the stored outcome's HTTP status and code
    code: str | None = None
    request_id: bool = True  # the answer carries a requestId, shown and stored
    calls: int = 1  # requests to the resend action
    sent: int = 0  # emails the stand-in sent (a lost answer still sent one)


FAILURES = {
    "invalid_request": Failure(
        State.FAILED,
        ("HTTP 400 invalid_request", "Validation failed", "/: No fields are accepted."),
        400,
        "invalid_request",
    ),
    "unauthorized": Failure(
        State.FAILED, ("HTTP 401 unauthorized", "Authentication required."), 401, "unauthorized"
    ),
    "forbidden": Failure(
        State.FAILED,
        ("HTTP 403 forbidden", "the resend needs the write:domains scope"),
        403,
        "forbidden",
    ),
    "not_found": Failure(
        State.FAILED,
        ("HTTP 404 not_found", "No domain matching the given ID was found."),
        404,
        "not_found",
    ),
    "blocked": Failure(
        State.FAILED,
        (f"HTTP 409 {RESEND_BLOCKED_CODE}", "Resend blocked: Not available for this domain."),
        409,
        RESEND_BLOCKED_CODE,
    ),
    "rate_limited": Failure(
        State.FAILED,
        ("HTTP 429 rate_limited", "Rate limit exceeded. Please try again later."),
        429,
        "rate_limited",
        calls=3,
    ),
    "server_error": Failure(
        State.UNKNOWN,
        ("Internal server error: An unexpected error occurred.",),
        500,
        "internal_error",
    ),
    "bad_gateway": Failure(
        State.UNKNOWN, ("502 Bad Gateway with an HTML page",), 502, request_id=False
    ),
    "wrong_shape": Failure(
        State.UNKNOWN,
        ("200 OK but not in the documented shape", "verification.recipient is missing"),
        200,
        request_id=False,
    ),
    "hang": Failure(State.UNKNOWN, ("did not answer in time",), request_id=False, sent=1),
    "close_after_read": Failure(
        State.UNKNOWN, ("broke the connection without answering",), request_id=False, sent=1
    ),
}


def answers_for(mode: str) -> list[Response]:
    """The mode's answers: a 429 three times (the attempts allowed), with Retry-After 0 so the
    test does not wait the documented 30 s; any other mode once."""
    if mode == "rate_limited":
        return [rate_limited_problem("0") for _ in range(3)]
    return [RESEND_MODES[mode]()]


def test_every_resend_mode_is_covered():
    """A new failure of the stand-in's resend action is added to FAILURES, not skipped."""
    assert set(FAILURES) == set(RESEND_MODES)


@pytest.mark.parametrize("mode", sorted(FAILURES))
def test_each_failure_of_the_resend_is_shown_once_with_what_the_provider_said(sqlite_world, mode):
    """Each mode ends in its state with one thread reply and no buttons on the message:
    failed (the provider refused: its status, code, words and requestId, "No email was sent",
    the requester told it failed), or unknown (no usable answer after the request went out:
    the reply says the email may or may not have gone out, that the view cannot show which,
    and offers Check provider, Retry and Resolved; the requester told it is unknown). 429 is
    tried three times, anything else once; confirm is never called."""
    world, failure = sqlite_world, FAILURES[mode]
    answers = answers_for(mode)

    settled = resend(world, *answers)

    request, reply, final = settled.request, settled.reply_text, settled.final_text
    assert request.state is failure.state
    for words in failure.words:
        assert words in reply, words
    assert not buttons(settled.final)
    assert len(world.driver.thread(settled.message)) == 1
    assert isinstance(request.outcome, ProviderFailed)
    assert (request.outcome.status, request.outcome.code) == (failure.status, failure.code)
    rid = answers[-1].request_id
    if failure.request_id:
        assert rid and f"Provider requestId: `{rid}`" in reply
        assert request.outcome.provider_request_id == rid
    else:
        assert "No provider requestId" in reply
    assert len(world.provider.resend_calls) == failure.calls
    assert len(world.provider.resends(DOMAIN)) == failure.sent
    assert confirm_calls(world) == 0
    if failure.state is State.FAILED:
        assert "but the resend *failed*" in reply and "No email was sent." in reply
        assert "*Resend failed*" in final and "state: failed" in final
        assert buttons(settled.reply) == []
        assert request.outcome.outcome_unknown is False
        told = world.driver.dm_with(REQUESTER, "failed")
    else:
        assert "may or may not have sent the verification email again" in reply
        assert "the provider's view cannot show whether the email went out" in reply
        assert "most likely" not in reply  # the domain's status says nothing of an email
        assert "*Outcome unknown*" in final and "state: unknown" in final
        assert buttons(settled.reply) == [ids.CHECK_ACTION, ids.RETRY_ACTION, ids.RESOLVE_ACTION]
        assert request.outcome.outcome_unknown is True
        told = world.driver.dm_with(REQUESTER, "unknown")
    assert "to resend the verification email" in told["text"] and EMAIL in told["text"]


def test_retry_after_an_unknown_resend_sends_it_once_more(world):
    """The answer to the resend was lost (the email went out): Retry, once clicked, sends it
    again, once: the request succeeds, the first reply loses its buttons, and a second click
    of the stale Retry sends nothing."""
    settled = resend(world, Response.hang(30))
    assert settled.request.state is State.UNKNOWN
    assert len(world.provider.resends(DOMAIN)) == 1

    clicked = world.driver.click(APPROVER, settled.reply, ids.RETRY_ACTION)

    assert clicked.reply.status == 200
    final = world.slack.wait_for(
        lambda: (
            m if "state: succeeded" in visible(m := world.driver.current(settled.message)) else None
        ),
        what="the request succeeding on Retry",
    )
    assert f"*Email resent* to `{MASKED}`" in visible(final)
    assert len(world.provider.resend_calls) == 2
    assert [s["lang"] for s in world.provider.resends(DOMAIN)] == ["sv", "sv"]
    request = request_of(world, settled.message)
    assert request.state is State.SUCCEEDED and isinstance(request.outcome, Resent)
    assert [e.action for e in world.services.store.audit_log(request.id)].count(Action.RETRY) == 1
    first = world.slack.wait_for(
        lambda: r if not buttons(r := world.driver.thread(settled.message)[0]) else None,
        what="the first reply without its buttons",
    )
    assert "Retried by" in visible(first)
    again = world.driver.answer(world.driver.click(APPROVER, settled.reply, ids.RETRY_ACTION))
    assert "Only a request whose outcome is unknown can be retried" in again
    assert len(world.provider.resend_calls) == 2 and confirm_calls(world) == 0


# ---------------------------------------------------------------------------------------------
# Refused before approval


def test_a_resend_for_a_domain_the_provider_does_not_list_is_refused_before_approval(world):
    """The provider's list has no such domain: the request is closed before anyone approves
    it (Not resendable, the provider's reason, no buttons, audited as the bot's), nothing is
    sent, and the requester is told why."""
    world.provider.unknown_domains.add(DOMAIN)
    message = world.driver.ask(REQUESTER, EMAIL, operation="resend")
    final = world.driver.final_message(message)

    shown = visible(final)
    assert "*Not resendable*" in shown and f"does not list {DOMAIN}" in shown
    assert "nothing was sent" in shown and not buttons(final)
    [stored] = world.services.store.list_requests()  # (no button names it any more)
    assert (stored.operation, stored.state) == (Operation.RESEND, State.REJECTED)
    assert isinstance(stored.outcome, NotResendable) and stored.outcome.listed is False
    last = world.services.store.audit_log(stored.id)[-1]
    assert (last.action, last.actor) == (Action.NOT_RESENDABLE, "bot")
    assert world.provider.resend_calls == [] and confirm_calls(world) == 0
    told = world.driver.dm_with(REQUESTER, "closed before approval")
    assert f"does not list {DOMAIN}" in told["text"] and "Nothing was sent" in told["text"]


# ---------------------------------------------------------------------------------------------
# The audit export


def test_the_audit_export_names_each_requests_operation(tmp_path):
    """`python -m bot audit` over the store of a confirm and a resend, both approved: one row
    each, the operation in its column, both succeeded with one provider call."""
    database = tmp_path / "bot.db"
    with World(database_path=database, settings=SETTINGS) as world:
        world.provider.default_can_resend = True
        resend(world, email="res@resend.example")
        confirm = world.driver.ask(REQUESTER, "con@confirm.example", operation="confirm")
        world.driver.approve(APPROVER, confirm)
        world.driver.wait_thread_reply(confirm)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(REPO), DATABASE_URL=f"sqlite:///{database}")
    result = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "bot", "audit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert set(rows) == {"res@resend.example", "con@confirm.example"}
    resent, confirmed = rows["res@resend.example"], rows["con@confirm.example"]
    assert (resent["operation"], confirmed["operation"]) == ("resend", "confirm")
    for row in (resent, confirmed):
        assert (row["state"], row["decision"], row["decided_by"]) == (
            "succeeded",
            "approved",
            APPROVER,
        )
        assert row["provider_calls"] == "1"
