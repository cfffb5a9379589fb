"""Who is a requester and who is an approver.

Roles name Slack user IDs (U…/W…) and user-group IDs (S…), never names. Group membership comes
from ``usergroups.users.list`` and is cached (TTL, shared safely between threads). When Slack
cannot say who is in a group, the answer is "not a member": roles fail closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from cachetools import TTLCache, cachedmethod
from slack_sdk import WebClient

from bot.settings import EVERYONE, GROUP_ID_RE, USER_ID_RE
from bot.slack_errors import CALL_ERRORS, classify

log = logging.getLogger(__name__)

GROUP_CACHE_TTL = 300.0  # seconds a group's member list is trusted
GROUP_CACHE_SIZE = 256


class GroupLookupError(Exception):
    """Slack could not tell us who is in a user group."""

    def __init__(self, group_id: str, reason: str) -> None:
        super().__init__(f"user group {group_id}: {reason}")
        self.group_id = group_id
        self.reason = reason


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

    def is_approver(self, user_id: str) -> bool:
        return self._matches(user_id, self.approvers)

    def is_requester(self, user_id: str) -> bool:
        return self._matches(user_id, self.requesters)

    def group_members(self, group_id: str) -> frozenset[str]:
        """Members of a user group, cached; raises GroupLookupError when Slack cannot say."""
        return self._group_members(group_id)

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
        if EVERYONE in allowed or user_id in allowed:
            return True
        for entry in allowed:
            if not GROUP_ID_RE.match(entry):
                continue
            try:
                if user_id in self.group_members(entry):
                    return True
            except GroupLookupError as exc:
                # Fail closed for this group, but another group may still let the user in.
                log.warning(
                    "Could not read members of %s (%s); treating as not a member",
                    exc.group_id,
                    exc.reason,
                )
        return False
