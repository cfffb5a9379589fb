"""``python -m bot check``: test a real configuration without changing anything.

One line per check, in this order, each starting with a fixed-width status word::

    ok    Settings are valid (HTTP mode on port 3000)
    ok    Slack accepts SLACK_BOT_TOKEN (bot @verify-email in workspace Acme)
    FAIL  APPROVAL_CHANNEL C0123ABCD: the bot is not a member of #approvals. Fix: in Slack, …
    ok    User group S0123ABCD in APPROVERS resolves: 3 members
    warn  User group S0456EFGH in REQUESTERS has no members: nobody gets a role through it
    ok    The provider accepts HOSTUP_API_KEY (read-only GET https://cloud.hostup.se/api/…
    ok    The store at DATABASE_URL sqlite:///verify-email.db is reachable and writable

A FAIL line is ``FAIL  <setting and value at fault>: <what is wrong>. Fix: <what to do>.``

``ok`` passed, ``FAIL`` failed (the line names the setting at fault and ends with ``Fix: …``),
``warn`` is worth knowing but does not fail the run, and ``skip`` says which checks could not
run because an earlier one failed. The exit code is 0 when nothing failed, 1 otherwise.

Nothing is changed anywhere: Slack is only read (``auth.test``, ``conversations.info``,
``usergroups.users.list``; never a ``chat.*`` method), the provider only through its read-only
status endpoint (never the confirm endpoint), and the store's write test is rolled back. When
the SQLite file does not exist yet, the check does not create it: it proves the directory can
hold a database by creating and removing a scratch one next to it.

No secret is ever printed: messages are built from error codes and our own sentences, and
every line is also scrubbed of the configured secret values before it is written.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sqlite3
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

from bot.provider.api import DOMAINS_PATH, STATUS_PATH, VIEW_SCOPE
from bot.provider.client import HostupClient
from bot.provider.failures import ProviderError
from bot.provider.reading import clean_text
from bot.services import SLACK_TIMEOUT, slack_client
from bot.settings import (
    EVERYONE,
    GROUP_ID_RE,
    USER_ID_RE,
    Settings,
    SettingsError,
    load_settings,
)
from bot.slack.errors import CALL_ERRORS, SlackFailure, classify
from bot.store import (
    SQLiteStore,
    StoreConfigError,
    StoreError,
    is_postgres_url,
    sqlite_path_from_url,
)

DESCRIPTION = (
    "Check a deployment's configuration without changing anything, one line per check: every "
    "setting is valid; Slack accepts SLACK_BOT_TOKEN; the bot is a member of APPROVAL_CHANNEL "
    "and has the chat:write scope (nothing is posted); every user group in APPROVERS and "
    "REQUESTERS resolves; the provider accepts HOSTUP_API_KEY (through its read-only status "
    "endpoint, never the confirm endpoint); the store at DATABASE_URL is reachable and "
    "writable. A failed check names the setting at fault and how to fix it. Settings come "
    "from the environment or a .env file, as for serving; no secret is printed. Exits 0 when "
    "every check passed, 1 otherwise."
)

DEFAULT_TIMEOUT = float(SLACK_TIMEOUT)  # seconds for one Slack or provider call
# A check tries the provider at most twice (a failed connection or a 429 gets one retry), and
# waits out a 429 at most this long: a check answers in seconds, not minutes.
PROVIDER_ATTEMPTS = 2
PROVIDER_MAX_RETRY_AFTER = 5.0
SLACK_DEFAULT_URL = "https://slack.com/api/"
PROVIDER_DEFAULT_URL = "https://cloud.hostup.se/api"
# Slack's answer when the token is unknown, revoked or belongs to a removed app.
_BAD_TOKEN_ERRORS = {
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
}
_MAX_REMOTE_TEXT = 200
# Secrets shorter than this are scrubbed only where they stand alone; see _Report.add_secrets.
SHORT_SECRET = 8


def _add_scope(scope: str) -> str:
    return (
        f"add {scope} to the app's bot token scopes (manifests/ lists every scope the bot "
        "needs), reinstall the app to the workspace, and put the new token in SLACK_BOT_TOKEN "
        "if it changed"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` subcommand's options."""
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on one Slack or provider call after this long (default: "
        f"{DEFAULT_TIMEOUT:g})",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 300 seconds")
    return value


def run_check(
    out: TextIO,
    *,
    env_file: str | None = ".env",
    overrides: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Run every check, write one line per check to ``out``; 0 if all passed, else 1.

    ``env_file``: the dotenv file Settings reads besides the environment (None: none);
    ``overrides``: settings given directly, by their contract names (they win over both);
    ``timeout``: seconds for one Slack or provider call.
    """
    report = _Report(out)
    settings = _check_settings(report, env_file, overrides or {})
    if settings is None:
        report.skip(
            "Slack, user group, provider and store checks not run: they need valid settings."
        )
        return report.exit_code
    report.add_secrets(_secret_values(settings))

    slack = _Slack(slack_client(settings), settings.SLACK_API_URL, timeout)
    report.waiting(
        f"asking Slack at {safe_url(settings.SLACK_API_URL)} (up to {timeout:g} s a call)"
    )
    bot = _check_token(report, slack)
    if bot is None:
        report.skip(
            f"APPROVAL_CHANNEL {settings.APPROVAL_CHANNEL} and the user groups not checked: "
            "they need Slack to accept SLACK_BOT_TOKEN."
        )
    else:
        _check_channel(report, slack, bot, settings.APPROVAL_CHANNEL)
        _check_groups(report, slack, bot, settings)
        _check_member_lookups(report, bot, settings)
    report.waiting(
        f"asking the provider at {safe_url(settings.HOSTUP_API_URL)} (read-only status, up to "
        f"{timeout:g} s a call)"
    )
    _check_provider(report, settings, timeout)
    report.waiting(f"opening the store at DATABASE_URL {safe_url(settings.DATABASE_URL)}")
    _check_store(report, settings.DATABASE_URL)
    return report.exit_code


# ---------------------------------------------------------------------------------------------
# Output


class _Report:
    """Writes the lines: fixed-width status word, one line each, secrets scrubbed."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._values: set[str] = set()
        self._secrets: list[re.Pattern[str]] = []
        self.failed = False

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def add_secrets(self, values: list[str]) -> None:
        """Scrub these values from every later line.

        A value of SHORT_SECRET characters or more is scrubbed wherever it appears; a shorter
        one (a placeholder such as "x") only where it stands alone, so that it cannot leak yet
        does not mangle every word that happens to contain it.
        """
        self._values |= {v for v in values if v}
        self._secrets = [
            re.compile(
                re.escape(v) if len(v) >= SHORT_SECRET else rf"(?<![\w-]){re.escape(v)}(?![\w-])"
            )
            for v in sorted(self._values, key=len, reverse=True)  # longest first: scrubbed whole
        ]

    def ok(self, text: str) -> None:
        self._line("ok", text)

    def warn(self, text: str) -> None:
        self._line("warn", text)

    def skip(self, text: str) -> None:
        self._line("skip", text)

    def fail(self, subject: str, problem: str, fix: str) -> None:
        self.failed = True
        self._line("FAIL", f"{subject}: {_sentence(problem)} Fix: {_sentence(fix)}")

    def waiting(self, text: str) -> None:
        """Say on stderr what the next step waits for (stdout keeps one line per check)."""
        for secret in self._secrets:
            text = secret.sub("[redacted]", text)
        print(f"… {text}", file=sys.stderr, flush=True)

    def _line(self, status: str, text: str) -> None:
        for secret in self._secrets:
            text = secret.sub("[redacted]", text)
        # One line per check, whatever a remote answer contained.
        text = " ".join("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text).split())
        self._out.write(f"{status:<6}{text}\n")
        self._out.flush()


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _secret_values(settings: Settings) -> list[str]:
    values = [
        settings.SLACK_BOT_TOKEN.get_secret_value(),
        settings.HOSTUP_API_KEY.get_secret_value(),
    ]
    for optional in (settings.SLACK_APP_TOKEN, settings.SLACK_SIGNING_SECRET):
        if optional is not None:
            values.append(optional.get_secret_value())
    with suppress(ValueError):
        password = urlsplit(settings.DATABASE_URL).password
        if password:
            values.append(password)
    return values


def _remote(value: object) -> str | None:
    """A string from Slack or the provider, made safe to print on one line."""
    return clean_text(value, _MAX_REMOTE_TEXT)


def safe_url(url: str) -> str:
    """``url`` without a password, query or fragment: safe to print."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    except ValueError:
        return "(a URL that cannot be parsed)"
    # Built by hand: urlunsplit would turn sqlite:////abs.db into sqlite://abs.db.
    slashes = "//" if url[len(parts.scheme) + 1 :].startswith("//") else ""
    return f"{parts.scheme}:{slashes}{netloc}{parts.path}"


# ---------------------------------------------------------------------------------------------
# 1. Settings


def _check_settings(
    report: _Report, env_file: str | None, overrides: dict[str, Any]
) -> Settings | None:
    where = "the environment" if env_file is None else f"the environment or {env_file}"
    try:
        settings = load_settings(_env_file=env_file, **overrides)
    except SettingsError as exc:
        for problem in exc.problems:
            name, sep, what = problem.partition(": ")
            if sep and name in Settings.model_fields:
                report.fail(name, what, f"set {name} correctly in {where} (see .env.example)")
            else:
                report.fail("Settings", problem, f"correct the settings in {where}")
        return None
    mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.PORT}"
    report.ok(f"Settings are valid ({mode})")
    if 0 < settings.INTERRUPTED_AFTER <= settings.HOSTUP_TIMEOUT:
        report.warn(
            f"INTERRUPTED_AFTER={settings.INTERRUPTED_AFTER} is a lease no longer than one "
            f"provider attempt (HOSTUP_TIMEOUT={settings.HOSTUP_TIMEOUT:g}): a live call can be "
            "taken for an interrupted one; unset it outside soaks and tests"
        )
    return settings


# ---------------------------------------------------------------------------------------------
# Slack


class _SlackFailure(Exception):
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


class _Slack:
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
            raise _SlackFailure(classify(exc, timeout=self.timeout)) from None

    def report_transport(self, report: _Report, failure: _SlackFailure, what: str) -> None:
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


class _Bot:
    """Who Slack says the token is, and the scopes it was granted (None: Slack did not say)."""

    def __init__(self, name: str, team: str, scopes: frozenset[str] | None) -> None:
        self.name = name
        self.team = team
        self.scopes = scopes


def _granted_scopes(headers: dict[str, Any] | None) -> frozenset[str] | None:
    """The token's scopes from Slack's ``X-OAuth-Scopes`` header, or None if it is absent."""
    for name, value in (headers or {}).items():
        if name.lower() == "x-oauth-scopes":
            text = ",".join(value) if isinstance(value, list) else str(value)
            return frozenset(s.strip() for s in text.split(",") if s.strip())
    return None


# 2. auth.test


def _check_token(report: _Report, slack: _Slack) -> _Bot | None:
    try:
        response = slack.call(slack.client.auth_test)
    except _SlackFailure as failure:
        if failure.kind == "api":
            known = failure.error in _BAD_TOKEN_ERRORS
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
    name = _remote(response.get("user")) or "?"
    team = _remote(response.get("team")) or "?"
    report.ok(f"Slack accepts SLACK_BOT_TOKEN (bot @{name} in workspace {team})")
    return _Bot(name, team, _granted_scopes(response.headers))


# 3. APPROVAL_CHANNEL


def _check_channel(report: _Report, slack: _Slack, bot: _Bot, channel_id: str) -> None:
    subject = f"APPROVAL_CHANNEL {channel_id}"
    member_ok = False
    label = channel_id
    history_scope: str | None = None  # what reading the channel's history needs, once known
    try:
        response = slack.call(slack.client.conversations_info, channel=channel_id)
    except _SlackFailure as failure:
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
                _add_scope(needed),
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
        name = _remote(info.get("name"))
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
            _add_scope("chat:write"),
        )
    elif member_ok:
        report.ok(f"The bot is a member of {subject} ({label}) and may post there (chat:write)")
    if member_ok and history_scope is not None and bot.scopes is not None:
        _check_history_scope(report, subject, label, bot.scopes, history_scope)


def _check_history_scope(
    report: _Report, subject: str, label: str, scopes: frozenset[str], scope: str
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
        f"showing pending. Fix: {_add_scope(scope)}"
    )


# 4. User groups in APPROVERS and REQUESTERS


def _check_groups(report: _Report, slack: _Slack, bot: _Bot, settings: Settings) -> None:
    roles: dict[str, list[str]] = {}
    for setting, entries in (
        ("APPROVERS", settings.APPROVERS),
        ("REQUESTERS", settings.REQUESTERS),
    ):
        for entry in entries or ():
            if GROUP_ID_RE.match(entry) and setting not in roles.setdefault(entry, []):
                roles[entry].append(setting)
    if not roles:
        report.ok("APPROVERS and REQUESTERS name no user groups (S…): nothing to resolve")
        _check_quorum(report, settings, {e for e in settings.APPROVERS if USER_ID_RE.match(e)})
        return

    members: dict[str, int | None] = {}  # None: did not resolve
    member_ids: dict[str, set[str]] = {}
    failures: dict[str, _SlackFailure] = {}
    for group_id in roles:
        try:
            response = slack.call(slack.client.usergroups_users_list, usergroup=group_id)
        except _SlackFailure as failure:
            members[group_id], failures[group_id] = None, failure
            continue
        users = response.get("users")
        member_ids[group_id] = (
            {u for u in users if isinstance(u, str)} if isinstance(users, list) else set()
        )
        members[group_id] = len(member_ids[group_id])

    # Nobody can approve when no APPROVERS entry names a user and no approver group has anyone.
    nobody_approves = not any(USER_ID_RE.match(e) for e in settings.APPROVERS) and not any(
        members.get(e) for e in settings.APPROVERS
    )
    for group_id, in_settings in roles.items():
        subject = f"User group {group_id} in {' and '.join(in_settings)}"
        count = members[group_id]
        if count is None:
            _report_group_failure(report, slack, bot, subject, failures[group_id])
        elif count > 0:
            report.ok(f"{subject} resolves: {count} member{'s' if count != 1 else ''}")
        elif "APPROVERS" in in_settings and nobody_approves:
            report.fail(
                subject,
                "it has no members, and no other APPROVERS entry names anyone, so nobody can "
                "approve a request",
                "add people to the group in Slack, or add approvers' user IDs (U…) to APPROVERS",
            )
        else:
            report.warn(f"{subject} has no members: nobody gets a role through it")
    approvers = {e for e in settings.APPROVERS if USER_ID_RE.match(e)}
    for entry in settings.APPROVERS:
        approvers |= member_ids.get(entry, set())
    unresolved = any(members.get(e, 0) is None for e in settings.APPROVERS)
    _check_quorum(report, settings, approvers, unresolved=unresolved)


def _check_quorum(
    report: _Report, settings: Settings, approvers: set[str], *, unresolved: bool = False
) -> None:
    """APPROVALS_REQUIRED must not need more distinct approvers than APPROVERS names."""
    required = settings.APPROVALS_REQUIRED
    if required <= 1 or len(approvers) >= required:
        return
    found = f"APPROVERS resolves to {len(approvers)} distinct approver" + (
        "" if len(approvers) == 1 else "s"
    )
    if unresolved:
        report.warn(
            f"APPROVALS_REQUIRED is {required}, but {found} so far (a group did not resolve): "
            "requests may never be approved"
        )
        return
    report.fail(
        "APPROVALS_REQUIRED",
        f"{required} distinct approvers are needed, but {found}: no request could ever be approved",
        "lower APPROVALS_REQUIRED, or add people to APPROVERS (or to its user groups)",
    )


def _check_member_lookups(report: _Report, bot: _Bot, settings: Settings) -> None:
    """``*`` and user groups admit only full members, which users.info (users:read) says:
    without the scope nobody gets a role through them (roles fail closed)."""
    entries = (*settings.APPROVERS, *(settings.REQUESTERS or ()))
    if not any(e == EVERYONE or GROUP_ID_RE.match(e) for e in entries):
        return
    if bot.scopes is None or "users:read" in bot.scopes:
        return
    report.fail(
        "SLACK_BOT_TOKEN",
        "lacks the users:read scope: users.info says who is a full member (not a guest, a bot, "
        "deactivated or another organisation's), so nobody gets a role through * or a user "
        "group without it",
        _add_scope("users:read"),
    )


def _report_group_failure(
    report: _Report, slack: _Slack, bot: _Bot, subject: str, failure: _SlackFailure
) -> None:
    if failure.kind != "api":
        slack.report_transport(report, failure, "usergroups.users.list")
    elif failure.error == "no_such_subteam":
        report.fail(
            subject,
            f"Slack knows no user group with this ID in workspace {bot.team}",
            "copy the group's ID (S…) from Slack (People → User groups → the group → ⋯ → Copy "
            "group ID); roles are matched by ID, never by @handle",
        )
    elif failure.error == "missing_scope":
        needed = failure.field("needed") or "usergroups:read"
        report.fail(
            subject,
            f"SLACK_BOT_TOKEN lacks the {needed} scope needed to list the group's members",
            _add_scope(needed),
        )
    else:
        report.fail(
            subject,
            f"Slack answered usergroups.users.list with {failure.error}",
            "check the group ID (S…), or name the approvers' user IDs (U…) instead",
        )


# ---------------------------------------------------------------------------------------------
# 5. The provider, through its read-only status endpoint only


def _check_provider(report: _Report, settings: Settings, timeout: float) -> None:
    url = safe_url(settings.HOSTUP_API_URL)
    endpoint = f"GET {url.rstrip('/')}/{STATUS_PATH}"
    try:
        client = HostupClient(
            settings.HOSTUP_API_URL,
            settings.HOSTUP_API_KEY.get_secret_value(),
            timeout,
            max_attempts=PROVIDER_ATTEMPTS,
            max_retry_after=PROVIDER_MAX_RETRY_AFTER,
        )
    except ValueError:
        report.fail(
            "HOSTUP_API_KEY",
            "the key contains a line break or NUL character, which an HTTP header cannot carry",
            "paste the key again on one line",
        )
        return
    with client:
        try:
            status = client.status()
        except ProviderError as exc:
            _report_provider_failure(report, exc, f"HOSTUP_API_URL {url}", endpoint, timeout)
            return
        listed = status.listed
        report.ok(
            f"The provider accepts HOSTUP_API_KEY (read-only {endpoint} answered; "
            f"{listed} domain{'s' if listed != 1 else ''} in its cache)"
        )
        _check_view(report, client, url)


def _check_view(report: _Report, client: HostupClient, url: str) -> None:
    """Whether the key can read the v2 per-domain view. The bot works without it (requests,
    approvals and the confirm call do not need it), so a refusal is a WARN naming the scope."""
    endpoint = f"GET {url.rstrip('/')}/{DOMAINS_PATH}"
    unavailable = client.view_access()
    if unavailable is None:
        report.ok(f"HOSTUP_API_KEY can read the provider's per-domain view ({endpoint})")
        return
    without = (
        "requests still work, but without the provider's state beside them, the read-back "
        "after a call, or Check provider"
    )
    if unavailable.kind == "no_scope":
        report.warn(
            f"HOSTUP_API_KEY may not read the provider's per-domain view ({endpoint}: "
            f"{unavailable.message}): {without}. Fix: give the key the {VIEW_SCOPE} scope in "
            "the provider's control panel"
        )
    else:
        report.warn(
            f"Could not read the provider's per-domain view ({endpoint}: {unavailable.message})"
            f": {without} while this lasts"
        )


def _report_provider_failure(
    report: _Report, exc: ProviderError, subject: str, endpoint: str, timeout: float
) -> None:
    wrong_url = (
        "set HOSTUP_API_URL to the provider's API base URL, without /email-verification/… "
        f"(leave it unset for {PROVIDER_DEFAULT_URL})"
    )
    if exc.kind == "auth":
        report.fail(
            "HOSTUP_API_KEY",
            f"the provider refused the key: {exc}",
            "put a valid API key from the provider's control panel in HOSTUP_API_KEY, with "
            "access to email verification",
        )
    elif exc.kind == "unreachable":
        report.fail(
            subject,
            f"could not reach the provider: {exc.message}",
            "check HOSTUP_API_URL, and this machine's network, DNS, firewall and proxy "
            f"settings (leave HOSTUP_API_URL unset for {PROVIDER_DEFAULT_URL})",
        )
    elif exc.kind == "timeout":
        report.fail(
            subject,
            f"{endpoint} got no answer within {timeout:g} s ({exc.message})",
            "check HOSTUP_API_URL and this machine's network, or run check again with a "
            "longer --timeout",
        )
    elif exc.kind == "rate_limited":
        report.fail(
            "HOSTUP_API_KEY",
            f"the provider is limiting how often this key may call it (the key itself was not "
            f"refused): {exc}",
            "wait a minute and run check again",
        )
    elif exc.kind == "server_error":
        report.fail(
            subject,
            f"the provider failed with a server error: {exc}",
            "this is on the provider's side: try again later; if it persists, check "
            "HOSTUP_API_URL points at the provider",
        )
    else:  # rejected (404, 405, …) or bad_response (HTML, redirect, wrong shape)
        report.fail(subject, f"{endpoint} did not answer as the provider's API: {exc}", wrong_url)


# ---------------------------------------------------------------------------------------------
# 6. The store


def _check_store(report: _Report, database_url: str) -> None:
    subject = f"DATABASE_URL {safe_url(database_url)}"
    if is_postgres_url(database_url):
        _check_postgres(report, database_url, subject)
        return
    try:
        path = sqlite_path_from_url(database_url)
        if path.exists():
            found = _probe_sqlite(path)
            report.ok(f"The store at {subject} is reachable and writable ({found})")
        else:
            _probe_directory(path)
            report.ok(
                f"The store at {subject} does not exist yet; its directory {path.parent} is "
                "writable, and the bot creates the database when it starts"
            )
    except StoreConfigError as exc:
        report.fail(
            subject,
            str(exc).removeprefix("DATABASE_URL: ").removeprefix("DATABASE_URL "),
            "use sqlite:///relative.db or sqlite:////absolute/path.db",
        )
    except StoreError as exc:
        report.fail(
            subject,
            str(exc),
            "make sure the directory exists and this user may write to it, that the file is "
            "the bot's SQLite database, and that no other process holds it locked",
        )


def _check_postgres(report: _Report, database_url: str, subject: str) -> None:
    try:
        from bot.store.postgres import probe
    except ImportError:
        report.fail(
            subject,
            "the PostgreSQL driver is not installed",
            "pip install 'verify-email-bot[postgres]'",
        )
        return
    try:
        found = probe(database_url)
    except StoreError as exc:
        report.fail(
            subject,
            str(exc),
            "check the host, port, database name, user and password, and that this user may "
            "create tables in the database",
        )
        return
    report.ok(f"The store at {subject} is reachable and writable ({found})")


def _probe_sqlite(path: Path) -> str:
    """Prove an existing SQLite database can be written, changing nothing in it.

    Opening it as the bot does would migrate an old schema and switch its journal mode, so
    this opens the file as it is, takes the write lock and gives it back.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the SQLite database {path}: {exc}") from None
    try:
        conn.isolation_level = None
        conn.execute("BEGIN IMMEDIATE")  # the write lock: fails if read-only or held elsewhere
        conn.execute("ROLLBACK")
        try:
            row = conn.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return "no schema yet: the bot creates it when it starts"
        return f"schema version {row[0]}" if row else "no schema version yet"
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite database {path}: {exc}") from None
    finally:
        conn.close()


def _probe_directory(path: Path) -> None:
    """Raise StoreError unless a SQLite database can be created next to ``path``.

    Uses a scratch database of its own (removed afterwards), so the check never creates the
    real one and never deletes a file it did not create.
    """
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(f"{parent} does not exist or is not a directory")
    scratch = parent / f".verify-email-check-{secrets.token_hex(6)}.db"
    try:
        with SQLiteStore(scratch) as store:
            store.ping()
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            # Best effort: a scratch file that cannot be removed must not hide the real answer.
            with suppress(OSError):
                Path(f"{scratch}{suffix}").unlink(missing_ok=True)
