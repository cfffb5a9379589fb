"""The transport under the client: the stand-in provider's own behaviour (its key check,
modes, hang and delay), a trickled answer cut off at the deadline, and the metrics hook
hearing of each exchange once with what the client made of it.

The provider client against the stand-in provider, over real HTTP on loopback; its other
concerns are in the other tests/integration/test_hostup_*.py, their shared fixtures in
tests/conftest.py and helpers in tests/provider_client.py.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from provider_client import EMAIL, KEY, MakeClient, confirm_error, free_port

from bot.domain.views import ViewFailure
from bot.provider import reading
from bot.provider.client import HostupClient
from bot.provider.confirm import MAX_ATTEMPTS
from bot.provider.failures import ProviderError
from bot.standins.provider import MODES, FakeProvider, Response

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
