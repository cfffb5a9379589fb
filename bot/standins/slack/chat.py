"""The chat.* Web API methods: postMessage (to a channel, a thread or a user's DM, with blocks,
attachments and metadata), update, postEphemeral and getPermalink."""

from __future__ import annotations

import copy
from typing import Any

from bot.standins.slack.limits import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    block_problem,
    with_block_ids,
)
from bot.standins.slack.state import Answer, Params, Workspace, error_answer


class ChatMethods(Workspace):
    """The chat.* methods of `FakeSlack`."""

    def _chat_post_message(self, params: Params) -> Answer:
        channel = params.get("channel")
        if not channel:
            return error_answer("channel_not_found")
        channel = self._resolve_channel(str(channel))
        text, blocks = params.get("text"), params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return error_answer("no_text")
        if len(text or "") > MAX_MESSAGE_TEXT:
            return error_answer("msg_too_long")
        if blocks is not None and (problem := block_problem(blocks, MAX_MESSAGE_BLOCKS)):
            return error_answer("invalid_blocks", messages=[problem])
        if not self._channels.get(channel, {}).get("is_member", True):
            return error_answer("not_in_channel")
        ts = self._next_ts()
        posted: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text or "",
            "ts": ts,
        }
        if blocks is not None:
            posted["blocks"] = with_block_ids(blocks)
        if params.get("attachments") is not None:
            posted["attachments"] = params["attachments"]
        if params.get("metadata") is not None:
            posted["metadata"] = params["metadata"]
        thread_ts = params.get("thread_ts")
        if thread_ts:
            posted["thread_ts"] = str(thread_ts)
            parent = self._find_message(channel, str(thread_ts))
            if parent is not None:
                posted["parent_user_id"] = parent["user"]
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
        self._messages.setdefault(channel, []).append(posted)
        return {"ok": True, "channel": channel, "ts": ts, "message": copy.deepcopy(posted)}

    def _chat_update(self, params: Params) -> Answer:
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        if not channel.startswith(("C", "G", "D")):
            return error_answer("channel_not_found")
        posted = self._find_message(channel, ts)
        if posted is None:
            return error_answer("message_not_found")
        blocks = params.get("blocks")
        if blocks is not None and (problem := block_problem(blocks, MAX_MESSAGE_BLOCKS)):
            return error_answer("invalid_blocks", messages=[problem])
        # As on Slack, fields left out keep their previous value; `blocks: []` removes blocks.
        if params.get("text") is not None:
            posted["text"] = params["text"]
        if blocks is not None:
            posted["blocks"] = with_block_ids(blocks)
        if params.get("attachments") is not None:
            posted["attachments"] = params["attachments"]
        posted["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": posted["text"],
            "message": copy.deepcopy(posted),
        }

    def _chat_post_ephemeral(self, params: Params) -> Answer:
        channel, user = params.get("channel"), params.get("user")
        if not channel:
            return error_answer("channel_not_found")
        if not user:
            return error_answer("user_not_found")
        if not params.get("text") and not params.get("blocks"):
            return error_answer("no_text")
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": str(channel),
                "user": str(user),
                "text": params.get("text") or "",
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
                "ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, params: Params) -> Answer:
        channel, ts = str(params.get("channel", "")), str(params.get("message_ts", ""))
        posted = self._find_message(channel, ts)
        if posted is None:
            return error_answer("message_not_found")
        permalink = f"{self.team_url}archives/{channel}/p{ts.replace('.', '')}"
        if posted.get("thread_ts", ts) != ts:
            permalink += f"?thread_ts={posted['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}
