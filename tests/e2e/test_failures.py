"""End to end: provider failures are shown, never swallowed.

Every answer the provider can give (or not give) ends as a thread reply under the request
message saying what happened, with the provider's code, message and requestId where it gave
them; the request message shows the final state with no buttons left; the store agrees; the
requester is told by DM. Nothing the provider sends can crash the bot or ping the channel.

These run the real bot over real HTTP on loopback against FakeSlack and FakeProvider (``World``).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.domain.model import State, VerificationRequest
from bot.domain.outcomes import Cleared, ProviderFailed
from bot.standins.driver import request_id_of
from bot.standins.provider import Response
from bot.standins.slack import Call
from bot.standins.world import APPROVER, CHANNEL, REQUESTER, World

EMAIL = "alice@example.com"
CONFIRM = {"email": EMAIL, "approved": "yes"}


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def slow_world(tmp_path) -> Iterator[World]:
    """A workspace whose provider calls time out after half a second."""
    with World(database_path=tmp_path / "bot.db", settings={"HOSTUP_TIMEOUT": 0.5}) as w:
        yield w


@dataclass(frozen=True)
class Settled:
    """One approved request once the bot has finished with it."""

    world: World
    message: dict[str, Any]  # the request message as first posted
    final: dict[str, Any]  # the request message in its final state
    reply: dict[str, Any]  # the one thread reply
    request: VerificationRequest  # as stored

    @property
    def reply_text(self) -> str:
        return visible(self.reply)

    @property
    def final_text(self) -> str:
        return visible(self.final)


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


def ask(world: World, email: str = EMAIL) -> dict[str, Any]:
    """Ask for ``email``; return the request message once the bot has finished submitting.

    The bot posts the request message, stores where it went, then DMs the requester: waiting
    for that DM means the next Slack call is the approval's, and the store knows the message.
    """
    assert world.driver is not None
    message = world.driver.ask(REQUESTER, email)
    world.driver.dm_with(REQUESTER, f"`{email}` was posted")
    return message


def settle(world: World, email: str = EMAIL, *answers: Response) -> Settled:
    """Ask for ``email``, queue the provider's ``answers``, approve, and wait for the outcome."""
    driver = world.driver
    assert driver is not None and world.services is not None
    message = ask(world, email)
    request_id = request_id_of(message)
    world.provider.enqueue(*answers)
    delivered = driver.approve(APPROVER, message)
    assert delivered.reply.status == 200
    final = driver.final_message(message)
    reply = driver.wait_thread_reply(message)
    request = world.services.store.get(request_id)
    assert request is not None
    return Settled(world, message, final, reply, request)


def assert_closed(settled: Settled, state: State) -> None:
    """The request message shows ``state`` and offers no buttons; the store says the same."""
    blocks = settled.final["blocks"]
    assert [b for b in blocks if b["type"] == "actions"] == []
    assert "button" not in json.dumps(blocks)
    assert f"state: {state.value}" in settled.final_text
    assert settled.request.state is state
    # Exactly one reply: the outcome is said once, not repeated or lost.
    assert settled.world.driver is not None
    assert len(settled.world.driver.thread(settled.message)) == 1


def slack_calls_after(world: World, ts: str) -> list[Call]:
    """Every posting call made about the request message at ``ts`` (replies, updates, DMs)."""
    calls = world.slack.calls
    first = next(
        i
        for i, c in enumerate(calls)
        if c.method == "chat.postMessage" and c.answer.get("ts") == ts
    )
    return [c for c in calls[first + 1 :] if c.method in ("chat.postMessage", "chat.update")]


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# The documented 400


def test_documented_400_is_shown_with_code_message_and_request_id(world: World) -> None:
    """The documented 400 ends as a thread reply with HTTP 400, its code, message and
    requestId; the message and the store say failed; the audit log keeps the answer."""
    answer = Response.error(400, "Email is required")
    rid = answer.request_id
    assert rid

    settled = settle(world, EMAIL, answer)

    assert world.provider.calls[0]["json"] == CONFIRM
    assert len(world.provider.calls) == 1
    reply = settled.reply_text
    for expected in ("HTTP 400", "BAD_REQUEST", "Email is required", rid, "failed"):
        assert expected in reply, expected
    assert f"<@{APPROVER}>" in reply
    assert_closed(settled, State.FAILED)
    assert "HTTP 400 BAD_REQUEST: Email is required" in settled.final_text
    assert isinstance(settled.request.outcome, ProviderFailed)
    assert settled.request.outcome.code == "BAD_REQUEST"
    assert settled.request.outcome.status == 400
    assert settled.request.outcome.provider_request_id == rid
    assert world.services is not None
    log = world.services.store.audit_log(settled.request.id)
    assert [e.to_state for e in log] == [
        State.PENDING,
        State.PENDING,  # the provider's view, read after posting
        State.EXECUTING,
        State.FAILED,
    ]
    assert log[-1].action == "provider_error"
    assert log[-1].actor == APPROVER
    assert log[-1].details["provider_request_id"] == rid


# ---------------------------------------------------------------------------------------------
# Other error statuses, in both error shapes


@pytest.mark.parametrize("shape", ["documented", "problem"])
@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (401, "UNAUTHORIZED", "Invalid API key"),
        (403, "FORBIDDEN", "This API key may not do that"),
        (404, "NOT_FOUND", "No such endpoint"),
    ],
)
def test_client_errors_are_shown_in_either_shape(
    world: World, shape: str, status: int, code: str, message: str
) -> None:
    """401, 403 and 404, as the documented error body or RFC 7807 problem details, end as a
    failed request whose reply gives the status, code, message and requestId."""
    answer = Response.error(status, message, code=code, shape=shape)  # type: ignore[arg-type]
    if shape == "problem":
        assert answer.content_type == "application/problem+json"
    rid = answer.request_id
    assert rid

    settled = settle(world, EMAIL, answer)

    for expected in (f"HTTP {status}", code, message, rid):
        assert expected in settled.reply_text, expected
    assert_closed(settled, State.FAILED)
    assert f"HTTP {status} {code}: {message}" in settled.final_text
    assert settled.request.outcome is not None
    assert settled.request.outcome.provider_request_id == rid
    assert len(world.provider.calls) == 1  # an answered error is never retried


@pytest.mark.parametrize(
    ("answer", "expected", "rid"),
    [
        pytest.param(
            Response.error(500, "Internal server error"),
            ["HTTP 500", "INTERNAL_SERVER_ERROR", "Internal server error"],
            True,
            id="500-documented",
        ),
        pytest.param(
            Response.html(502),
            ["HTTP 502", "HTML page instead of JSON"],
            False,
            id="502-html",
        ),
        pytest.param(
            Response.error(503, "Service temporarily unavailable", shape="problem"),
            ["HTTP 503", "SERVICE_UNAVAILABLE", "Service temporarily unavailable"],
            True,
            id="503-problem",
        ),
        pytest.param(
            Response(504, b"", headers={"X-Request-Id": "edge-7f3a"}),
            ["HTTP 504", "empty body", "edge-7f3a"],
            False,
            id="504-empty-with-header-id",
        ),
    ],
)
def test_server_errors_are_shown(
    world: World, answer: Response, expected: list[str], rid: bool
) -> None:
    """5xx answers, JSON or an HTML page from a proxy, end as a failed request whose reply says
    what the provider answered, with its requestId (body or X-Request-Id) when it gave one; a
    5xx is an answer, so it is not retried."""
    settled = settle(world, EMAIL, answer)

    for text in expected:
        assert text in settled.reply_text, text
    if rid:
        assert answer.request_id
        assert f"Provider requestId: `{answer.request_id}`" in settled.reply_text
    elif "edge-7f3a" not in expected:
        assert "No provider requestId" in settled.reply_text
    assert "<html" not in json.dumps(settled.reply).lower()
    assert_closed(settled, State.FAILED)
    assert len(world.provider.calls) == 1


@pytest.mark.parametrize(
    ("answer", "expected", "rid"),
    [
        pytest.param(
            Response.wrong_shape(), ["HTTP 200", "did not report success"], None, id="wrong-shape"
        ),
        pytest.param(
            Response.not_successful("Nothing to clear"),
            ["HTTP 200", "did not report success", "Nothing to clear"],
            "from-body",
            id="success-false",
        ),
        pytest.param(
            Response.json(
                200,
                {
                    "success": True,
                    "requestId": "rid-shape-1",
                    "data": {"success": True, "clearedDomains": "example.com"},
                },
            ),
            ["HTTP 200", "clearedDomains is not a list"],
            "rid-shape-1",
            id="cleared-not-a-list",
        ),
        pytest.param(
            Response.json(200, "this is not JSON", content_type="application/json"),
            ["HTTP 200", "not JSON"],
            None,
            id="not-json",
        ),
    ],
)
def test_a_200_of_the_wrong_shape_is_shown(
    world: World, answer: Response, expected: list[str], rid: str | None
) -> None:
    """A 200 whose body is not the documented success ends as a failed request with a reply
    saying what was wrong with it (never a success with made-up numbers)."""
    settled = settle(world, EMAIL, answer)

    for text in expected:
        assert text in settled.reply_text, text
    if rid == "from-body":
        rid = answer.request_id
    if rid:
        assert f"Provider requestId: `{rid}`" in settled.reply_text
    assert "Cleared domains" not in settled.reply_text
    assert_closed(settled, State.FAILED)
    assert isinstance(settled.request.outcome, ProviderFailed)
    assert settled.request.outcome.kind == "bad_response"


# ---------------------------------------------------------------------------------------------
# 429: retried after Retry-After, within bounds


def test_429_three_times_gives_up_and_says_rate_limited(world: World) -> None:
    """Three 429s in a row: the provider was asked three times, then the reply gives HTTP 429,
    the code, the provider's message and requestId, and the request is failed."""
    answers = [Response.rate_limited("0") for _ in range(3)]

    settled = settle(world, EMAIL, *answers)

    assert len(world.provider.calls) == 3
    assert all(call["json"] == CONFIRM for call in world.provider.calls)
    for text in ("HTTP 429", "TOO_MANY_REQUESTS", "Too many requests, slow down"):
        assert text in settled.reply_text, text
    assert answers[-1].request_id
    assert answers[-1].request_id in settled.reply_text
    assert_closed(settled, State.FAILED)
    assert isinstance(settled.request.outcome, ProviderFailed)
    assert settled.request.outcome.kind == "rate_limited"


def test_429_without_a_message_says_rate_limited_in_our_words(world: World) -> None:
    """A 429 whose body names no message still says plainly that the provider is limiting the
    bot, how many attempts were made, and the code and requestId it gave."""
    answers = [
        Response.json(
            429, {"code": "RATE_LIMITED", "requestId": f"rl-{i}"}, headers={"Retry-After": "0"}
        )
        for i in range(3)
    ]

    settled = settle(world, EMAIL, *answers)

    reply = settled.reply_text
    for text in ("HTTP 429", "RATE_LIMITED", "limiting how often", "3 attempts", "rl-2"):
        assert text in reply, text
    assert_closed(settled, State.FAILED)


def test_one_429_then_success_succeeds_after_retry_after(world: World) -> None:
    """One 429 with Retry-After: 1, then the normal answer: the bot waited about a second,
    asked exactly twice, and the request succeeded."""
    started = time.monotonic()

    settled = settle(world, EMAIL, Response.rate_limited("1"))

    assert time.monotonic() - started >= 0.9
    assert len(world.provider.calls) == 2
    assert settled.request.state is State.SUCCEEDED
    assert ":white_check_mark:" in settled.reply_text
    assert "`example.com`" in settled.reply_text
    assert "state: succeeded" in settled.final_text


# ---------------------------------------------------------------------------------------------
# No answer: the outcome is unknown, and the call is not retried


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Response.hang(30), id="hang"),
        pytest.param(Response.close_after_read(), id="close"),
    ],
)
def test_no_answer_leaves_the_outcome_unknown(slow_world: World, answer: Response) -> None:
    """A provider that takes the request and never answers (past HOSTUP_TIMEOUT, or by closing
    the connection) leaves the request unknown: the reply says plainly the provider may or may
    not have acted, and the call is not retried."""
    settled = settle(slow_world, EMAIL, answer)

    assert len(slow_world.provider.calls) == 1
    reply = settled.reply_text
    assert "*unknown*" in reply
    assert "may or may not" in reply
    assert "Nothing was cleared" not in reply
    assert_closed(settled, State.UNKNOWN)
    assert "Outcome unknown" in settled.final_text
    assert settled.request.outcome is not None
    assert settled.request.outcome.outcome_unknown is True
    dm = slow_world.driver.dm_with(REQUESTER, "unknown")
    assert EMAIL in dm["text"]


def test_unreachable_provider_fails_and_says_nothing_was_sent(tmp_path) -> None:
    """A provider nobody listens for: nothing reached it, so the outcome is known: failed, and
    the reply says the provider could not be reached and nothing was sent."""
    url = f"http://127.0.0.1:{closed_port()}/api"
    with World(database_path=tmp_path / "bot.db", settings={"HOSTUP_API_URL": url}) as world:
        settled = settle(world, EMAIL)

        assert world.provider.calls == []
        reply = settled.reply_text
        assert "Could not reach the provider" in reply
        assert "Nothing was sent" in reply
        assert "127.0.0.1" in reply
        assert_closed(settled, State.FAILED)
        assert isinstance(settled.request.outcome, ProviderFailed)
        assert settled.request.outcome.kind == "unreachable"
        assert settled.request.outcome.outcome_unknown is False


# ---------------------------------------------------------------------------------------------
# Hostile answers


def test_provider_text_cannot_ping_the_channel(world: World) -> None:
    """Mentions and links in the provider's code, message and requestId are escaped in every
    reply, update and DM: nobody is pinged, nothing is linked."""
    hostile = Response.json(
        400,
        {
            "code": "<!here>",
            "error": "Bad Request",
            "message": "Hey <!channel> and <@U123>, see <https://evil.example|here> & cry",
            "requestId": "<!everyone>",
        },
    )

    settled = settle(world, EMAIL, hostile)
    world.driver.dm_with(REQUESTER, "failed")

    posted = slack_calls_after(world, settled.message["ts"])
    assert {c.method for c in posted} == {"chat.postMessage", "chat.update"}
    assert all(c.ok for c in posted)
    for call in posted:
        sent = json.dumps(call.params)
        for raw in ("<!channel>", "<@U123>", "<!here>", "<!everyone>", "<https://evil"):
            assert raw not in sent, (raw, call.method)
    reply = settled.reply_text
    assert "&lt;!channel&gt;" in reply
    assert "&lt;@U123&gt;" in reply
    assert "&amp; cry" in reply
    assert "&lt;!everyone&gt;" in reply
    assert "&lt;!channel&gt;" in settled.final_text
    assert_closed(settled, State.FAILED)


def test_five_thousand_cleared_domains_fit_in_one_reply(world: World) -> None:
    """A success naming 5000 domains gives a reply Slack accepts (within Block Kit limits) that
    shows some of them and says how many more; nothing is lost from the store."""
    domains = ["<!channel>.example"] + [f"d{i:04d}.example.com" for i in range(4999)]
    world.provider.cleared_domains = domains

    settled = settle(world, EMAIL)

    replies = [c for c in world.slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 1
    assert replies[0].ok, replies[0].answer
    assert all(c.ok for c in world.slack.calls_to("chat.update"))
    line = next(
        line for line in settled.reply_text.splitlines() if line.startswith("*Cleared domains")
    )
    assert line.startswith("*Cleared domains (5000):*")
    more = re.search(r" and (\d+) more$", line)
    assert more, line
    shown = line.count("`") // 2
    assert shown > 0
    assert shown + int(more.group(1)) == 5000
    assert "&lt;!channel&gt;.example" in line
    assert all(len(b["text"]["text"]) <= 3000 for b in settled.reply["blocks"] if "text" in b)
    assert "(5000 domain(s) cleared)" in settled.final_text
    assert settled.request.state is State.SUCCEEDED
    assert isinstance(settled.request.outcome, Cleared)
    assert len(settled.request.outcome.cleared_domains) == 5000


# ---------------------------------------------------------------------------------------------
# Slack's own rate limits do not lose the outcome


def test_slack_429_on_the_thread_reply_is_retried(world: World) -> None:
    """Slack answers the thread reply with 429: the bot's client waits and posts it again, so
    the failure is still shown, once."""
    assert world.driver is not None
    message = ask(world)
    world.slack.fail_next(
        "chat.postMessage",
        error="ratelimited",
        status=429,
        retry_after=0,
        where=lambda params: params.get("thread_ts") == message["ts"],
    )
    world.provider.enqueue(Response.error(500, "Internal server error"))

    world.driver.approve(APPROVER, message)
    final = world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)

    attempts = [
        c
        for c in world.slack.calls_to("chat.postMessage")
        if c.params.get("thread_ts") == message["ts"]
    ]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[-1].ok
    assert len(world.driver.thread(message)) == 1
    assert "HTTP 500" in visible(reply)
    assert "state: failed" in visible(final)


def test_slack_429_on_the_message_update_is_retried(world: World) -> None:
    """Slack answers chat.update with 429: the bot's client retries, and the request message
    still ends showing the failed state with no buttons."""
    assert world.driver is not None
    message = ask(world)
    before = len(world.slack.calls_to("chat.update"))  # the provider line, shown already
    world.slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=0, times=2)
    world.provider.enqueue(Response.error(503, "Service temporarily unavailable", shape="problem"))

    world.driver.approve(APPROVER, message)
    final = world.driver.final_message(message)
    reply = world.driver.wait_thread_reply(message)

    updates = world.slack.calls_to("chat.update")[before:]
    assert [c.status for c in updates[:2]] == [429, 429]
    assert updates[-1].ok
    assert "state: failed" in visible(final)
    assert "actions" not in [b["type"] for b in final["blocks"]]
    assert "HTTP 503" in visible(reply)


# ---------------------------------------------------------------------------------------------
# The requester is told


def test_requester_is_told_of_a_failure_by_dm(world: World) -> None:
    """After a failed call the requester gets a DM saying their request failed, naming the
    address and pointing at the thread in the approval channel."""
    settle(world, EMAIL, Response.error(403, "This API key may not do that", shape="problem"))

    dm = world.driver.dm_with(REQUESTER, "failed")

    assert EMAIL in dm["text"]
    assert f"<#{CHANNEL}>" in dm["text"]
    assert f"<@{APPROVER}>" in dm["text"]
    assert ":white_check_mark:" not in dm["text"]


# ---------------------------------------------------------------------------------------------
# Nothing the provider sends crashes the bot


def _every_bad_answer() -> list[tuple[str, list[Response], State]]:
    deep = "[" * 100_000
    return [
        ("400", [Response.error(400, "Email is required")], State.FAILED),
        ("401", [Response.error(401, "Invalid API key", shape="problem")], State.FAILED),
        ("403", [Response.error(403)], State.FAILED),
        ("404", [Response.error(404, "No such endpoint", shape="problem")], State.FAILED),
        ("418-text", [Response(418, "I'm a teapot", "text/plain")], State.FAILED),
        ("500", [Response.error(500, "Internal server error")], State.FAILED),
        ("502-html", [Response.html(502)], State.FAILED),
        ("503", [Response.error(503, shape="problem")], State.FAILED),
        ("302", [Response(302, b"", headers={"Location": "https://elsewhere/"})], State.FAILED),
        ("429x3", [Response.rate_limited("0") for _ in range(3)], State.FAILED),
        ("wrong-shape", [Response.wrong_shape()], State.FAILED),
        ("not-successful", [Response.not_successful()], State.FAILED),
        ("json-list", [Response.json(200, [1, 2, 3])], State.FAILED),
        ("empty-200", [Response(200, b"")], State.FAILED),
        ("not-utf8", [Response(200, b"\xff\xfe\x00garbage")], State.FAILED),
        ("deep-json", [Response(200, deep)], State.FAILED),
        ("bad-gzip", [Response(200, b"nope", headers={"Content-Encoding": "gzip"})], State.FAILED),
        ("too-large", [Response(200, b" " * 5_000_001)], State.FAILED),
        (
            "odd-types",
            [Response.json(400, {"code": {"x": 1}, "message": ["a"], "requestId": None})],
            State.FAILED,
        ),
        (
            "null-domain",
            [
                Response.json(
                    200,
                    {
                        "success": True,
                        "data": {"success": True, "clearedDomains": [None], "clientsNotified": []},
                    },
                )
            ],
            State.FAILED,
        ),
        ("hang", [Response.hang(30)], State.UNKNOWN),
        ("close", [Response.close_after_read()], State.UNKNOWN),
    ]


def test_no_provider_answer_crashes_the_bot(slow_world: World) -> None:
    """After every bad answer above, each on its own request, every request has exactly one
    reply and a closed message, and a fresh request is still served and approved; /healthz
    still answers 200."""
    world = slow_world
    for n, (name, answers, state) in enumerate(_every_bad_answer()):
        settled = settle(world, f"user{n}@burst{n}.example", *answers)
        assert settled.request.state is state, name
        assert_closed(settled, state)
        assert settled.request.id in settled.reply_text, name

    settled = settle(world, "fresh@example.org")

    assert settled.request.state is State.SUCCEEDED
    assert "`example.org`" in settled.reply_text
    assert "state: succeeded" in settled.final_text
    health = httpx.get(world.url + "/healthz", timeout=5, trust_env=False)
    assert health.status_code == 200
    assert health.json() == {"ok": True}
