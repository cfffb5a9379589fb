"""``python -m bot check``: test a real configuration without changing anything.

One line per check, in this order, each starting with a fixed-width status word::

    ok    Settings are valid (HTTP mode on port 3000)
    ok    Slack accepts SLACK_BOT_TOKEN (bot @verify-email in workspace Acme)
    FAIL  APPROVAL_CHANNEL C0123ABCD: the bot is not a member of #approvals. Fix: in Slack, …
    ok    The bot may read files attached to the bulk form (files:read): a list of emails …
    ok    User group S0123ABCD in APPROVERS resolves: 3 members
    ok    POLICY_FILE is not set: the settings decide every request (APPROVERS, …
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

The checks live in this package by what they ask: :mod:`.output` (the lines, scrubbed of
secrets), :mod:`.slack` (the token, APPROVAL_CHANNEL and files:read), :mod:`.groups` (the
user groups in APPROVERS and REQUESTERS, the quorum), :mod:`.rules` (POLICY_FILE: valid, its
rules, the groups it names and each rule's quorum), :mod:`.provider` (the read-only status
endpoint and the per-domain view) and :mod:`.store` (DATABASE_URL); this module reads the
settings and runs them in order.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from bot.cli.check.groups import check_groups, check_member_lookups
from bot.cli.check.output import Report, safe_url, secret_values
from bot.cli.check.provider import check_provider
from bot.cli.check.rules import check_policy, policy_ids
from bot.cli.check.slack import Slack, check_channel, check_files_scope, check_token
from bot.cli.check.store import check_store
from bot.services import SLACK_TIMEOUT, slack_client
from bot.settings import Settings, SettingsError, load_settings

__all__ = ["DEFAULT_TIMEOUT", "DESCRIPTION", "add_arguments", "run_check", "safe_url"]

DESCRIPTION = (
    "Check a deployment's configuration without changing anything, one line per check: every "
    "setting is valid; Slack accepts SLACK_BOT_TOKEN; the bot is a member of APPROVAL_CHANNEL "
    "and has the chat:write scope (nothing is posted); whether files:read lets a list of "
    "emails be attached to the bulk form (else it is pasted); every user group in APPROVERS and "
    "REQUESTERS resolves; POLICY_FILE, when set, is valid (its rules are listed, with a "
    "warning for a rule no one can satisfy); the provider accepts HOSTUP_API_KEY (through "
    "its read-only status endpoint, never the confirm endpoint); the store at DATABASE_URL "
    "is reachable and writable. A failed check names the setting at fault and how to fix it. "
    "Settings come from the environment or a .env file, as for serving; no secret is "
    "printed. Exits 0 when every check passed, 1 otherwise."
)

DEFAULT_TIMEOUT = float(SLACK_TIMEOUT)  # seconds for one Slack or provider call


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
    report = Report(out)
    settings = check_settings(report, env_file, overrides or {})
    if settings is None:
        report.skip(
            "Slack, user group, provider and store checks not run: they need valid settings."
        )
        return report.exit_code
    report.add_secrets(secret_values(settings))

    slack = Slack(slack_client(settings), settings.SLACK_API_URL, timeout)
    report.waiting(
        f"asking Slack at {safe_url(settings.SLACK_API_URL)} (up to {timeout:g} s a call)"
    )
    bot = check_token(report, slack)
    if bot is None:
        report.skip(
            f"APPROVAL_CHANNEL {settings.APPROVAL_CHANNEL} and the user groups not checked: "
            "they need Slack to accept SLACK_BOT_TOKEN."
        )
    else:
        check_channel(report, slack, bot, settings.APPROVAL_CHANNEL)
        check_files_scope(report, bot)
        check_groups(report, slack, bot, settings)
        check_member_lookups(report, bot, settings, policy_ids(settings))
    check_policy(report, settings, slack if bot else None, bot)
    report.waiting(
        f"asking the provider at {safe_url(settings.HOSTUP_API_URL)} (read-only status, up to "
        f"{timeout:g} s a call)"
    )
    check_provider(report, settings, timeout)
    report.waiting(f"opening the store at DATABASE_URL {safe_url(settings.DATABASE_URL)}")
    check_store(report, settings.DATABASE_URL)
    return report.exit_code


# ---------------------------------------------------------------------------------------------
# 1. Settings


def check_settings(
    report: Report, env_file: str | None, overrides: dict[str, Any]
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
