"""What a test or the sandbox reads back: every call and response_url post recorded, the
channels' messages as they are now, ephemerals, modals and Home tabs, a channel's transcript as
a person would read it, and waiting (without polling) for any of these to appear."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from bot.standins.slack.state import Call, Params, ResponseUrlPost, Workspace

T = TypeVar("T")


# How long a wait_for gives the bot by default: it returns as soon as the condition holds, so
# this only bounds a failure, and is generous for a loaded 2-core machine.
WAIT_TIMEOUT = 15.0


class Records(Workspace):
    """The observation side of `FakeSlack`."""

    @property
    def calls(self) -> list[Call]:
        """Every Web API call so far, oldest first."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method, oldest first."""
        with self._cond:
            return [call for call in self._calls if call.method == method]

    @property
    def responses(self) -> list[ResponseUrlPost]:
        """Every POST to a response_url so far, oldest first."""
        with self._cond:
            return list(self._responses)

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages as they are now (after chat.update), oldest first.

        Without `thread_ts`: the channel's top-level messages. With it: the replies in that
        thread (the parent excluded). A user ID (U…) reads its DM channel.
        """
        channel = self._resolve_channel(channel)
        with self._cond:
            posts = self._messages.get(channel, [])
            if thread_ts is None:
                found = [m for m in posts if m.get("thread_ts", m["ts"]) == m["ts"]]
            else:
                found = [
                    m for m in posts if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
                ]
            return copy.deepcopy(found)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """One message as it is now; KeyError when there is none."""
        with self._cond:
            found = self._find_message(self._resolve_channel(channel), ts)
            if found is None:
                raise KeyError(f"no message {ts} in {channel}")
            return copy.deepcopy(found)

    def ephemerals(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages sent with chat.postEphemeral (channel, user, text, blocks, ts)."""
        with self._cond:
            found = [e for e in self._ephemerals if channel in (None, e["channel"])]
            return copy.deepcopy(found)

    def home(self, user_id: str) -> dict[str, Any] | None:
        """The Home tab the app last published for ``user_id``, or None."""
        with self._cond:
            view_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def view(self, view_id: str) -> dict[str, Any]:
        """A modal as Slack holds it now (id, hash, blocks, ...); KeyError when unknown."""
        with self._cond:
            return copy.deepcopy(self._views[view_id])

    def transcript(self, channel: str) -> str:
        """The channel as a person would read it: messages, their blocks, thread replies."""
        lines: list[str] = []
        for parent in self.messages(channel):
            lines.extend(render_message(parent, indent=""))
            for reply in self.messages(channel, parent["ts"]):
                lines.extend(render_message(reply, indent="    "))
        return "\n".join(lines)

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = WAIT_TIMEOUT,
        what: str = "condition",
    ) -> T:
        """Block until `predicate()` is truthy (re-checked on every recorded call or post).

        Returns the predicate's value; raises TimeoutError naming `what` otherwise. The
        predicate runs under the stand-in's lock, so it may call `messages()`, `calls_to()`...
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"FakeSlack: no {what} within {timeout} s")
        return result

    def wait_for_call(
        self,
        method: str,
        *,
        where: Callable[[Params], bool] | None = None,
        timeout: float = WAIT_TIMEOUT,
    ) -> Call:
        """The first call of `method` (whose params satisfy `where`), waiting for it if needed."""

        def find() -> Call | None:
            for call in self._calls:
                if call.method == method and (where is None or where(call.params)):
                    return call
            return None

        return self.wait_for(find, timeout, what=f"{method} call")

    def wait_for_response(
        self, *, where: Callable[[Any], bool] | None = None, timeout: float = WAIT_TIMEOUT
    ) -> ResponseUrlPost:
        """The first response_url post (whose body satisfies `where`), waiting if needed."""

        def find() -> ResponseUrlPost | None:
            for post in self._responses:
                if where is None or where(post.body):
                    return post
            return None

        return self.wait_for(find, timeout, what="response_url post")


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _render_block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind in ("section", "header"):
        lines = [_text_of(block.get("text"))] if block.get("text") else []
        lines += [_text_of(field) for field in block.get("fields") or []]
        return lines
    if kind == "context":
        return [" · ".join(_text_of(e) or str(e.get("alt_text", "")) for e in block["elements"])]
    if kind == "actions":
        return ["  ".join(f"[{_text_of(e.get('text'))}]" for e in block.get("elements", []))]
    if kind == "divider":
        return ["----"]
    return [f"<{kind} block>"]


def render_message(posted: dict[str, Any], indent: str) -> list[str]:
    body: list[str] = []
    for block in posted.get("blocks") or []:
        body.extend(_render_block(block))
    if not body:
        body = [str(posted.get("text", ""))]
    edited = " (edited)" if "edited" in posted else ""
    head = f"{indent}[{posted['ts']}] <@{posted.get('user', '?')}>{edited}"
    lines = [head]
    for chunk in body:
        lines.extend(f"{indent}  {line}" for line in chunk.splitlines() or [""])
    return lines
