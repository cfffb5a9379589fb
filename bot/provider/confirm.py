"""The confirm client: HostUp's v1 email-verification API (``X-API-Key``).

* ``confirm(email)`` POSTs ``{"email": ..., "approved": "yes"}`` to
  ``{base}/email-verification/confirmed`` and returns the domain's
  :class:`~bot.domain.outcomes.Cleared`.
* ``status()`` GETs ``{base}/email-verification/status`` (read-only) and returns a
  :class:`ProviderStatus`.

Every failure is a :class:`~bot.provider.failures.ProviderError` (see
:mod:`bot.provider.failures` for its kinds). A request that may have reached the provider is
never retried here (after ``confirm`` its outcome is unknown: that is for a person to decide).
A 429 is retried after its ``Retry-After`` (bounded), and a connection that never reached the
provider is retried with a short backoff, within ``max_attempts`` in all.

What the last answer said of the provider's rate limit (:class:`~bot.domain.pace.Pace`) is on
the result (``Cleared.pace``) and on the failure (``ProviderError.pace``, ``outcome.pace``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from bot.domain.outcomes import Cleared
from bot.provider.api import CONFIRM_PATH, STATUS_PATH
from bot.provider.failures import Failures, explain, status_words, unanswered
from bot.provider.reading import (
    MAX_ID_CHARS,
    MAX_MESSAGE_CHARS,
    Answer,
    clean_text,
    error_fields,
    parse_retry_after,
    status_domain_name,
    string_list,
)
from bot.provider.transport import Exchanges

log = logging.getLogger(__name__)

# Retry-After missing or unreadable.
DEFAULT_RETRY_AFTER: Final = 1.0
# First wait after a failed connection; doubles on each further attempt.
CONNECT_BACKOFF: Final = 0.2
# The confirm call's attempts and the longest Retry-After it waits on, unless told otherwise.
MAX_ATTEMPTS: Final = 3
MAX_RETRY_AFTER: Final = 30.0


@dataclass(frozen=True)
class ProviderStatus:
    """The provider's read-only view of the email-verification caches.

    The reference documents ``data.domains`` as an array of objects without naming their
    fields (its example is ``[]``), so ``listed`` counts every item the provider sent and
    ``domains`` holds the names the bot could read from them (see ``status_domain_name``).
    """

    domains: tuple[str, ...]
    listed: int
    loading: bool
    last_checked: str | None


class ConfirmClient:
    """``confirm`` and ``status`` over the shared exchanges, with the retries that are safe."""

    def __init__(
        self,
        exchanges: Exchanges,
        failures: Failures,
        *,
        max_attempts: int,
        max_retry_after: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self._exchanges = exchanges
        self._failures = failures
        self._sleep = sleep

    def confirm(self, email: str, *, renew: Callable[[float], bool] | None = None) -> Cleared:
        """Clear the verification caches for ``email``'s domain. Raises ProviderError.

        Each attempt ends by its deadline (``attempt_deadline``). Before each attempt after the
        first, ``renew(wait)`` (when given) must agree to it (the caller's claim is kept for
        the wait and one more attempt); when it does not, the failure so far is raised.
        """
        log.info("Asking the provider to confirm email verification for %s", email)
        answer = self.call(
            "POST", CONFIRM_PATH, {"email": email, "approved": "yes"}, unsafe=True, renew=renew
        )
        with self._exchanges.judged(answer):
            data, request_id = self._success_data(answer)
            cleared = string_list(data.get("clearedDomains"), allow_int=False)
            if cleared is None:
                raise self._failures.bad_shape(
                    answer, request_id, "clearedDomains is not a list of names"
                )
            clients = string_list(data.get("clientsNotified"), allow_int=True)
            if clients is None:
                raise self._failures.bad_shape(
                    answer, request_id, "clientsNotified is not a list of ids"
                )
            payload = answer.payload
            message = clean_text(data.get("message"), MAX_MESSAGE_CHARS) or ""
            return Cleared(
                cleared_domains=cleared,
                clients_notified=clients,
                message=self._failures.redact(message),
                provider_request_id=request_id,
                timestamp=clean_text(payload.get("timestamp"), MAX_ID_CHARS),
                pace=answer.pace,
            )

    def status(self) -> ProviderStatus:
        """The provider's read-only cache status; proves the key works. Raises ProviderError."""
        answer = self.call("GET", STATUS_PATH, None, unsafe=False)
        with self._exchanges.judged(answer):
            data, request_id = self._success_data(answer)
            items = data.get("domains", [])
            if not isinstance(items, list):
                raise self._failures.bad_shape(answer, request_id, "domains is not a list")
            names = (status_domain_name(item) for item in items)
            loading = data.get("loading", False)
            if not isinstance(loading, bool):
                raise self._failures.bad_shape(answer, request_id, "loading is not true or false")
            return ProviderStatus(
                domains=tuple(name for name in names if name is not None),
                listed=len(items),
                loading=loading,
                last_checked=clean_text(data.get("lastChecked"), MAX_ID_CHARS),
            )

    # -- one call, with the retries that are safe

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        unsafe: bool,
        renew: Callable[[float], bool] | None = None,
        params: Mapping[str, str] | None = None,
        bearer: bool = False,
        describe: Callable[[Any], str | None] | None = None,
    ) -> Answer:
        """Send until there is an answer to interpret; return it if it is a 2xx (for the caller
        to judge, see :meth:`Exchanges.judged`), else raise ProviderError (counted here).

        ``unsafe``: the request changes something at the provider, so an error after sending
        leaves the outcome unknown. ``renew(wait)``: asked before each further attempt; no
        means the attempts end here, as if this one had been the last. ``params`` and
        ``bearer`` as for :meth:`Exchanges.send` (the resend client's v2 call uses both);
        ``describe``: the message of an error answer's JSON, when it gives one (see
        :meth:`Failures.refused`).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._exchanges.send(method, path, body, params=params, bearer=bearer)
            except httpx.TransportError as exc:
                # Only a connection that never reached the provider is safe to try again: after
                # anything else, the request was (at least partly) sent, or would fail the same
                # way. Never retried blindly.
                if unanswered(exc) == "not_connected":
                    wait = CONNECT_BACKOFF * 2 ** (attempt - 1)
                    if attempt < self.max_attempts and (renew is None or renew(wait)):
                        log.warning(
                            "Provider %s %s attempt %d/%d could not connect (%s); "
                            "retrying in %.1f s",
                            method,
                            path,
                            attempt,
                            self.max_attempts,
                            type(exc).__name__,
                            wait,
                        )
                        self._sleep(wait)
                        continue
                raise self._failures.unanswered(
                    exc, method, path, attempts=attempt, unsafe=unsafe
                ) from exc

            request_id = answer.request_id()
            log_level = logging.INFO if 200 <= answer.status < 300 else logging.WARNING
            log.log(
                log_level,
                "Provider %s %s attempt %d/%d answered %d (request id %s)",
                method,
                path,
                attempt,
                self.max_attempts,
                answer.status,
                request_id,
            )
            if answer.status == 429 and attempt < self.max_attempts:
                wait = parse_retry_after(answer.headers.get("retry-after"), time.time())
                wait = min(DEFAULT_RETRY_AFTER if wait is None else wait, self.max_retry_after)
                if renew is None or renew(wait):
                    log.warning("Provider rate limit: waiting %.1f s before trying again", wait)
                    self._exchanges.settle(answer, "rate_limited")
                    self._sleep(wait)
                    continue
            if 200 <= answer.status < 300 and not answer.too_large and not answer.undecodable:
                return answer
            error = self._failures.refused(answer, attempt, describe)
            self._exchanges.settle(answer, error.kind)
            raise error

    def _success_data(self, answer: Answer) -> tuple[dict[str, Any], str | None]:
        """The ``data`` object of a documented success answer, and the provider's request id."""
        payload = answer.payload
        if not isinstance(payload, dict):
            raise self._failures.error(
                "bad_response",
                explain(answer, payload, 1)
                if payload is None
                else f"The provider answered {status_words(answer.status)} with JSON that is "
                "not an object.",
                status=answer.status,
                request_id=answer.header_request_id(),
                pace=answer.pace,
            )
        code, provider_message, request_id = error_fields(payload)
        request_id = request_id or answer.header_request_id()
        data = payload.get("data")
        if isinstance(data, dict) and payload.get("success") is True:
            if data.get("success", True) is True:
                return data, request_id
            if provider_message is None:
                _, provider_message, _ = error_fields(data)
        said = f": {provider_message}" if provider_message else "."
        raise self._failures.error(
            "bad_response",
            f"The provider answered {status_words(answer.status)} but did not report success{said}",
            status=answer.status,
            code=code,
            request_id=request_id,
            pace=answer.pace,
        )
