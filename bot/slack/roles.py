"""Who is a requester and who is an approver.

Roles name Slack user IDs (U…/W…) and user-group IDs (S…), never names. Group membership comes
from ``usergroups.users.list`` and is cached (TTL, shared safely between threads). When Slack
cannot say who is in a group, the answer is "not a member": roles fail closed.

"Everyone" (``*``) and the members of a user group mean the *full members* of the installing
workspace (or, on an Enterprise Grid org-wide install, organisation): ``users.info`` must say
the user is neither deactivated, a bot, a guest (single- or multi-channel), nor a user of
another organisation (Slack Connect: another ``team_id`` and enterprise, or ``is_stranger``).
Those lookups are cached as group lookups are (5 minutes), and fail closed: a user Slack
cannot describe gets no role through ``*`` or a group. A user ID listed in APPROVERS or
REQUESTERS is an admin's deliberate choice and is not looked up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cachetools import TTLCache, cachedmethod
from slack_sdk import WebClient

from bot.settings import EVERYONE, GROUP_ID_RE, USER_ID_RE
from bot.slack.errors import CALL_ERRORS, classify

log = logging.getLogger(__name__)

GROUP_CACHE_TTL = 300.0  # seconds a group's member list is trusted
GROUP_CACHE_SIZE = 256
USER_CACHE_SIZE = 4096
# Not people who can be held to a four-eyes decision: Slackbot answers as a user, not a bot.
SLACKBOT = "USLACKBOT"


class GroupLookupError(Exception):
    """Slack could not tell us who is in a user group."""

    def __init__(self, group_id: str, reason: str) -> None:
        super().__init__(f"user group {group_id}: {reason}")
        self.group_id = group_id
        self.reason = reason


class UserLookupError(Exception):
    """Slack could not tell us who a user is."""

    def __init__(self, user_id: str, reason: str) -> None:
        super().__init__(f"user {user_id}: {reason}")
        self.user_id = user_id
        self.reason = reason


def not_a_member(user: Mapping[str, Any], team_id: str, enterprise_id: str | None) -> str | None:
    """Why the ``users.info`` user object ``user`` is not a full member of the workspace
    ``team_id`` (or of the organisation ``enterprise_id``), or None when it is one."""
    if user.get("deleted"):
        return "deactivated"
    if user.get("is_bot") or user.get("is_workflow_bot") or user.get("id") == SLACKBOT:
        return "a bot"
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return "a guest"
    if user.get("is_stranger"):
        return "from another organisation"
    enterprise = user.get("enterprise_user")
    in_org = isinstance(enterprise, Mapping) and enterprise.get("enterprise_id") == enterprise_id
    if enterprise_id and in_org:
        return None
    if user.get("team_id") == team_id:
        return None
    return "from another organisation"


class Roles:
    """Who may ask and who may approve (the service's Roles port)."""

    def __init__(
        self,
        client: WebClient,
        approvers: Iterable[str],
        requesters: Iterable[str],
        *,
        ttl: float = GROUP_CACHE_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.approvers = tuple(approvers)
        self.requesters = tuple(requesters)
        self._cache: TTLCache[str, frozenset[str]] = TTLCache(
            maxsize=GROUP_CACHE_SIZE, ttl=ttl, timer=timer
        )
        # A Condition (not a plain Lock): threads asking for the same group while a lookup is in
        # flight wait for its answer instead of each calling Slack.
        self._cond = threading.Condition()
        # user id -> why they are not a full member ("" when they are one), from users.info.
        self._users: TTLCache[tuple[str], str] = TTLCache(
            maxsize=USER_CACHE_SIZE, ttl=ttl, timer=timer
        )
        self._users_cond = threading.Condition()
        # Users whose last lookup failed (refused, fail closed): for the refusal's words only.
        self._unverified: TTLCache[str, str] = TTLCache(
            maxsize=USER_CACHE_SIZE, ttl=ttl, timer=timer
        )
        self._home: tuple[str, str | None] | None = None  # (team_id, enterprise_id)
        self._home_lock = threading.Lock()

    def is_approver(self, user_id: str) -> bool:
        return self._matches(user_id, self.approvers)

    def is_requester(self, user_id: str) -> bool:
        return self._matches(user_id, self.requesters)

    def is_among(self, user_id: str, ids: Sequence[str]) -> bool:
        """Whether ``user_id`` is one of ``ids`` (user IDs, group IDs, ``*``), read as
        APPROVERS is: what a policy rule's approvers, escalate_to and requesters mean."""
        return self._matches(user_id, tuple(ids))

    def group_members(self, group_id: str) -> frozenset[str]:
        """Members of a user group, cached; raises GroupLookupError when Slack cannot say."""
        return self._group_members(group_id)

    def excluded(self, user_id: str) -> bool:
        """True when the last check found ``user_id`` not a full member (a guest, deactivated,
        a bot, another organisation's), or could not tell: what a refusal should say. Asks
        Slack nothing."""
        return bool(self._users.get((user_id,))) or user_id in self._unverified

    def forget(self) -> None:
        """Drop every cached group and user lookup: the next check asks Slack again."""
        with self._cond:
            self._cache.clear()
        with self._users_cond:
            self._users.clear()
        self._unverified.clear()

    def is_full_member(self, user_id: str) -> bool:
        """Whether ``user_id`` is a full member of the installing workspace (or organisation),
        cached; False, with one WARNING, when Slack cannot say (fail closed)."""
        try:
            reason = self._not_a_member(user_id)
        except UserLookupError as exc:
            log.warning(
                "Could not look up user %s (%s); treating as not a member", user_id, exc.reason
            )
            self._unverified[user_id] = exc.reason
            return False
        self._unverified.pop(user_id, None)
        if reason:
            log.info("User %s is %s: no role through * or a user group", user_id, reason)
        return not reason

    @cachedmethod(lambda self: self._users, condition=lambda self: self._users_cond)
    def _not_a_member(self, user_id: str) -> str:
        """Why the user is not a full member ("" when they are one); raises UserLookupError
        (not cached: the next check asks again)."""
        team_id, enterprise_id = self._home_team(user_id)
        try:
            response = self._client.users_info(user=user_id)
        except CALL_ERRORS as exc:
            raise UserLookupError(user_id, classify(exc).error) from None
        user = response.get("user")
        if not isinstance(user, Mapping):
            raise UserLookupError(user_id, "answer had no such user")
        return not_a_member(user, team_id, enterprise_id) or ""

    def _home_team(self, user_id: str) -> tuple[str, str | None]:
        """The installing workspace's team id and enterprise id (auth.test), asked once."""
        with self._home_lock:
            if self._home is None:
                try:
                    response = self._client.auth_test()
                except CALL_ERRORS as exc:
                    raise UserLookupError(user_id, f"auth.test: {classify(exc).error}") from None
                team_id = response.get("team_id")
                if not isinstance(team_id, str) or not team_id:
                    raise UserLookupError(user_id, "auth.test named no team")
                enterprise_id = response.get("enterprise_id")
                self._home = (team_id, enterprise_id if isinstance(enterprise_id, str) else None)
            return self._home

    # Failures raise, and cachetools does not cache a raised call: the next check asks again.
    @cachedmethod(lambda self: self._cache, condition=lambda self: self._cond)
    def _group_members(self, group_id: str) -> frozenset[str]:
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except CALL_ERRORS as exc:
            raise GroupLookupError(group_id, classify(exc).error) from None
        users = response.get("users")
        if not isinstance(users, list):
            raise GroupLookupError(group_id, "answer had no user list")
        return frozenset(u for u in users if isinstance(u, str))

    def _matches(self, user_id: str, allowed: tuple[str, ...]) -> bool:
        if not USER_ID_RE.match(user_id or ""):
            return False  # not a user ID at all (a group ID, a name, nothing): no role
        if user_id in allowed:
            return True  # listed by ID: an admin's deliberate choice, not looked up
        if EVERYONE in allowed:
            return self.is_full_member(user_id)
        for entry in allowed:
            if not GROUP_ID_RE.match(entry):
                continue
            try:
                if user_id in self.group_members(entry):
                    return self.is_full_member(user_id)
            except GroupLookupError as exc:
                # Fail closed for this group, but another group may still let the user in.
                log.warning(
                    "Could not read members of %s (%s); treating as not a member",
                    exc.group_id,
                    exc.reason,
                )
        return False
