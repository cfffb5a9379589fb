"""Everything the bot tells Slack about a request: the channel message, its thread, the DMs.

Listeners decide *when*; this module knows *how*. Each method is one Slack Web API call, built
from the stored request by the pure builders in ``bot.blocks``.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

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

    def show(self, request: VerificationRequest) -> None:
        """Update the request message to the request's current state."""
        if not (request.channel and request.message_ts):
            log.warning("Request %s has no message to update", request.id)
            return
        text, message_blocks = blocks.request_message(request)
        self.client.chat_update(
            channel=request.channel, ts=request.message_ts, text=text, blocks=message_blocks
        )

    def reply_result(self, request: VerificationRequest) -> None:
        """Post the provider's answer in the request's thread."""
        text, reply_blocks = blocks.result_reply(request)
        self.client.chat_postMessage(
            channel=request.channel or self.channel,
            thread_ts=request.message_ts,
            text=text,
            blocks=reply_blocks,
            unfurl_links=False,
        )

    def dm(self, user_id: str, text: str) -> bool:
        """A direct message from the app; a failure is logged, never raised (it is a courtesy)."""
        try:
            self.client.chat_postMessage(channel=user_id, text=text, unfurl_links=False)
        except SlackApiError as exc:
            log.warning("Could not DM %s: %s", user_id, exc.response.get("error"))
            return False
        return True
