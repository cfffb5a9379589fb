"""Everything the bot tells Slack about a request: the channel message, its thread, the DMs.

Each method is one Slack Web API call, built from the request by the pure builders in
``bot.slack.blocks``. The notifier only talks to Slack: it returns where it posted and writes
nothing anywhere else. A failure raises ``DeliveryError`` saying whether trying again could help;
``bot.slack.outbox`` decides when to call these and retries them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot.domain.model import History, VerificationRequest
from bot.domain.views import DomainReading
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
    def __init__(
        self,
        client: WebClient,
        channel: str,
        *,
        approvers: Sequence[str] = (),
        approvals_required: int = 1,
    ) -> None:
        """``approvers`` (APPROVERS) are mentioned by reminders; ``approvals_required``
        (APPROVALS_REQUIRED) is shown on requests that need more than one."""
        self.client = client
        self.channel = channel
        self.approvers = tuple(approvers)
        self.approvals_required = approvals_required
        self._bot: str | None = None  # this bot's bot_id, once asked

    def post_request(self, request: VerificationRequest, history: History | None = None) -> Posted:
        """Post the request message in APPROVAL_CHANNEL (with the history of its email and
        domain, when given); returns where it went."""
        text, message_blocks = blocks.request_message(request, self.approvals_required, history)
        response = self._call(
            f"post request {request.id}",
            self.client.chat_postMessage,
            channel=self.channel,
            text=text,
            blocks=message_blocks,
            unfurl_links=False,
            metadata={"event_type": REQUEST_EVENT, "event_payload": {"request_id": request.id}},
        )
        return Posted(str(response["channel"]), str(response["ts"]))

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

    def show(self, request: VerificationRequest, history: History | None = None) -> None:
        """Update the request message to the request's current state."""
        if not (request.channel and request.message_ts):
            raise DeliveryError(f"update request {request.id}", "it has no message", permanent=True)
        text, message_blocks = blocks.request_message(request, self.approvals_required, history)
        self._call(
            f"update the message of request {request.id}",
            self.client.chat_update,
            channel=request.channel,
            ts=request.message_ts,
            text=text,
            blocks=message_blocks,
        )

    def reply_result(self, request: VerificationRequest) -> Posted:
        """Post the provider's answer in the request's thread."""
        if not request.message_ts:
            raise DeliveryError(
                f"reply about request {request.id}", "it has no message", permanent=True
            )
        text, reply_blocks = blocks.result_reply(request)
        return self._posted(
            f"reply in the thread of request {request.id}",
            self.client.chat_postMessage,
            channel=request.channel or self.channel,
            thread_ts=request.message_ts,
            text=text,
            blocks=reply_blocks,
            unfurl_links=False,
        )

    def reply_check(self, request: VerificationRequest, reading: DomainReading, by: str) -> Posted:
        """Post what Check provider read (and what it means) in the request's thread."""
        if not request.message_ts:
            raise DeliveryError(
                f"reply about request {request.id}", "it has no message", permanent=True
            )
        text, reply_blocks = blocks.check_reply(request, reading, by)
        return self._posted(
            f"reply with a provider check in the thread of request {request.id}",
            self.client.chat_postMessage,
            channel=request.channel or self.channel,
            thread_ts=request.message_ts,
            text=text,
            blocks=reply_blocks,
            unfurl_links=False,
        )

    def remind(self, request: VerificationRequest) -> None:
        """Remind the approvers, in the request's thread, that it is still waiting."""
        if not request.message_ts:
            raise DeliveryError(
                f"remind about request {request.id}", "it has no message", permanent=True
            )
        self._call(
            f"remind about request {request.id}",
            self.client.chat_postMessage,
            channel=request.channel or self.channel,
            thread_ts=request.message_ts,
            text=blocks.reminder_reply(request, self.approvers, self.approvals_required),
            unfurl_links=False,
        )

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

    def rewrite(self, channel: str, ts: str, text: str, message_blocks: blocks.Blocks) -> None:
        """Replace a message the bot posted (its text and all its blocks)."""
        self._call(
            f"update message {ts} in {channel}",
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=text,
            blocks=message_blocks,
        )

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
