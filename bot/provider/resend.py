"""The resend client: HostUp's v2 action that sends a domain's verification email again
(``POST {base}/v2/domains/{id}/email-verification/actions/resend?lang=en|sv``,
``Authorization: Bearer <key>``, scope ``write:domains``, no body).

``resend(domain, language=...)`` finds the domain's id as the view does (``GET
v2/domains?name=…``, shared with a reading under way: :meth:`ViewClient.domain_id
<bot.provider.view.ViewClient.domain_id>`; skipped when the id is known), then POSTs the action
and returns a :class:`~bot.domain.outcomes.Resent`. Every failure is a
:class:`~bot.provider.failures.ProviderError` (the domain's ``ProviderFailure``):

* the lookup failed (nothing was sent): ``rejected`` when the provider lists no such domain,
  ``auth`` (401, 403) and ``rate_limited`` (429) as they are, anything else ``unreachable``
  (the action was never reached);
* the action refused (its RFC 7807 problem document's title and detail are the message, its
  ``code`` and ``requestId`` are kept): ``rejected`` (400, 404, 409, 422 and any other 4xx),
  ``auth`` (401, 403), ``rate_limited`` (429 after the attempts allowed); nothing was sent;
* the action may have acted and we cannot know (a 5xx, an answer not in the documented shape,
  no answer after the request was sent): ``outcome_unknown``.

The attempts, their deadline and the retries that are safe are the confirm client's
(:meth:`ConfirmClient.call <bot.provider.confirm.ConfirmClient.call>`): a connection that never
reached the provider, and a 429 whose ``Retry-After`` is within the maximum, each after
``renew(wait)`` agrees. The 200 is read as untrusted: ``ok`` must be true and
``verification.recipient`` and ``sentAt`` usable text; the rest (``domain``,
``verification.method``) is read leniently.

What the last answer said of the provider's rate limit (:class:`~bot.domain.pace.Pace`) is on
the result (``Resent.pace``) and on the failure (``ProviderError.pace``, ``outcome.pace``): the
action's answer, or the lookup's when the lookup failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

from bot.domain.outcomes import Resent
from bot.domain.pace import Pace
from bot.domain.views import ViewFailure, ViewUnavailable
from bot.provider.api import RESEND_PATH, RESEND_SCOPE
from bot.provider.confirm import ConfirmClient
from bot.provider.failures import Failures, ProviderError, status_words
from bot.provider.reading import (
    MAX_ID_CHARS,
    MAX_ITEM_CHARS,
    MAX_MESSAGE_CHARS,
    Answer,
    clean_text,
    json_object,
)
from bot.provider.transport import Exchanges
from bot.provider.view import ViewClient

log = logging.getLogger(__name__)

# The languages the action documents for its email (``lang``; the provider's default is en).
LANGUAGES: Final = ("en", "sv")
# Field-level errors of an invalid_request shown in a message, at most.
MAX_FIELD_ERRORS: Final = 3


class ResendClient:
    """``resend`` over the shared exchanges: the lookup through the view client, the action
    through the confirm client's attempts."""

    def __init__(
        self, exchanges: Exchanges, failures: Failures, *, calls: ConfirmClient, lookup: ViewClient
    ) -> None:
        self._exchanges = exchanges
        self._failures = failures
        self._calls = calls
        self._lookup = lookup

    def resend(
        self,
        domain: str,
        *,
        language: str,
        domain_id: str | None = None,
        renew: Callable[[float], bool] | None = None,
    ) -> Resent:
        """Send ``domain``'s verification email again, in ``language`` (``en`` or ``sv``; any
        other is a ValueError: the settings allow no other). Raises ProviderError.

        The id comes from the list filtered by name unless ``domain_id`` is given. Each attempt
        ends by its deadline; before each attempt after the first, ``renew(wait)`` (when given)
        must agree to it, else the failure so far is raised.
        """
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        found = domain_id if domain_id is not None else self._domain_id(domain)
        log.info("Asking the provider to resend the verification email for %s", domain)
        path = RESEND_PATH.format(id=quote(found, safe=""))
        try:
            answer = self._calls.call(
                "POST",
                path,
                None,
                unsafe=True,
                renew=renew,
                params={"lang": language},
                bearer=True,
                describe=problem_message,
            )
        except ProviderError as error:
            raise self._refused(error) from error
        with self._exchanges.judged(answer):
            return self._resent(answer, domain, found)

    # -- the lookup: nothing is sent when it fails

    def _domain_id(self, domain: str) -> str:
        self._exchanges.forget_pace_here()
        try:
            return self._lookup.domain_id(domain)
        except ViewFailure as failure:
            # What the lookup's answer said of the rate limit (None when another lookup of the
            # same domain answered for this one, or none came).
            pace = self._exchanges.pace_here()
            raise self._lookup_failed(failure.unavailable, pace) from failure

    def _lookup_failed(self, unavailable: ViewUnavailable, pace: Pace | None) -> ProviderError:
        domain, status = unavailable.domain, unavailable.status
        if unavailable.kind == "not_found":
            return self._failures.error(
                "rejected",
                f"The provider does not list {domain} on this account, so no verification "
                "email was sent.",
                status=status,
                pace=pace,
            )
        why = f"could not look up {domain} at the provider: {unavailable.message}"
        if unavailable.kind == "no_scope":
            return self._failures.error(
                "auth",
                f"The provider refused the API key ({why}). Nothing was sent.",
                status=status,
                pace=pace,
            )
        if unavailable.kind == "rate_limited":
            return self._failures.error(
                "rate_limited",
                f"The provider is limiting how often we call it ({why}). Nothing was sent.",
                status=status,
                pace=pace,
            )
        # A 5xx, a timeout or an unreadable list: the resend action itself was never reached.
        return self._failures.error(
            "unreachable",
            f"The bot {why}. The resend was not sent, so nothing changed.",
            status=status,
            pace=pace,
        )

    # -- the action's answer

    def _refused(self, error: ProviderError) -> ProviderError:
        """The action's failure as the resend records it: a 5xx or an unreadable answer may
        have come after the email was sent, so its outcome is unknown (a timeout after sending
        already is); a 403 says which scope the action needs."""
        message = error.message
        if error.kind in ("server_error", "bad_response"):
            return self._failures.error(
                error.kind,
                f"{message} The provider may or may not have sent the email: check before "
                "trying again.",
                status=error.status,
                code=error.code,
                request_id=error.request_id,
                outcome_unknown=True,
                pace=error.pace,
            )
        if error.status == 403:
            message = f"{message} (the resend needs the {RESEND_SCOPE} scope)"
        return self._failures.error(
            error.kind,
            message,
            status=error.status,
            code=error.code,
            request_id=error.request_id,
            outcome_unknown=error.outcome_unknown,
            pace=error.pace,
        )

    def _resent(self, answer: Answer, domain: str, domain_id: str) -> Resent:
        payload = answer.payload
        request_id = answer.request_id()
        if not isinstance(payload, dict):
            raise self._unknown(answer, request_id, "it is not a JSON object")
        if payload.get("ok") is not True:
            raise self._unknown(answer, request_id, "ok is not true")
        verification = json_object(payload.get("verification"))
        recipient = clean_text(verification.get("recipient"), MAX_ITEM_CHARS)
        if recipient is None:
            raise self._unknown(answer, request_id, "verification.recipient is missing")
        sent_at = clean_text(payload.get("sentAt"), MAX_ID_CHARS)
        if sent_at is None:
            raise self._unknown(answer, request_id, "sentAt is missing")
        listed = json_object(payload.get("domain"))
        return Resent(
            recipient=self._failures.redact(recipient),
            sent_at=sent_at,
            domain=domain,
            domain_id=clean_text(listed.get("id"), MAX_ID_CHARS) or domain_id,
            method=clean_text(verification.get("method"), 40),
            provider_request_id=request_id,
            pace=answer.pace,
        )

    def _unknown(self, answer: Answer, request_id: str | None, why: str) -> ProviderError:
        return self._failures.error(
            "bad_response",
            f"The provider answered {status_words(answer.status)} but not in the documented "
            f"shape: {why}. It may or may not have sent the email: check before trying again.",
            status=answer.status,
            request_id=request_id,
            outcome_unknown=True,
            pace=answer.pace,
        )


def problem_message(payload: Any) -> str | None:
    """A sentence from an RFC 7807 problem document: its title and detail (either alone when
    the other is missing or the same), then up to MAX_FIELD_ERRORS of its field-level
    ``errors[]`` (``pointer: detail``); None when it has neither title nor detail."""
    if not isinstance(payload, dict):
        return None
    title = clean_text(payload.get("title"), MAX_MESSAGE_CHARS // 2)
    detail = clean_text(payload.get("detail"), MAX_MESSAGE_CHARS)
    if title and detail and title.rstrip(".").lower() != detail.rstrip(".").lower():
        text = f"{title}: {detail}"
    else:
        text = detail or title or ""
    fields = []
    errors = payload.get("errors")
    for item in errors if isinstance(errors, list) else ():
        item = json_object(item)
        said = clean_text(item.get("detail"), MAX_MESSAGE_CHARS // 4)
        if said:
            where = clean_text(item.get("pointer"), MAX_ID_CHARS // 4)
            fields.append(f"{where}: {said}" if where else said)
    if fields:
        shown = "; ".join(fields[:MAX_FIELD_ERRORS])
        more = len(fields) - MAX_FIELD_ERRORS
        text = f"{text} ({shown}{f'; {more} more' if more > 0 else ''})".strip()
    return clean_text(text, MAX_MESSAGE_CHARS)
