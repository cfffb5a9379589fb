"""Everything the bot tells Slack about a request: the channel message, its thread, the DMs.

Each method is one Slack Web API call, built from the request by the pure builders in
``bot.blocks``. The notifier only talks to Slack: it returns where it posted and writes nothing
anywhere else. A failure raises ``DeliveryError`` saying whether trying again could help;
``bot.outbox`` decides when to call these and retries them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot import blocks
from bot.domain.model import History, VerificationRequest
from bot.domain.views import DomainReading
from bot.slack_errors import CALL_ERRORS, classify

log = logging.getLogger(__name__)


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
        )
        return Posted(str(response["channel"]), str(response["ts"]))

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

    def reply_result(self, request: VerificationRequest) -> None:
        """Post the provider's answer in the request's thread."""
        if not request.message_ts:
            raise DeliveryError(
                f"reply about request {request.id}", "it has no message", permanent=True
            )
        text, reply_blocks = blocks.result_reply(request)
        self._call(
            f"reply in the thread of request {request.id}",
            self.client.chat_postMessage,
            channel=request.channel or self.channel,
            thread_ts=request.message_ts,
            text=text,
            blocks=reply_blocks,
            unfurl_links=False,
        )

    def reply_check(self, request: VerificationRequest, reading: DomainReading, by: str) -> None:
        """Post what Check provider read (and what it means) in the request's thread."""
        if not request.message_ts:
            raise DeliveryError(
                f"reply about request {request.id}", "it has no message", permanent=True
            )
        text, reply_blocks = blocks.check_reply(request, reading, by)
        self._call(
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

    def dm(self, user_id: str, text: str, message_blocks: blocks.Blocks | None = None) -> None:
        """A direct message from the app to a person (its App Home Messages tab)."""
        extra: dict[str, object] = {"blocks": message_blocks} if message_blocks else {}
        self._call(
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

    @staticmethod
    def _call(what: str, method: Callable[..., Any], **kwargs: object) -> Any:
        try:
            return method(**kwargs)
        except CALL_ERRORS as exc:
            failure = classify(exc)
            raise DeliveryError(what, failure.error, permanent=not failure.transient) from None
