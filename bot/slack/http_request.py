"""What arrives at POST /slack/events, before Bolt sees it: the signature, then the body.

Signature first (Slack's v0 HMAC over the raw bytes, within five minutes), and only then the
body is decoded (strict UTF-8) and parsed, by field (bounded nesting): bot/slack/server.py
bounds the bytes and the time a request may cost before this runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context

log = logging.getLogger(__name__)

# Slack's signatures (v0): HMAC-SHA256 of "v0:<timestamp>:<body>" with the signing secret, and a
# timestamp within five minutes of now (docs.slack.dev, "Verifying requests from Slack").
SIGNATURE_MAX_AGE = 60 * 5


FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_MEDIA_TYPE = "application/json"


# ---------------------------------------------------------------------------------------------
# Where the HTTP body becomes a BoltRequest
#
# Bolt's own parser (slack_bolt.request.internals.parse_body) decides that a form body is an
# interactivity payload when the *substring* "payload" appears anywhere in it, then looks for a
# `payload` field and, when there is none, returns an empty body. A slash command whose text
# (or the email in it: payload@example.com) contains that word therefore reaches no listener,
# and Slack shows the person an error; a payload that is not JSON raises instead. Slack's real
# bodies are simpler than that guess: slash commands and interactions are form-encoded (an
# interaction is the single field `payload=<JSON>`), Events API requests are JSON. So the bot
# parses the form properly, by field and not by substring, and hands Bolt the result.
# Signature verification is untouched: Bolt checks the signature on `raw_body`, the bytes as
# they came, which this keeps.


class MalformedBody(ValueError):
    """A signed body that is not what Slack sends; the message says what, never the body."""


def parse_slack_body(raw_body: str, content_type: str | None) -> dict[str, Any]:
    """The body Slack POSTed, as a dict: form fields, an interaction's payload, or JSON.

    Decided by the Content-Type Slack sends and the form's fields, never by what the text
    contains. Anything that is not a JSON object where one is expected gives ``{}``.
    """
    try:
        return read_slack_body(raw_body, content_type)
    except MalformedBody:
        return {}


def read_slack_body(raw_body: str, content_type: str | None) -> dict[str, Any]:
    """As :func:`parse_slack_body`, but a body that is not a JSON object where one is expected
    (an interaction's ``payload`` or an Events API body) raises :class:`MalformedBody`."""
    if not raw_body:
        return {}
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSON_MEDIA_TYPE or (
        media_type != FORM_MEDIA_TYPE and raw_body.lstrip().startswith("{")
    ):
        return _json_object(raw_body)
    fields = dict(parse_qsl(raw_body, keep_blank_values=True))
    # An interaction carries its JSON in `payload`; a slash command always has `command`, and
    # anything a person typed is inside `text`, percent-encoded, never a field of its own.
    if "payload" in fields and "command" not in fields:
        return _json_object(fields["payload"])
    return fields


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        # json's parser recurses once a nesting level: 200,000 `[` end here, not in a 500.
        raise MalformedBody("JSON nested too deep") from None
    except ValueError:
        raise MalformedBody("not JSON") from None
    if not isinstance(value, dict):
        raise MalformedBody("JSON that is not an object")
    return value


class SlackHttpRequest(BoltRequest):
    """A BoltRequest from an HTTP body, parsed by :func:`read_slack_body` instead of Bolt's
    (raises :class:`MalformedBody` for a body that is not Slack's)."""

    def __init__(
        self,
        *,
        body: str,
        query: str | Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        # Bolt's parser never sees the body: it could drop it, or raise on one that is not JSON.
        super().__init__(
            body="",
            query=query if isinstance(query, str) or query is None else dict(query),
            headers=dict(headers) if headers is not None else None,
            mode="http",
        )
        self.raw_body = body
        self.body = read_slack_body(body, self.content_type)
        self.context = build_context(BoltContext(dict(context or {})), self.body)

    def to_copyable(self) -> SlackHttpRequest:
        return SlackHttpRequest(
            body=self.raw_body,
            query=self.query,
            headers=self.headers,
            context=self.context.to_copyable(),
        )


# ---------------------------------------------------------------------------------------------
# Where a POST becomes a request for Bolt, or is refused before anything parses it
#
# Nothing of a request is decoded, parsed or logged before its signature checks out: the body
# is read (at most MAX_BODY_BYTES; waitress refuses larger ones before reading them), its v0
# signature checked on the bytes as they came, and only then decoded and parsed. A refusal is
# one short WARNING line naming why, from a fixed set of reasons: none carries a byte of the
# request, and none has correlation fields (bot.slack.app binds those only for a verified request).
# Bolt's own verification is off (bot.slack.app): it logged the whole body of a request it refused.

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def signature_problem(
    signing_secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float,
) -> str | None:
    """Why ``body`` with these headers is not a request Slack signed, or None when it is."""
    if timestamp is None or signature is None:
        return "no signature"
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return "malformed signature headers"
    if abs(now - int(timestamp)) > SIGNATURE_MAX_AGE:
        return "timestamp more than five minutes away"
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None
