"""The view client: the per-domain view of HostUp's v2 API (read-only, scope ``read:domains``,
``Authorization: Bearer <key>``).

``view(domain)`` GETs ``{base}/v2/domains?name=<domain>`` for the domain's id (by its ASCII
form, then by its Unicode form if that differs and the first found nothing; skipped when the id
is known, or shared with a reading of the same domain under way in this process), then ``GET
{base}/v2/domains/{id}/email-verification``. It returns a
:class:`~bot.domain.views.ProviderView` or raises :class:`~bot.domain.views.ViewFailure` (see
:mod:`bot.provider.failures` for its kinds): one attempt per call (no retry, no Retry-After
wait) with a shorter timeout (``VIEW_TIMEOUT``), so a reading is always quick and bounded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

import httpx

from bot.domain.inputs import domain_variants
from bot.domain.views import ProviderView, ViewFailure, ViewUnavailable
from bot.provider.api import DOMAINS_PATH, VIEW_PATH
from bot.provider.failures import Failures
from bot.provider.reading import (
    MAX_ID_CHARS,
    MAX_ITEM_CHARS,
    MAX_MESSAGE_CHARS,
    Answer,
    clean_text,
    json_bool,
    json_object,
)
from bot.provider.transport import Exchanges

log = logging.getLogger(__name__)

# Seconds for one call of the per-domain view, at most (HOSTUP_TIMEOUT when that is shorter).
VIEW_TIMEOUT: Final = 5.0
# Calls one reading makes at most: the list (for the id) by the domain's ASCII name, by its
# Unicode name (an internationalised domain the first did not find), then the view.
VIEW_CALLS: Final = 3


class ViewClient:
    """``view`` and ``view_access`` over the shared exchanges, each call within
    ``view_timeout`` seconds."""

    def __init__(self, exchanges: Exchanges, failures: Failures, *, view_timeout: float) -> None:
        self.view_timeout = view_timeout
        self._exchanges = exchanges
        self._failures = failures
        # Domain name -> the id a reading under way here is finding (or found).
        self._finding: dict[str, Future[str]] = {}
        self._finding_lock = threading.Lock()

    def view(self, domain: str, domain_id: str | None = None) -> ProviderView:
        """The provider's email-verification view of ``domain``; raises ViewFailure.

        The domain's id comes from the list filtered by name, unless ``domain_id`` (from an
        earlier reading) is given, or another reading of the same domain in this process is
        under way: then its list call serves both (a read-back right after an approval reuses
        the id the request's lookup is finding), and so does its failure. A failure of the view
        itself carries the id, so the next reading need not list again. Every field is read
        leniently: a missing or mistyped one is left out, never a reason to refuse the reading;
        only a body that is not a JSON object, or one with no ``status``, is.
        """
        if domain_id is not None:
            return self._view_with_id(domain, domain_id)
        with self._found_id(domain) as found:
            return self._view_with_id(domain, found)

    def domain_id(self, domain: str) -> str:
        """The provider's id of ``domain``, found as :meth:`view` finds it (the list filtered
        by name, shared with a reading of the same domain under way); raises ViewFailure
        (``not_found`` when the provider lists no such domain). The resend client's lookup."""
        with self._found_id(domain) as found:
            return found

    @contextmanager
    def _found_id(self, domain: str) -> Iterator[str]:
        """The id of ``domain``, shared with every other lookup of it in this process until the
        block ends (then never cached): one list call serves them all, and so does its
        failure."""
        key = domain.rstrip(".").lower()
        with self._finding_lock:
            finding = self._finding.get(key)
            mine = finding is None
            if finding is None:
                finding = self._finding[key] = Future()
        try:
            if mine:
                try:
                    found = self._domain_id(domain)
                except BaseException as exc:
                    finding.set_exception(exc)
                    raise
                finding.set_result(found)
            else:
                found = self._joined_id(domain, finding)
            yield found
        finally:
            if mine:  # shared until this reading is over, then never cached
                with self._finding_lock:
                    del self._finding[key]

    def view_access(self) -> ViewUnavailable | None:
        """None when the key may read the per-domain view (one ``GET v2/domains?limit=1``,
        read-only); else why it may not."""
        try:
            answer = self._read_v2("the account's domains", DOMAINS_PATH, {"limit": "1"})
        except ViewFailure as failure:
            return failure.unavailable
        self._exchanges.settle(answer, "ok")  # any 2xx will do: only the key's access is asked
        return None

    def _joined_id(self, domain: str, finding: Future[str]) -> str:
        """The id another reading of ``domain`` is finding. Its failure is this reading's too:
        waiting for it and then listing again could take longer than a reading may (see
        ``max_view_duration``: this wait, as long as the list calls, then the view call)."""
        try:
            return finding.result(timeout=(VIEW_CALLS - 1) * 2 * self.view_timeout)
        except ViewFailure as failure:
            raise ViewFailure(failure.unavailable) from failure
        except TimeoutError as exc:
            raise self._failures.view(domain, "timeout", "no answer in time") from exc

    def _view_with_id(self, domain: str, domain_id: str) -> ProviderView:
        """The view of the domain whose id is ``domain_id``: one GET. Its failure carries the id
        (but for a 404: an id the provider does not know is not worth keeping)."""
        try:
            return self._view_of(domain, domain_id)
        except ViewFailure as failure:
            unavailable = failure.unavailable
            if unavailable.kind == "not_found" or unavailable.domain_id is not None:
                raise
            raise ViewFailure(dataclasses.replace(unavailable, domain_id=domain_id)) from failure

    def _view_of(self, domain: str, domain_id: str) -> ProviderView:
        answer = self._read_v2(domain, VIEW_PATH.format(id=quote(domain_id, safe="")), None)
        with self._exchanges.judged(answer):
            payload = answer.payload
            if isinstance(payload, dict) and "status" not in payload and "data" in payload:
                payload = payload["data"]  # an envelope, as the v1 API has: accepted as well
            if not isinstance(payload, dict):
                raise self._failures.view(
                    domain, "bad_response", "its answer is not a JSON object", answer.status
                )
            status = clean_text(payload.get("status"), 40)
            if status is None:
                raise self._failures.view(domain, "bad_response", "its answer has no status")
            verification = json_object(payload.get("verification"))
            actions = json_object(payload.get("actions"))
            gate = json_object(actions.get("canResend"))
            can_resend = gate.get("allowed")
            blocked = clean_text(gate.get("reason"), MAX_MESSAGE_CHARS)
            reason = clean_text(payload.get("reason"), MAX_MESSAGE_CHARS)
            return ProviderView(
                domain=domain,
                status=status.lower(),
                read_at=datetime.now(UTC),
                domain_id=domain_id,
                is_verified=json_bool(payload.get("isVerified")),
                is_suspended=json_bool(payload.get("isSuspended")),
                reason=self._failures.redact_opt(reason),
                verified_at=clean_text(payload.get("verifiedAt"), MAX_ID_CHARS),
                last_checked_at=clean_text(payload.get("lastCheckedAt"), MAX_ID_CHARS),
                method=clean_text(verification.get("method"), 40),
                recipient=clean_text(verification.get("recipient"), MAX_ITEM_CHARS),
                expires_at=clean_text(verification.get("expiresAt"), MAX_ID_CHARS),
                can_resend=json_bool(can_resend),
                resend_blocked=self._failures.redact_opt(blocked),
            )

    def _domain_id(self, domain: str) -> str:
        """The provider's id of ``domain`` (``data[].id`` of the list, filtered by name).

        The reference does not say in which form the list names an internationalised domain,
        so its ASCII (punycode) form is asked for first, then its Unicode form if that differs;
        a listed name matches in either form."""
        variants = domain_variants(domain.rstrip(".").lower())
        names = sorted(variants, key=lambda name: not name.isascii())  # the ASCII form first
        for name in names[:-1]:
            try:
                return self._listed_id(domain, name)
            except ViewFailure as failure:
                if failure.unavailable.kind != "not_found":
                    raise
        return self._listed_id(domain, names[-1])

    def _listed_id(self, domain: str, name: str) -> str:
        """The id the list filtered by ``name`` gives ``domain`` (listed in either IDNA form);
        raises ViewFailure (``not_found`` when it lists no such domain)."""
        answer = self._read_v2(domain, DOMAINS_PATH, {"name": name})
        with self._exchanges.judged(answer):
            payload = answer.payload
            if not isinstance(payload, dict):  # an HTML page is no list, not an empty one
                raise self._failures.view(
                    domain, "bad_response", "its list of domains is not a JSON object"
                )
            items = payload.get("data")
            if items is not None and not isinstance(items, list):
                raise self._failures.view(
                    domain, "bad_response", "its list of domains is not a list"
                )
            wanted = set(domain_variants(domain.rstrip(".").lower()))
            for item in items or ():
                item = json_object(item)
                listed = clean_text(item.get("name"), MAX_ITEM_CHARS)
                found = clean_text(item.get("id"), MAX_ID_CHARS)
                if (
                    listed is not None
                    and found
                    and wanted.intersection(domain_variants(listed.rstrip(".").lower()))
                ):
                    return found
            raise self._failures.view(
                domain, "not_found", "the provider has no domain by that name"
            )

    def _read_v2(self, domain: str, path: str, params: Mapping[str, str] | None) -> Answer:
        """One GET of the v2 API, with the key as a Bearer token; a 2xx answer (for the caller
        to judge, see :meth:`Exchanges.judged`), or ViewFailure (counted here)."""
        try:
            answer = self._exchanges.send(
                "GET", path, None, params=params, bearer=True, timeout=self.view_timeout
            )
        except httpx.TransportError as exc:
            raise self._failures.view_unanswered(domain, exc) from exc
        status = answer.status
        log.info("Provider GET %s answered %d", path.split("?")[0], status)
        if 200 <= status < 300 and not answer.too_large and not answer.undecodable:
            return answer
        failure = self._failures.view_refused(domain, answer)
        self._exchanges.settle(answer, failure.unavailable.kind)
        raise failure
