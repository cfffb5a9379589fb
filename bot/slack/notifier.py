"""The bot's three ways of telling Slack something: post, update, DM (and one lookup).

Each method is one Slack Web API call (``find_request_message`` pages through history). What
to post is decided elsewhere: bot/slack/render.py renders each notice over these. The notifier
only talks to Slack: it returns where it posted and writes nothing anywhere else. A failure
raises ``DeliveryError`` saying whether trying again could help; the outbox decides when to
call again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot.domain.model import VerificationRequest
from bot.slack import blocks
from bot.slack.errors import CALL_ERRORS, classify

log = logging.getLogger(__name__)

# The message metadata each request message carries (Slack's message metadata: an event type
# and a free-form payload), so a copy whose posting answer was lost can be found again.
REQUEST_EVENT = "verify_email_request"
# How far conversations.history is read, looking for such a copy: pages of PAGE messages, from
# a little before the request was made (clocks differ), newest first.
HISTORY_PAGE = 200
HISTORY_PAGES = 10
HISTORY_SKEW_SECONDS = 300
# Errors of conversations.history that mean this token may not read the channel's history (no
# channels:history / groups:history, or not in the channel): look no further, post as before.
NO_HISTORY_ERRORS = frozenset({"missing_scope", "not_in_channel", "channel_not_found"})


# What functions.completeSuccess / completeError answer for a run that is not running any more
# (Slack's reference names both; which a second completion gets is not said): done already.
STEP_ENDED_ERRORS = frozenset({"execution_not_in_running_state", "function_execution_not_found"})


class DeliveryError(Exception):
    """Slack did not take a message; ``permanent`` when asking again cannot help."""

    def __init__(self, what: str, reason: str, *, permanent: bool) -> None:
        super().__init__(f"could not {what}: {reason}")
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Posted:
    """Where Slack put a message."""

    channel: str
    ts: str


class Notifier:
    """Slack's side of the outbox: three primitives (post, update, DM) and one lookup."""

    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self._bot: str | None = None  # this bot's bot_id, once asked

    def post(
        self,
        what: str,
        channel: str,
        text: str,
        message_blocks: blocks.Blocks | None = None,
        *,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Posted:
        """Post a message (in a thread, with ``thread_ts``); returns where it went."""
        extra: dict[str, object] = {}
        if message_blocks:
            extra["blocks"] = message_blocks
        if thread_ts is not None:
            extra["thread_ts"] = thread_ts
        if metadata is not None:
            extra["metadata"] = metadata
        return self._posted(
            what,
            self.client.chat_postMessage,
            channel=channel,
            text=text,
            unfurl_links=False,
            **extra,
        )

    def update(
        self,
        what: str,
        channel: str,
        ts: str,
        text: str,
        message_blocks: blocks.Blocks | None = None,
    ) -> None:
        """Replace a message the bot posted (its text and all its blocks)."""
        self._call(
            what,
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=text,
            blocks=message_blocks or [],
        )

    def find_request_message(self, request: VerificationRequest) -> Posted | None:
        """The request message if Slack already holds it (a post whose answer was lost): read
        APPROVAL_CHANNEL's history since the request was made, for a message of this bot whose
        metadata names the request. None when there is none, or when the token may not read
        the history (channels:history / groups:history): the caller then posts as before.
        Raises DeliveryError (transient) when Slack could not answer now."""
        bot_id = self._bot_id()
        oldest = request.created_at.timestamp() - HISTORY_SKEW_SECONDS
        cursor: str | None = None
        found: Posted | None = None
        for _ in range(HISTORY_PAGES):
            try:
                response = self.client.conversations_history(
                    channel=self.channel,
                    oldest=f"{oldest:.6f}",
                    limit=HISTORY_PAGE,
                    include_all_metadata=True,
                    cursor=cursor or None,
                )
            except CALL_ERRORS as exc:
                failure = classify(exc)
                if failure.transient:
                    raise DeliveryError(
                        f"look for the message of request {request.id}",
                        failure.error,
                        permanent=False,
                    ) from None
                if failure.error not in NO_HISTORY_ERRORS:
                    log.warning("Could not read the history of %s: %s", self.channel, failure.error)
                return None
            for message in response.get("messages") or []:
                if _is_copy_of(message, request.id, bot_id):
                    found = Posted(self.channel, str(message["ts"]))  # newest first: keep oldest
            metadata = response.get("response_metadata")
            cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
            if not response.get("has_more") or not cursor:
                break
        return found

    def _bot_id(self) -> str | None:
        """This bot's bot_id (auth.test, once): only its own messages are taken for copies."""
        if self._bot is None:
            response = self._call("ask Slack who this bot is", self.client.auth_test)
            bot_id = response.get("bot_id")
            self._bot = bot_id if isinstance(bot_id, str) else ""
        return self._bot or None

    def dm(self, user_id: str, text: str, message_blocks: blocks.Blocks | None = None) -> Posted:
        """A direct message from the app to a person (its App Home Messages tab); returns
        where it went (the DM channel, D…)."""
        extra: dict[str, object] = {"blocks": message_blocks} if message_blocks else {}
        return self._posted(
            f"DM {user_id}",
            self.client.chat_postMessage,
            channel=user_id,
            text=text,
            unfurl_links=False,
            **extra,
        )

    def permalink(self, request: VerificationRequest) -> str | None:
        """A link to the request message, or None when Slack cannot give one."""
        if not (request.channel and request.message_ts):
            return None
        try:
            response = self._call(
                f"link to request {request.id}",
                self.client.chat_getPermalink,
                channel=request.channel,
                message_ts=request.message_ts,
            )
        except DeliveryError as exc:
            log.warning("%s", exc)
            return None
        link = response.get("permalink")
        return link if isinstance(link, str) and link.startswith("https://") else None

    def complete_step(self, execution_id: str, outputs: dict[str, Any]) -> bool:
        """End the Workflow Builder step run ``execution_id`` with ``outputs``
        (functions.completeSuccess, with the bot token: the run's own expires in minutes).
        False when Slack says the run had ended already (an earlier attempt whose answer was
        lost, or the run was stopped): nothing is left to do."""
        return self._complete(
            f"complete step run {execution_id}",
            self.client.functions_completeSuccess,
            function_execution_id=execution_id,
            outputs=outputs,
        )

    def fail_step(self, execution_id: str, error: str) -> bool:
        """End the step run ``execution_id`` as failed with ``error`` (functions.completeError),
        shown to the workflow's user; False when it had ended already."""
        return self._complete(
            f"fail step run {execution_id}",
            self.client.functions_completeError,
            function_execution_id=execution_id,
            error=error,
        )

    @classmethod
    def _complete(cls, what: str, method: Callable[..., Any], **kwargs: object) -> bool:
        try:
            cls._call(what, method, **kwargs)
        except DeliveryError as exc:
            if exc.reason in STEP_ENDED_ERRORS:
                log.info("Could not %s: it had ended already (%s)", what, exc.reason)
                return False
            raise
        return True

    @classmethod
    def _posted(cls, what: str, method: Callable[..., Any], **kwargs: object) -> Posted:
        response = cls._call(what, method, **kwargs)
        return Posted(str(response.get("channel", "")), str(response.get("ts", "")))

    @staticmethod
    def _call(what: str, method: Callable[..., Any], **kwargs: object) -> Any:
        try:
            return method(**kwargs)
        except CALL_ERRORS as exc:
            failure = classify(exc)
            raise DeliveryError(what, failure.error, permanent=not failure.transient) from None


def _is_copy_of(message: Any, request_id: str, bot_id: str | None) -> bool:
    """True for a message (from conversations.history) that is this bot's request message for
    ``request_id``: its metadata names the request, and this bot posted it."""
    if not isinstance(message, dict) or not isinstance(message.get("ts"), str):
        return False
    if bot_id is not None and message.get("bot_id") != bot_id:
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != REQUEST_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload.get("request_id") == request_id
