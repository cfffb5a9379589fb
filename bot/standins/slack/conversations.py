"""The conversations.* Web API methods: info (registered channels and DMs) and history (a
channel's top-level messages newest first, within `oldest` / `latest`, a page at a time with
Slack's cursor, metadata only when asked for)."""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from bot.standins.slack.state import Answer, Params, Workspace, error_answer


class ConversationMethods(Workspace):
    """The channels the bot knows, and the conversations.* methods of `FakeSlack`."""

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_member: bool = True,
        is_private: bool = False,
    ) -> None:
        """Make a channel known to `conversations.info`; `is_member` is whether the bot is in it."""
        with self._cond:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name or channel_id.lower(),
                "is_member": is_member,
                "is_private": is_private,
            }

    def _conversations_info(self, params: Params) -> Answer:
        channel = str(params.get("channel", ""))
        if channel.startswith("D"):
            return {
                "ok": True,
                "channel": {"id": channel, "is_im": True, "user": "U" + channel[1:]},
            }
        known = self._channels.get(channel)
        if known is None:
            return error_answer("channel_not_found")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": known["name"],
                "is_channel": not known["is_private"],
                "is_group": known["is_private"],
                "is_im": False,
                "is_private": known["is_private"],
                "is_archived": False,
                "is_member": known["is_member"],
                "name_normalized": known["name"],
            },
        }

    def _conversations_history(self, params: Params) -> Answer:
        channel = str(params.get("channel", ""))
        if not channel.startswith(("C", "G", "D")):
            return error_answer("channel_not_found")
        if not self._channels.get(channel, {}).get("is_member", True):
            return error_answer("not_in_channel")
        try:
            limit = int(params.get("limit") or 100)
        except (TypeError, ValueError):
            return error_answer("invalid_limit")
        limit = max(1, min(limit, 999))
        inclusive = _truthy(params.get("inclusive"))
        metadata = _truthy(params.get("include_all_metadata"))
        oldest, latest = _ts_bound(params.get("oldest")), _ts_bound(params.get("latest"))
        newest_first = sorted(
            (m for m in self._messages.get(channel, []) if m.get("thread_ts", m["ts"]) == m["ts"]),
            key=lambda m: _ts_bound(m["ts"]) or 0.0,
            reverse=True,
        )

        def within(ts: float) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return latest is None or ts < latest or (ts == latest and inclusive)

        found = [m for m in newest_first if within(_ts_bound(m["ts"]) or 0.0)]
        cursor = params.get("cursor")
        if cursor:
            try:
                start = (
                    base64.b64decode(str(cursor), validate=True).decode().removeprefix("next_ts:")
                )
            except (binascii.Error, UnicodeDecodeError):
                return error_answer("invalid_cursor")
            found = [m for m in found if m["ts"] <= start]
        page, rest = found[:limit], found[limit:]
        messages = []
        for posted in page:
            shown = copy.deepcopy(posted)
            if not metadata:
                shown.pop("metadata", None)
            messages.append(shown)
        answer: Answer = {
            "ok": True,
            "messages": messages,
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if rest:
            next_cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": next_cursor}
        return answer


def _truthy(value: Any) -> bool:
    """A boolean argument as Slack reads one: true, 1 (as sent in a form or query)."""
    return str(value).lower() in ("1", "true")


def _ts_bound(value: Any) -> float | None:
    """A message ts (or an oldest / latest bound) as a number; None when absent or not one."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
