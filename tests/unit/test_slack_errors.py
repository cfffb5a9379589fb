"""The one classifier of failed Slack calls: the kind, a printable detail, and whether trying
again later can help."""

from __future__ import annotations

import json
from urllib.error import URLError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse

from bot.slack.errors import CALL_ERRORS, classify


def api_error(status: int, data: object) -> SlackApiError:
    response = SlackResponse(
        client=WebClient(),
        http_verb="POST",
        api_url="https://slack.invalid/api/chat.postMessage",
        req_args={},
        data=data,  # type: ignore[arg-type]  # Slack's answer, whatever shape it had
        headers={},
        status_code=status,
    )
    return SlackApiError("failed", response)


@pytest.mark.parametrize(
    ("exc", "kind", "error", "transient"),
    [
        (api_error(200, {"ok": False, "error": "not_in_channel"}), "api", "not_in_channel", False),
        (api_error(200, {"ok": False, "error": "internal_error"}), "api", "internal_error", True),
        (api_error(429, {"ok": False, "error": "ratelimited"}), "ratelimited", "ratelimited", True),
        (api_error(503, {"ok": False, "error": "x"}), "server_error", "HTTP 503", True),
        (api_error(200, {"ok": False}), "not_slack", "HTTP 200", False),
        (
            api_error(404, {"ok": False, "error": "Received a response in a non-JSON format: <"}),
            "not_slack",
            "HTTP 404",
            False,
        ),
        (api_error(200, {"ok": False, "error": "bad\n\x00line"}), "api", "bad line", False),
        (json.JSONDecodeError("x", "{", 0), "not_slack", "an answer that is not JSON", False),
        (TimeoutError(), "timeout", "no answer within 2 s", True),
        (URLError(TimeoutError()), "timeout", "no answer within 2 s", True),
        (URLError("Name or service not known"), "unreachable", "Name or service not known", True),
        (ConnectionRefusedError(111, "Connection refused"), "unreachable", None, True),
        (SlackRequestError("proxy said no"), "unreachable", "proxy said no", True),
    ],
)
def test_classify(exc: BaseException, kind: str, error: str | None, transient: bool) -> None:
    """Each way a Slack call fails is read the same way wherever the bot calls Slack."""
    assert isinstance(exc, CALL_ERRORS)
    failure = classify(exc, timeout=2)
    assert failure.kind == kind
    if error is not None:
        assert failure.error == error
    assert "\n" not in failure.error and len(failure.error) <= 200
    assert failure.transient is transient


def test_fields_of_slacks_answer_are_read_safely() -> None:
    """missing_scope carries `needed`: readable, one line; absent fields are None."""
    failure = classify(
        api_error(200, {"ok": False, "error": "missing_scope", "needed": "chat:write\n"})
    )
    assert failure.field("needed") == "chat:write"
    assert failure.field("provided") is None
