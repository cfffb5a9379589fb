"""The one reading of a failed Slack Web API call: what kind of failure, and whether asking
again later can help. Used by everything that calls Slack (notices, roles, the form, check).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal
from urllib.error import URLError

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

# Slack errors that may go away by asking again later: Slack's own trouble and rate limits (past
# the SDK's retries). Every other error ("not_in_channel", "invalid_auth", "missing_scope", an
# error Slack adds tomorrow) needs a person to fix something, so it is not retried.
TRANSIENT_ERRORS: Final = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
    }
)
# slack_sdk's error text for an answer that was not JSON (a proxy's page, say).
NOT_JSON_PREFIX: Final = "Received a response in a non-JSON format"
MAX_DETAIL_CHARS: Final = 200

FailureKind = Literal["api", "ratelimited", "server_error", "not_slack", "timeout", "unreachable"]


@dataclass(frozen=True)
class SlackFailure:
    """A failed Slack call: ``kind``, and ``error`` (Slack's error code, or a short detail:
    one line, safe to log and to show)."""

    # "api": Slack answered with an error code; "ratelimited": 429 past the SDK's retries;
    # "server_error": HTTP 5xx; "not_slack": an answer that is not Slack's JSON; "timeout":
    # no answer in time; "unreachable": no connection (DNS, refused, TLS, proxy).
    kind: FailureKind
    error: str
    status: int | None = None
    response: SlackResponse | None = None

    @property
    def transient(self) -> bool:
        """True when asking again later may succeed without anyone changing anything."""
        if self.kind == "api":
            return self.error in TRANSIENT_ERRORS
        return self.kind in ("ratelimited", "server_error", "timeout", "unreachable")

    def field(self, name: str) -> str | None:
        """A string field of Slack's answer (e.g. ``needed`` with missing_scope), made safe."""
        data = self.response.data if self.response is not None else None
        value = data.get(name) if isinstance(data, dict) else None
        return _one_line(value) if isinstance(value, str) else None


# What a WebClient call raises when the call itself failed (anything else is a bug of ours and
# goes to the global error handler): catch these, then classify().
CALL_ERRORS: Final = (SlackClientError, OSError, json.JSONDecodeError)


def classify(exc: BaseException, *, timeout: float | None = None) -> SlackFailure:
    """The failure ``exc``, one of CALL_ERRORS raised by a WebClient call, stands for."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        data = response.data if isinstance(response, SlackResponse) else None
        error = data.get("error") if isinstance(data, dict) else None
        status = getattr(response, "status_code", None)
        status = status if isinstance(status, int) else None
        slack_response = response if isinstance(response, SlackResponse) else None
        if status is not None and status >= 500:
            return SlackFailure("server_error", f"HTTP {status}", status, slack_response)
        if not isinstance(error, str) or error.startswith(NOT_JSON_PREFIX):
            return SlackFailure("not_slack", f"HTTP {status}", status, slack_response)
        if status == 429 or error in ("ratelimited", "rate_limited"):
            return SlackFailure("ratelimited", _one_line(error), status, slack_response)
        return SlackFailure("api", _one_line(error) or "error", status, slack_response)
    if isinstance(exc, json.JSONDecodeError):
        # slack_sdk parses a body starting with "{" itself: one that is not JSON.
        return SlackFailure("not_slack", "an answer that is not JSON")
    waited = f"no answer within {timeout:g} s" if timeout is not None else "no answer in time"
    if isinstance(exc, TimeoutError):
        return SlackFailure("timeout", waited)
    if isinstance(exc, URLError):
        if isinstance(exc.reason, TimeoutError):
            return SlackFailure("timeout", waited)
        return SlackFailure("unreachable", _one_line(str(exc.reason)) or type(exc).__name__)
    return SlackFailure("unreachable", _one_line(str(exc)) or type(exc).__name__)


def _one_line(text: str) -> str:
    flat = " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text).split())
    return flat if len(flat) <= MAX_DETAIL_CHARS else flat[: MAX_DETAIL_CHARS - 1] + "…"
