"""The views.* Web API methods: open and push (each trigger id once, within `trigger_ttl`),
publish (the Home tab) and update (by id or external id, with Slack's hash check)."""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from bot.standins.slack.limits import MAX_VIEW_BLOCKS, block_problem, with_block_ids
from bot.standins.slack.state import Answer, Params, Workspace, error_answer


class ViewMethods(Workspace):
    """The views.* methods of `FakeSlack`, and the trigger ids they accept."""

    def new_trigger_id(self) -> str:
        """Issue a trigger id, shaped as Slack's, usable once within `trigger_ttl` seconds."""
        with self._cond:
            trigger_id = f"{int(time.time() * 1000)}.{next(self._counter)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = time.monotonic()
            return trigger_id

    def _check_trigger(self, trigger_id: Any) -> str | None:
        issued = self._triggers.get(trigger_id) if isinstance(trigger_id, str) else None
        if issued is None:
            return "invalid_trigger_id"
        if trigger_id in self._used_triggers:
            return "exchanged_trigger_id"
        if time.monotonic() - issued > self.trigger_ttl:
            return "expired_trigger_id"
        self._used_triggers.add(trigger_id)
        return None

    def _store_view(self, view: Any, view_id: str, previous: dict[str, Any] | None) -> Answer:
        if not isinstance(view, dict):
            return error_answer("invalid_arguments")
        blocks = view.get("blocks", [])
        if problem := block_problem(blocks, MAX_VIEW_BLOCKS):
            return error_answer("invalid_arguments", messages=[problem])
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type", "modal"),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": with_block_ids(blocks),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": previous.get("previous_view_id") if previous else None,
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self._views[view_id] = stored
        return {"ok": True, "view": copy.deepcopy(stored)}

    def _views_open(self, params: Params) -> Answer:
        if problem := self._check_trigger(params.get("trigger_id")):
            return error_answer(problem)
        return self._store_view(params.get("view"), f"V{next(self._counter):010d}", None)

    def _views_publish(self, params: Params) -> Answer:
        user_id = str(params.get("user_id", ""))
        view = params.get("view")
        if not user_id.startswith(("U", "W")):
            return error_answer("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            return error_answer("invalid_arguments")
        view_id = self._homes.get(user_id) or f"V{next(self._counter):010d}"
        answer = self._store_view(view, view_id, self._views.get(view_id))
        if answer.get("ok"):
            self._homes[user_id] = view_id
        return answer

    def _views_push(self, params: Params) -> Answer:
        return self._views_open(params)

    def _views_update(self, params: Params) -> Answer:
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            by_external = (
                v for v in self._views.values() if v["external_id"] == params["external_id"]
            )
            view_id = next((v["id"] for v in by_external), None)
        current = self._views.get(str(view_id)) if view_id else None
        if current is None:
            return error_answer("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            return error_answer("hash_conflict")
        return self._store_view(params.get("view"), current["id"], current)
