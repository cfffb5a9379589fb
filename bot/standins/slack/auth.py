"""Tokens and scopes as Slack checks them: the bot token for every method but
`apps.connections.open`, the app-level token for that one only; the bot token's granted scopes
(reported in `X-OAuth-Scopes`) and the scope each method needs (`missing_scope` otherwise).

A step run's token (the `bot_access_token` of `function_executed`, a "workflow token", a subset
of the bot token) works like the bot token, with its scopes, while its run is not completed
and it is not expired: `token_revoked` once the run is completed, `token_expired` after
`function_token_ttl` seconds (or `expire_function_token()`)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from bot.standins.slack.state import Params, Workspace

# The app-level token's scope (Socket Mode).
APP_TOKEN_SCOPES: tuple[str, ...] = ("connections:write",)


# The scope each method needs; conversations.info is decided per channel in _needed_scope.
_METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
    "users.info": "users:read",
    "files.info": "files:read",
}


class Tokens(Workspace):
    """The token and scope checks of `FakeSlack`."""

    def set_scopes(self, scopes: Iterable[str] | None) -> None:
        """Grant the bot token these scopes from now on (None: no header, no scope checks)."""
        with self._cond:
            self._scopes = None if scopes is None else tuple(scopes)

    @property
    def scopes(self) -> tuple[str, ...] | None:
        """The bot token's scopes, as `X-OAuth-Scopes` reports them."""
        with self._cond:
            return self._scopes

    def _is_bot(self, token: str | None) -> bool:
        """The bot token, or a step run's token (expired or not)."""
        return token == self.bot_token or token in self._function_tokens

    def _granted(self, token: str | None) -> tuple[str, ...]:
        if token == self.app_token:
            return APP_TOKEN_SCOPES
        return self._scopes or ()

    def _missing_scope(self, method: str, params: Params, token: str | None) -> str | None:
        """The scope `method` needs that the token lacks, or None."""
        if self._scopes is None or not self._is_bot(token):
            return None
        needed = _METHOD_SCOPES.get(method)
        if method == "conversations.info":
            channel = str(params.get("channel", ""))
            if channel.startswith("D"):
                return None  # DMs: not a call the bot makes; left unchecked as before
            private = self._channels.get(channel, {}).get("is_private", False)
            needed = "groups:read" if private else "channels:read"
        elif method == "conversations.history":
            channel = str(params.get("channel", ""))
            private = self._channels.get(channel, {}).get("is_private", False)
            needed = "im:history" if channel.startswith("D") else None
            needed = needed or ("groups:history" if private else "channels:history")
        if needed is None or needed in self._scopes:
            return None
        return needed

    def _check_token(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if token in self._function_tokens:
            execution = self._executions[self._function_tokens[token]]
            if method == "apps.connections.open":
                return "not_allowed_token_type"
            if not execution.running:
                return "token_revoked"
            if execution.token_expired or (
                time.monotonic() - execution.issued > self.function_token_ttl
            ):
                return "token_expired"
            return None
        if token not in (self.bot_token, self.app_token):
            return "invalid_auth"
        needs_app_token = method == "apps.connections.open"
        if (token == self.app_token) != needs_app_token:
            return "not_allowed_token_type"
        return None
