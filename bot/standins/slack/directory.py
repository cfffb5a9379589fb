"""Who is who in the workspace: auth.test, users.info (every U…/W… id a full member unless
`set_user` says otherwise), usergroups.users.list, and apps.connections.open (the Socket Mode
URL of an attached stand-in)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bot.standins.slack.state import Answer, Params, Workspace, error_answer


class DirectoryMethods(Workspace):
    """The workspace's users, user groups and app connection, in `FakeSlack`."""

    def set_usergroup(self, group_id: str, user_ids: Iterable[str]) -> None:
        """Define (or replace) the members of a user group (S…)."""
        with self._cond:
            self._usergroups[group_id] = list(user_ids)

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Describe a user to ``users.info``: the fields given replace the default's (a full,
        active member of this workspace), e.g. ``is_restricted=True`` (a guest),
        ``deleted=True``, ``is_bot=True``, ``team_id="T2", is_stranger=True`` (Slack Connect),
        ``enterprise_user={...}``. ``fields`` None-valued are removed; ``set_user(id,
        missing=True)`` makes users.info answer ``user_not_found``."""
        with self._cond:
            self._users[user_id] = dict(fields)

    def attach_socket_mode(self, url_factory: Callable[[], str] | None) -> None:
        """Let `apps.connections.open` answer `url_factory()` (None detaches)."""
        with self._cond:
            self._socket_mode_url = url_factory

    def _auth_test(self, params: Params) -> Answer:
        return {
            "ok": True,
            "url": self.team_url,
            "team": self.team,
            "user": "verify-email",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _usergroups_users_list(self, params: Params) -> Answer:
        members = self._usergroups.get(str(params.get("usergroup", "")))
        if members is None:
            return error_answer("no_such_subteam")
        return {"ok": True, "users": list(members)}

    def _users_info(self, params: Params) -> Answer:
        """users.info: every U…/W… id is a full member of this workspace unless ``set_user``
        said otherwise; anything else is ``user_not_found``."""
        user_id = str(params.get("user", ""))
        fields = self._users.get(user_id, {})
        if not user_id.startswith(("U", "W")) or fields.get("missing"):
            return error_answer("user_not_found")
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": user_id.lower(),
            "deleted": False,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "profile": {"real_name": user_id, "display_name": user_id.lower()},
        }
        for name, value in fields.items():
            if value is None:
                user.pop(name, None)
            else:
                user[name] = value
        return {"ok": True, "user": user}

    def _apps_connections_open(self, params: Params) -> Answer:
        if self._socket_mode_url is None:
            return error_answer("internal_error")  # the stand-in's own answer: no FakeSocketMode
        return {"ok": True, "url": self._socket_mode_url()}
