"""What the provider sends, read as untrusted: an answer read in full (bounded), its fields.

Everything the provider sends is untrusted: wrong types are ignored or refused, strings are
stripped of control characters and shortened, and an answer is read up to ``MAX_BODY_BYTES``
and by its deadline, never further.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, Final

import httpx

from bot.domain.pace import Pace

MAX_MESSAGE_CHARS: Final = 500
MAX_ID_CHARS: Final = 200
# A domain name is at most 253 characters; client ids are short.
MAX_ITEM_CHARS: Final = 300
# An answer larger than this is not one the provider's API gives.
MAX_BODY_BYTES: Final = 5_000_000


def clean_text(value: object, limit: int) -> str | None:
    """A provider-sent string made safe to store and show, or None if it is not usable text.

    Integers (not booleans) become strings; any other type is ignored. Control characters
    become spaces, runs of whitespace collapse, and the result is cut to ``limit`` characters.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = " ".join(
        "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in value).split()
    )
    if not text:
        return None
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def string_list(value: object, *, allow_int: bool) -> tuple[str, ...] | None:
    """A list of strings (and ints, when allowed) as a tuple of strings; None if not that."""
    if not isinstance(value, list):
        return None
    items: list[str] = []
    for element in value:
        if isinstance(element, bool) or not (
            isinstance(element, str) or (allow_int and isinstance(element, int))
        ):
            return None
        text = clean_text(element, MAX_ITEM_CHARS)
        if text is not None:
            items.append(text)
    return tuple(items)


# Where a domain's name may be in an item of the status endpoint's ``data.domains``: the
# reference says "array<object>" and no more, so the usual spellings are tried in turn.
STATUS_DOMAIN_NAME_KEYS: Final = ("domain", "domainName", "domain_name", "name", "fqdn", "hostname")


def status_domain_name(item: object) -> str | None:
    """The domain name in one item of the status endpoint's ``data.domains``, or None.

    An object gives the first usable text under ``STATUS_DOMAIN_NAME_KEYS`` (a nested
    ``{"domain": {"name": …}}`` too); a plain string is taken as the name. Any other shape is
    not an error: the item is still counted, just not named.
    """
    if isinstance(item, str):
        return clean_text(item, MAX_ITEM_CHARS)
    if not isinstance(item, dict):
        return None
    for key in STATUS_DOMAIN_NAME_KEYS:
        value = item.get(key)
        if isinstance(value, dict):
            value = next((value.get(k) for k in ("name", "domain") if k in value), None)
        name = clean_text(value, MAX_ITEM_CHARS) if isinstance(value, str) else None
        if name is not None:
            return name
    return None


def json_object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for reading nested fields)."""
    return value if isinstance(value, dict) else {}


def json_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    ``now`` is the current Unix time, for an HTTP-date. A date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


# What a rate-limit header may say, at most: a count beyond this, or a reset further than this
# from the answer, is not one the provider's windows give (garbage, or a misread unit, such as
# epoch milliseconds): ignored. A longer Retry-After is cut to it (it still says "wait").
MAX_PACE_COUNT: Final = 1_000_000_000
MAX_PACE_SPAN: Final = timedelta(days=1)
# A header value longer than this is not a number or a date: ignored unread.
MAX_PACE_CHARS: Final = 64


def read_pace(headers: Mapping[str, str], read_at: datetime) -> Pace | None:
    """What an answer received at ``read_at`` (aware) said about the rate limit, or None when
    it said nothing usable. Each header is read on its own; one that is missing, malformed or
    out of bounds is left out, never a reason to fail the call:

    * ``Retry-After``: delta-seconds (a fraction too) or an HTTP-date, at most a day;
    * ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``: non-negative integers;
    * ``X-RateLimit-Reset``: an ISO 8601 time (documented; without an offset it is UTC, as the
      provider's timestamps are), or, leniently, an HTTP-date, Unix epoch seconds, or seconds
      from now; within a day of ``read_at``.
    """
    retry_after = parse_retry_after(_pace_header(headers, "retry-after"), read_at.timestamp())
    if retry_after is not None:
        retry_after = min(retry_after, MAX_PACE_SPAN.total_seconds())
    pace = Pace(
        read_at=read_at,
        limit=_pace_count(_pace_header(headers, "x-ratelimit-limit")),
        remaining=_pace_count(_pace_header(headers, "x-ratelimit-remaining")),
        reset_at=_pace_reset(_pace_header(headers, "x-ratelimit-reset"), read_at),
        retry_after=retry_after,
    )
    said = (pace.limit, pace.remaining, pace.reset_at, pace.retry_after)
    return None if all(value is None for value in said) else pace


def _pace_header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_PACE_CHARS and value.isprintable() else None


def _pace_count(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    count = int(value)
    return count if count <= MAX_PACE_COUNT else None


def _pace_reset(value: str | None, read_at: datetime) -> datetime | None:
    if value is None:
        return None
    when: datetime | None = None
    try:
        number = float(value)
    except ValueError:
        when = _pace_date(value)
    else:
        if math.isfinite(number):
            span = MAX_PACE_SPAN.total_seconds()
            if abs(number - read_at.timestamp()) <= span:
                when = datetime.fromtimestamp(number, UTC)  # epoch seconds
            elif 0 <= number <= span:
                when = read_at + timedelta(seconds=number)  # seconds from now
    if when is None or abs(when - read_at) > MAX_PACE_SPAN:
        return None
    return when


def _pace_date(value: str) -> datetime | None:
    """An ISO 8601 time (UTC without an offset) or an HTTP-date, aware; else None."""
    when: datetime | None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def error_fields(payload: object) -> tuple[str | None, str | None, str | None]:
    """(code, message, requestId) from a documented error body or RFC 7807 problem details."""
    if not isinstance(payload, dict):
        return None, None, None
    code = clean_text(payload.get("code"), MAX_ID_CHARS)
    message = None
    for key in ("message", "detail", "error", "title"):
        message = clean_text(payload.get(key), MAX_MESSAGE_CHARS)
        if message:
            break
    request_id = clean_text(payload.get("requestId"), MAX_ID_CHARS)
    return code, message, request_id


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read in full (up to MAX_BODY_BYTES); ``endpoint`` and ``seconds`` (how
    long the exchange took) are for the metrics, told once the answer has been judged."""

    status: int
    headers: httpx.Headers
    body: bytes
    too_large: bool = False
    undecodable: bool = False
    endpoint: str = ""
    seconds: float = 0.0
    # What it said of the provider's rate limit (set by Exchanges.send, see read_pace).
    pace: Pace | None = None

    @property
    def is_html(self) -> bool:
        content_type = self.headers.get("content-type", "").lower()
        return "html" in content_type or self.body.lstrip()[:1] == b"<"

    @cached_property
    def payload(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if self.too_large or self.undecodable or not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None

    def header_request_id(self) -> str | None:
        return clean_text(self.headers.get("x-request-id"), MAX_ID_CHARS)

    def request_id(self) -> str | None:
        """The provider's id of this exchange: the body's ``requestId``, else X-Request-Id."""
        _, _, request_id = error_fields(self.payload)
        return request_id or self.header_request_id()


def read_answer(response: httpx.Response, deadline: float) -> Answer:
    """``response`` (streamed) read in full by ``deadline`` (monotonic), up to MAX_BODY_BYTES:
    past the deadline httpx.ReadTimeout; past the cap, or not decodable, an Answer that says so
    (with no body)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the answer took longer than its deadline")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return Answer(response.status_code, response.headers, b"", too_large=True)
            chunks.append(chunk)
    except httpx.DecodingError:
        return Answer(response.status_code, response.headers, b"", undecodable=True)
    return Answer(response.status_code, response.headers, b"".join(chunks))
