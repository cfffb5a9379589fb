"""The exchanges with the provider: one long-lived httpx client, each attempt bounded by a
wall-clock deadline on the sockets themselves, each answer read in full and told to the metrics
once.

:class:`Exchanges` is what the confirm client and the view client share: it sends (the v1 key
as ``X-API-Key``, the v2 key as a Bearer token), reads the answer (see
:func:`~bot.provider.reading.read_answer`) and what it says of the rate limit (its ``pace``,
see :func:`~bot.provider.reading.read_pace`), and tells the metrics' hook of every exchange once,
with what the bot made of it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from bot.domain import correlation
from bot.domain.pace import Pace
from bot.domain.views import ViewFailure
from bot.provider.api import USER_AGENT, endpoint
from bot.provider.failures import ProviderError, unanswered_outcome
from bot.provider.reading import Answer, read_answer, read_pace

# ---------------------------------------------------------------------------------------------
# The attempt's deadline, on the sockets themselves

# httpx applies its timeout to connecting and to each read and write, not to the exchange: a
# provider that trickles its headers (a byte at a time, each within the timeout) keeps a call
# open for as long as it likes. So each exchange sets a wall-clock deadline for the thread that
# makes it, and every socket operation of the default transport is given at most the time left
# until then: at the deadline the operation times out, and httpcore closes the connection.
_deadline = threading.local()


def _time_left(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` shortened to the time left before this thread's deadline (none: as it is);
    ``error`` once the deadline has passed."""
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the attempt reached its deadline")
    return left if timeout is None else min(timeout, left)


@contextmanager
def _until(deadline: float) -> Iterator[None]:
    """Every socket operation of this thread's exchanges ends by ``deadline`` (monotonic)."""
    _deadline.at = deadline
    try:
        yield
    finally:
        _deadline.at = None


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each operation bounded by the thread's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, left, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport (its limits and TLS defaults) over a pool of deadline-bound sockets.
    (A proxy taken from the environment gets httpx's own transport: there only the body's
    reading is bounded by the deadline, see :meth:`Exchanges._exchange`.)"""

    def __init__(self) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(),
        )


# ---------------------------------------------------------------------------------------------
# The exchanges


class Exchanges:
    """One long-lived httpx client to the provider at ``base_url``; ``timeout`` is an exchange's
    deadline unless told otherwise. ``observe`` is told of every exchange once: (endpoint,
    outcome, seconds), the outcome being what the client made of the answer (see
    :meth:`judged`); the metrics' hook."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float,
        *,
        transport: httpx.BaseTransport | None = None,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self._api_key = api_key
        self._observe = observe
        # The pace of the last answer this thread received (see pace_here).
        self._here = threading.local()
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            headers={
                "X-API-Key": api_key,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            transport=transport if transport is not None else _DeadlineTransport(),
        )

    def close(self) -> None:
        self._client.close()

    def send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        params: Mapping[str, str] | None = None,
        bearer: bool = False,
        timeout: float | None = None,
    ) -> Answer:
        """One exchange. Without an answer it is counted here (``unreachable`` when nothing was
        sent, else ``timeout``); an answer is counted by whoever judges it (:meth:`settle`)."""
        timeout = self.timeout if timeout is None else timeout
        where = endpoint(path)
        started = time.perf_counter()
        try:
            answer = self._exchange(method, path, body, params, bearer, timeout)
        except BaseException as exc:
            self._tell(where, unanswered_outcome(exc), time.perf_counter() - started)
            raise
        answer = dataclasses.replace(
            answer,
            endpoint=where,
            seconds=time.perf_counter() - started,
            pace=read_pace(answer.headers, datetime.now(UTC)),
        )
        self._here.pace = answer.pace
        request_id = answer.request_id()
        if request_id is not None:
            correlation.set_field("provider_request_id", request_id)
        return answer

    def pace_here(self) -> Pace | None:
        """What the last answer this thread received (since :meth:`forget_pace_here`) said of
        the rate limit; for a failure raised without its answer at hand (the resend's
        lookup)."""
        pace: Pace | None = getattr(self._here, "pace", None)
        return pace

    def forget_pace_here(self) -> None:
        self._here.pace = None

    # -- the metrics: each exchange is told once, with what the bot made of it

    def _tell(self, endpoint: str, outcome: str, seconds: float) -> None:
        if self._observe is not None:
            self._observe(endpoint, outcome, seconds)

    def settle(self, answer: Answer, outcome: str) -> None:
        """Count the exchange that gave ``answer``: ``ok`` when it became a result, else the
        kind of failure it was taken for (a 200 the bot refuses is not ``ok``)."""
        self._tell(answer.endpoint, outcome, answer.seconds)

    @contextmanager
    def judged(self, answer: Answer) -> Iterator[None]:
        """Count ``answer``'s exchange once the block has read it: ``ok`` when the block
        returns, the kind of the ProviderError or ViewFailure it raises, ``error`` for anything
        else (a bug, which propagates and is logged)."""
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except ProviderError as exc:
            outcome = exc.kind
            raise
        except ViewFailure as exc:
            outcome = exc.unavailable.kind
            raise
        finally:
            self.settle(answer, outcome)

    def _exchange(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        bearer: bool,
        timeout: float,
    ) -> Answer:
        request = self._client.build_request(
            method, path, json=body, params=params, timeout=httpx.Timeout(timeout)
        )
        if bearer:
            # The v2 API takes the key as a Bearer token, and only that.
            del request.headers["X-API-Key"]
            request.headers["Authorization"] = f"Bearer {self._api_key}"
        # httpx times each read, not the whole exchange: a provider that trickles its headers
        # or its body could hold a call open for ever. Each attempt ends by its wall-clock
        # deadline: the sockets honour it (see _DeadlineTransport: connecting, sending, the
        # headers), and so does the reading of the body (for any transport).
        deadline = time.monotonic() + timeout
        with _until(deadline):
            response = self._client.send(request, stream=True)
            try:
                return read_answer(response, deadline)
            finally:
                response.close()
