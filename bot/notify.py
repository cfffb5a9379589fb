"""Everything the bot tells Slack about a request: the channel message, its thread, the DMs.

Listeners decide *when*; this module knows *how*. Each method is one Slack Web API call, built
from the stored request by the pure builders in ``bot.blocks``.

Only ``post_request`` raises: without the message there is nothing to approve. The others
report failure by returning False and logging it, because by then the store already holds the
truth (a request approved at the provider must not be left half-done because Slack hiccuped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.approvals import Store, VerificationRequest

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, client: WebClient, store: Store, channel: str) -> None:
        self.client = client
        self.store = store
        self.channel = channel

    def post_request(self, request: VerificationRequest) -> VerificationRequest:
        """Post the request message in APPROVAL_CHANNEL and remember where it went."""
        text, message_blocks = blocks.request_message(request)
        response = self.client.chat_postMessage(
            channel=self.channel, text=text, blocks=message_blocks, unfurl_links=False
        )
        channel, ts = str(response["channel"]), str(response["ts"])
        self.store.set_message(request.id, channel, ts)
        return self.store.get(request.id) or request

    def show(self, request: VerificationRequest) -> bool:
        """Update the request message to the request's current state."""
        if not (request.channel and request.message_ts):
            log.warning("Request %s has no message to update", request.id)
            return False
        text, message_blocks = blocks.request_message(request)
        return self._call(
            f"update the message of request {request.id}",
            self.client.chat_update,
            channel=request.channel,
            ts=request.message_ts,
            text=text,
            blocks=message_blocks,
        )

    def reply_result(self, request: VerificationRequest) -> bool:
        """Post the provider's answer in the request's thread."""
        text, reply_blocks = blocks.result_reply(request)
        return self._call(
            f"reply in the thread of request {request.id}",
            self.client.chat_postMessage,
            channel=request.channel or self.channel,
            thread_ts=request.message_ts,
            text=text,
            blocks=reply_blocks,
            unfurl_links=False,
        )

    def dm(self, user_id: str, text: str) -> bool:
        """A direct message from the app to a person."""
        return self._call(
            f"DM {user_id}",
            self.client.chat_postMessage,
            channel=user_id,
            text=text,
            unfurl_links=False,
        )

    @staticmethod
    def _call(what: str, method: Callable[..., object], **kwargs: object) -> bool:
        try:
            method(**kwargs)
        except SlackApiError as exc:
            log.error("Could not %s: Slack said %s", what, exc.response.get("error"))
            return False
        except (SlackClientError, OSError) as exc:
            log.error("Could not %s: %s", what, type(exc).__name__)
            return False
        return True
