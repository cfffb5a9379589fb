"""The provider client: HostUp's email-verification API, typed results and errors.

One :class:`HostupClient` holds one long-lived ``httpx.Client`` with an explicit timeout
(:mod:`bot.provider.transport`: each attempt bounded by a wall-clock deadline), and is the
service's Provider port through two clients that share it:

* :mod:`bot.provider.confirm`: ``confirm(email)`` and ``status()``, the v1 API, with the
  retries that are safe;
* :mod:`bot.provider.view`: ``view(domain)`` and ``view_access()``, the per-domain view of the
  v2 API, read-only, one quick attempt per call;
* :mod:`bot.provider.resend`: ``resend(domain, language=...)``, the v2 action that sends the
  verification email again (the domain's id found as the view finds it), with the confirm
  client's attempts and safe retries.

Every failure is classified in one place, :mod:`bot.provider.failures`: a
:class:`~bot.provider.failures.ProviderError` from ``confirm``, ``resend`` and ``status``, a
:class:`~bot.domain.views.ViewFailure` from ``view``. Everything the provider sends is
untrusted (:mod:`bot.provider.reading`); so is what each answer says of the provider's rate limit
(a :class:`~bot.domain.pace.Pace`, on every result and failure of ``confirm`` and ``resend``, the
latest on :attr:`HostupClient.last_pace`). The API key never appears in a log line, an exception
or a dict this package produces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import httpx

from bot.domain.outcomes import Cleared, Resent
from bot.domain.pace import Pace
from bot.domain.views import ProviderView, ViewUnavailable
from bot.provider.confirm import (
    CONNECT_BACKOFF,
    MAX_ATTEMPTS,
    MAX_RETRY_AFTER,
    ConfirmClient,
    ProviderStatus,
)
from bot.provider.failures import Failures, ProviderError
from bot.provider.resend import ResendClient
from bot.provider.transport import Exchanges
from bot.provider.view import VIEW_CALLS, VIEW_TIMEOUT, ViewClient


def longest_call(
    timeout: float, max_attempts: int = MAX_ATTEMPTS, max_retry_after: float = MAX_RETRY_AFTER
) -> float:
    """Seconds a claimed request can stay executing at most, whichever its operation: every
    attempt of ``confirm`` or of ``resend`` and the waits between them (a ``resend`` first
    looks up the domain's id: the view's list calls), then the read-back of the domain's view.
    The longer of the two operations: a resend, by its lookup.

    httpx applies ``timeout`` to connecting and to each read; twice it per attempt is a
    generous bound. A claim older than this cannot still be waiting on the provider.
    """
    view_timeout = min(timeout, VIEW_TIMEOUT)
    attempts = max_attempts * 2 * timeout + (max_attempts - 1) * max(
        max_retry_after, CONNECT_BACKOFF * 2.0 ** (max_attempts - 1)
    )
    confirm = attempts
    resend = (VIEW_CALLS - 1) * 2 * view_timeout + attempts
    return max(confirm, resend) + VIEW_CALLS * 2 * view_timeout


class HostupClient:
    """The provider's email-verification API over one long-lived httpx client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        max_retry_after: float = MAX_RETRY_AFTER,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")
        if any(c in api_key for c in "\r\n\0"):
            # Say what is wrong without repeating the key.
            raise ValueError(
                "The API key contains a line break or NUL, which a header cannot carry."
            )
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        # Told of every HTTP exchange once: (endpoint, outcome, seconds), the outcome being what
        # the client made of the answer (see Exchanges.judged); the metrics' hook.
        self._exchanges = Exchanges(
            self.base_url, api_key, timeout, transport=transport, observe=observe
        )
        failures = Failures(self.base_url, api_key)
        self._confirm = ConfirmClient(
            self._exchanges,
            failures,
            max_attempts=max_attempts,
            max_retry_after=max_retry_after,
            sleep=sleep,
        )
        self._view = ViewClient(self._exchanges, failures, view_timeout=self.view_timeout)
        self._resend = ResendClient(
            self._exchanges, failures, calls=self._confirm, lookup=self._view
        )
        # The latest word on the rate limit of a confirm or a resend (see last_pace).
        self._pace_lock = threading.Lock()
        self._last_pace: Pace | None = None

    @property
    def attempt_deadline(self) -> float:
        """Seconds one attempt of ``confirm`` or ``resend`` takes at most, wall-clock:
        connecting, sending, the headers and the body (HOSTUP_TIMEOUT). A claim's lease covers
        one attempt and a grace, and is renewed before each further one."""
        return self.timeout

    @property
    def view_timeout(self) -> float:
        return min(self.timeout, VIEW_TIMEOUT)

    @property
    def max_view_duration(self) -> float:
        """Seconds one ``view`` can take at most: each of its calls, twice its timeout."""
        return VIEW_CALLS * 2 * self.view_timeout

    @property
    def max_duration(self) -> float:
        """Seconds a claimed request can stay executing at most, a confirm or a resend
        (the longer of the two), with its read-back (see :func:`longest_call`)."""
        return longest_call(self.timeout, self.max_attempts, self.max_retry_after)

    def __repr__(self) -> str:
        return f"HostupClient(base_url={self.base_url!r}, max_attempts={self.max_attempts!r})"

    # -- lifecycle

    def close(self) -> None:
        self._exchanges.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API (the service's Provider port, and the checks' reads)

    def confirm(self, email: str, *, renew: Callable[[float], bool] | None = None) -> Cleared:
        """Clear the verification caches for ``email``'s domain. Raises ProviderError.

        Each attempt ends by its deadline (``attempt_deadline``). Before each attempt after the
        first, ``renew(wait)`` (when given) must agree to it (the caller's claim is kept for
        the wait and one more attempt); when it does not, the failure so far is raised.
        """
        try:
            cleared = self._confirm.confirm(email, renew=renew)
        except ProviderError as error:
            self._paced(error.pace)
            raise
        self._paced(cleared.pace)
        return cleared

    def resend(
        self,
        domain: str,
        *,
        language: str,
        domain_id: str | None = None,
        renew: Callable[[float], bool] | None = None,
    ) -> Resent:
        """Send ``domain``'s verification email again in ``language`` (``en`` or ``sv``); the
        domain found by name unless ``domain_id`` is known. Raises ProviderError (see
        :meth:`ResendClient.resend <bot.provider.resend.ResendClient.resend>`). Deadlines and
        ``renew`` as for :meth:`confirm`."""
        try:
            resent = self._resend.resend(
                domain, language=language, domain_id=domain_id, renew=renew
            )
        except ProviderError as error:
            self._paced(error.pace)
            raise
        self._paced(resent.pace)
        return resent

    # -- the provider's word on its rate limit

    @property
    def last_pace(self) -> Pace | None:
        """What the provider last said of its rate limit in answer to a ``confirm`` or a
        ``resend`` (of any thread; the one read latest wins), or None before it said anything.
        Each result and failure carries its own too (``pace``)."""
        with self._pace_lock:
            return self._last_pace

    def _paced(self, pace: Pace | None) -> None:
        if pace is None:
            return
        with self._pace_lock:
            if self._last_pace is None or pace.read_at >= self._last_pace.read_at:
                self._last_pace = pace

    def status(self) -> ProviderStatus:
        """The provider's read-only cache status; proves the key works. Raises ProviderError."""
        return self._confirm.status()

    def view(self, domain: str, domain_id: str | None = None) -> ProviderView:
        """The provider's email-verification view of ``domain``; raises ViewFailure (see
        :meth:`ViewClient.view <bot.provider.view.ViewClient.view>`)."""
        return self._view.view(domain, domain_id)

    def view_access(self) -> ViewUnavailable | None:
        """None when the key may read the per-domain view (one ``GET v2/domains?limit=1``,
        read-only); else why it may not."""
        return self._view.view_access()
