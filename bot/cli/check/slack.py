"""The Slack checks: the token (``auth.test``), APPROVAL_CHANNEL (``conversations.info``) and
whether ``files:read`` is granted (the token's scopes), through the bot's own Slack client;
never a ``chat.*`` method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

from bot.cli.check.output import Report, remote, safe_url
from bot.slack.errors import CALL_ERRORS, SlackFailure, classify

SLACK_DEFAULT_URL = "https://slack.com/api/"
# Slack's answer when the token is unknown, revoked or belongs to a removed app.
BAD_TOKEN_ERRORS = {
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
}


def add_scope(scope: str) -> str:
    return (
        f"add {scope} to the app's bot token scopes (manifests/ lists every scope the bot "
        "needs), reinstall the app to the workspace, and put the new token in SLACK_BOT_TOKEN "
        "if it changed"
    )


class SlackCallFailure(Exception):
    """A Slack call that failed, as the bot's one classifier (bot.slack.errors) reads it."""

    def __init__(self, failure: SlackFailure) -> None:
        super().__init__(failure.error)
        # "api" (Slack's own error code), "ratelimited", "server_error", "not_slack",
        # "timeout", "unreachable"
        self.kind = failure.kind
        self.error = failure.error
        self.response = failure.response
        self._failure = failure

    def field(self, name: str) -> str | None:
        return self._failure.field(name)


class Slack:
    """The bot's own Slack client (same retry handlers), with a check's timeout."""

    def __init__(self, client: WebClient, api_url: str, timeout: float) -> None:
        # slack_client() sets the bot's own timeout; a check uses its own (urllib takes floats).
        client.timeout = timeout  # type: ignore[assignment]
        self.client = client
        self.api_url = api_url
        self.timeout = timeout

    def call(self, method: Callable[..., SlackResponse], **kwargs: Any) -> SlackResponse:
        try:
            return method(**kwargs)
        except CALL_ERRORS as exc:
            raise SlackCallFailure(classify(exc, timeout=self.timeout)) from None

    def report_transport(self, report: Report, failure: SlackCallFailure, what: str) -> None:
        """A FAIL line for a failure that is not Slack's answer to the call itself."""
        subject = f"SLACK_API_URL {safe_url(self.api_url)}"
        if failure.kind == "unreachable":
            report.fail(
                subject,
                f"could not reach Slack for {what} ({failure.error})",
                "check this machine's network, DNS, firewall and proxy settings (HTTPS_PROXY); "
                f"leave SLACK_API_URL unset to use {SLACK_DEFAULT_URL}",
            )
        elif failure.kind == "timeout":
            report.fail(
                subject,
                f"Slack gave {what} {failure.error}",
                "check this machine's network and proxy settings, or run check again with a "
                "longer --timeout",
            )
        elif failure.kind == "ratelimited":
            report.fail(
                "SLACK_BOT_TOKEN",
                f"Slack is rate limiting this token ({what} still answered 429 after retries)",
                "wait a minute and run check again",
            )
        elif failure.kind == "server_error":
            report.fail(
                subject,
                f"Slack failed to answer {what} ({failure.error})",
                "check https://slack-status.com and run check again later; if it persists, "
                f"leave SLACK_API_URL unset to use {SLACK_DEFAULT_URL}",
            )
        else:  # not_slack
            report.fail(
                subject,
                f"the answer to {what} ({failure.error}) is not the Slack Web API's",
                f"leave SLACK_API_URL unset to use {SLACK_DEFAULT_URL}, or point it at the "
                "Web API base URL (ending in /api/)",
            )


class Bot:
    """Who Slack says the token is, and the scopes it was granted (None: Slack did not say)."""

    def __init__(self, name: str, team: str, scopes: frozenset[str] | None) -> None:
        self.name = name
        self.team = team
        self.scopes = scopes


def granted_scopes(headers: dict[str, Any] | None) -> frozenset[str] | None:
    """The token's scopes from Slack's ``X-OAuth-Scopes`` header, or None if it is absent."""
    for name, value in (headers or {}).items():
        if name.lower() == "x-oauth-scopes":
            text = ",".join(value) if isinstance(value, list) else str(value)
            return frozenset(s.strip() for s in text.split(",") if s.strip())
    return None


# 2. auth.test


def check_token(report: Report, slack: Slack) -> Bot | None:
    try:
        response = slack.call(slack.client.auth_test)
    except SlackCallFailure as failure:
        if failure.kind == "api":
            known = failure.error in BAD_TOKEN_ERRORS
            report.fail(
                "SLACK_BOT_TOKEN",
                f"Slack refused the token ({failure.error})"
                if known
                else f"Slack answered auth.test with {failure.error}",
                "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page "
                "into SLACK_BOT_TOKEN (reinstall the app first if it was removed or the token "
                "revoked)",
            )
        else:
            slack.report_transport(report, failure, "auth.test")
        return None
    name = remote(response.get("user")) or "?"
    team = remote(response.get("team")) or "?"
    report.ok(f"Slack accepts SLACK_BOT_TOKEN (bot @{name} in workspace {team})")
    return Bot(name, team, granted_scopes(response.headers))


# 3. APPROVAL_CHANNEL


def check_channel(report: Report, slack: Slack, bot: Bot, channel_id: str) -> None:
    subject = f"APPROVAL_CHANNEL {channel_id}"
    member_ok = False
    label = channel_id
    history_scope: str | None = None  # what reading the channel's history needs, once known
    try:
        response = slack.call(slack.client.conversations_info, channel=channel_id)
    except SlackCallFailure as failure:
        if failure.kind != "api":
            slack.report_transport(report, failure, "conversations.info")
        elif failure.error == "channel_not_found":
            report.fail(
                subject,
                "Slack says the bot cannot see this channel: the ID is wrong, or it is a "
                "private channel the bot was not invited to",
                "copy the ID from the channel's details (About tab, at the bottom) into "
                f"APPROVAL_CHANNEL; for a private channel, first type /invite @{bot.name} in it",
            )
        elif failure.error == "missing_scope":
            needed = failure.field("needed") or "channels:read"
            report.fail(
                subject,
                f"SLACK_BOT_TOKEN lacks the {needed} scope needed to read the channel",
                add_scope(needed),
            )
        else:
            report.fail(
                subject,
                f"Slack answered conversations.info with {failure.error}",
                "check that APPROVAL_CHANNEL is the channel's ID (C…) in this workspace",
            )
    else:
        info = response.get("channel")
        info = info if isinstance(info, dict) else {}
        name = remote(info.get("name"))
        label = f"#{name}" if name else channel_id
        public = not info.get("is_private", False)
        history_scope = "channels:history" if public else "groups:history"
        if info.get("is_archived"):
            report.fail(
                subject,
                f"{label} is archived, so nothing can be posted there",
                "unarchive it, or set APPROVAL_CHANNEL to another channel's ID",
            )
        elif info.get("is_member") is True:
            member_ok = True
        elif public and bot.scopes is not None and "chat:write.public" in bot.scopes:
            member_ok = True  # chat:write.public posts to public channels without joining
        else:
            report.fail(
                subject,
                f"the bot is not a member of {label}",
                f"in Slack, open {label} and type /invite @{bot.name} (or add the app from the "
                "channel's Integrations tab)",
            )

    if bot.scopes is None:
        if member_ok:
            report.warn(
                f"The bot is a member of {subject} ({label}), but Slack did not list the "
                "token's scopes (no X-OAuth-Scopes header), so chat:write is not confirmed"
            )
    elif "chat:write" not in bot.scopes:
        report.fail(
            "SLACK_BOT_TOKEN",
            f"the token lacks the chat:write scope, so the bot cannot post to {subject}",
            add_scope("chat:write"),
        )
    elif member_ok:
        report.ok(f"The bot is a member of {subject} ({label}) and may post there (chat:write)")
    if member_ok and history_scope is not None and bot.scopes is not None:
        check_history_scope(report, subject, label, bot.scopes, history_scope)


def check_history_scope(
    report: Report, subject: str, label: str, scopes: frozenset[str], scope: str
) -> None:
    """Whether the bot may read the channel's history: optional (the bot works without it),
    so a missing scope is a warn saying what it buys."""
    if scope in scopes:
        report.ok(
            f"The bot may read the history of {label} ({scope}): a request message whose "
            "posting answer Slack lost is found there and updated, not posted twice"
        )
        return
    report.warn(
        f"SLACK_BOT_TOKEN lacks the {scope} scope, so the bot cannot read the history of "
        f"{subject} ({label}): requests still work, but when Slack posts a request message and "
        "its answer is lost, the bot posts a second copy and the first keeps live buttons "
        f"showing pending. Fix: {add_scope(scope)}"
    )


# 3b. files:read (optional)


def check_files_scope(report: Report, bot: Bot) -> None:
    """Whether the bot may read a list of emails attached to the bulk form (``files:read``:
    Block Kit's file_input, ``files.info`` and downloading the file's ``url_private`` need it).
    Optional: without it a list is pasted instead, so a missing scope is a warn. Nothing is
    said when Slack did not list the token's scopes."""
    if bot.scopes is None:
        return
    if "files:read" in bot.scopes:
        report.ok(
            "The bot may read files attached to the bulk form (files:read): a list of emails "
            "can be pasted or attached as a .txt or .csv file"
        )
        return
    report.warn(
        "SLACK_BOT_TOKEN lacks the files:read scope, so the bot cannot read a file attached to "
        "the bulk form: bulk lists can still be pasted, but not attached. "
        f"Fix: {add_scope('files:read')}"
    )
