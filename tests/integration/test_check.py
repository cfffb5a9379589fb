"""``python -m bot check`` against the loopback stand-ins: each check passes, then fails in turn.

Every run goes through ``run`` below, which also asserts what must hold for any run: no secret
appears in the output or the logs, no traceback is printed, nothing is posted to Slack (no
``chat.*`` call) and the provider's confirm endpoint is never called.
"""

from __future__ import annotations

import argparse
import io
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.cli.check import DEFAULT_TIMEOUT, DESCRIPTION, add_arguments, run_check, safe_url
from bot.settings import Settings
from bot.standins.provider import (
    CONFIRM_PATH,
    DOMAINS_PATH,
    STATUS_PATH,
    FakeProvider,
    Response,
)
from bot.standins.slack import DEFAULT_SCOPES, FakeSlack
from bot.store import open_store

# Distinctive secret values: none of them may ever appear in what check prints or logs.
BOT_TOKEN = "xoxb-check-Zq8SECRET-bot"
SIGNING_SECRET = "signing-Zq8SECRET-sig"
PROVIDER_KEY = "provider-Zq8SECRET-key"
DB_PASSWORD = "pw-Zq8SECRET-db"
WRONG_BOT_TOKEN = "xoxb-wrong-Zq8SECRET-bot"
WRONG_PROVIDER_KEY = "provider-wrong-Zq8SECRET-key"
SECRETS = (
    BOT_TOKEN,
    SIGNING_SECRET,
    PROVIDER_KEY,
    DB_PASSWORD,
    WRONG_BOT_TOKEN,
    WRONG_PROVIDER_KEY,
    "Zq8SECRET",
)

CHANNEL = "C0APPROVALS"
APPROVER_GROUP = "S0APPROVERS"
REQUESTER_GROUP = "S0SUPPORT"
SLACK_READS = {"auth.test", "conversations.info", "usergroups.users.list"}


@dataclass
class Result:
    code: int
    lines: list[str]

    def status(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]

    def one(self, prefix: str, *needles: str) -> str:
        """The only line starting with ``prefix`` that contains every needle."""
        found = [line for line in self.status(prefix) if all(n in line for n in needles)]
        assert len(found) == 1, f"{prefix!r} {needles} in:\n" + "\n".join(self.lines)
        return found[0]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's environment: each run says what it uses."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=BOT_TOKEN, team="Acme") as fake:
        fake.add_channel(CHANNEL, name="email-approvals")
        fake.set_usergroup(APPROVER_GROUP, ["U0APPROVER", "U0APPROVER2"])
        fake.set_usergroup(REQUESTER_GROUP, ["U0REQUESTER"])
        yield fake


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(PROVIDER_KEY) as fake:
        yield fake


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.db"


@pytest.fixture
def settings(slack: FakeSlack, provider: FakeProvider, db_path: Path) -> dict[str, Any]:
    db_path.parent.mkdir()
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "HOSTUP_API_KEY": PROVIDER_KEY,
        "HOSTUP_API_URL": provider.url,
        "APPROVERS": APPROVER_GROUP,
        "REQUESTERS": REQUESTER_GROUP,
        "APPROVAL_CHANNEL": CHANNEL,
        "DATABASE_URL": f"sqlite:///{db_path}",
    }


@pytest.fixture
def run(
    slack: FakeSlack,
    provider: FakeProvider,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
):
    def run(*, timeout: float = DEFAULT_TIMEOUT, remove: tuple[str, ...] = (), **changes: Any):
        overrides = {k: v for k, v in {**settings, **changes}.items() if k not in remove}
        out = io.StringIO()
        with caplog.at_level(logging.INFO):
            code = run_check(out, env_file=None, overrides=overrides, timeout=timeout)
        text = out.getvalue()
        stray = capsys.readouterr()
        for seen in (text, caplog.text, stray.out, stray.err):
            for secret in SECRETS:
                assert secret not in seen
            assert "Traceback" not in seen
        assert not [c.method for c in slack.calls if c.method.startswith("chat.")]
        assert not [c for c in provider.calls if c["path"] == CONFIRM_PATH]
        lines = text.splitlines()
        assert lines and all(line[:6] in {"ok    ", "FAIL  ", "warn  ", "skip  "} for line in lines)
        assert code == (1 if any(line.startswith("FAIL") for line in lines) else 0)
        return Result(code, lines)

    return run


def closed_port_url(path: str = "/") -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# ------------------------------------------------------------------------------- passing


def test_a_good_configuration_passes_every_check_and_changes_nothing(
    run, slack: FakeSlack, provider: FakeProvider, db_path: Path
) -> None:
    """All nine checks pass, one ok line each (one per group), in order, exit 0; Slack is only
    read, the provider only sees GET status and one GET of its v2 domain list, and the
    database file is not created."""
    result = run()
    assert result.code == 0
    assert result.lines == [
        "ok    Settings are valid (HTTP mode on port 3000)",
        "ok    Slack accepts SLACK_BOT_TOKEN (bot @verify-email in workspace Acme)",
        f"ok    The bot is a member of APPROVAL_CHANNEL {CHANNEL} (#email-approvals) and may "
        "post there (chat:write)",
        "ok    The bot may read the history of #email-approvals (channels:history): a request "
        "message whose posting answer Slack lost is found there and updated, not posted twice",
        "ok    The bot may read files attached to the bulk form (files:read): a list of emails "
        "can be pasted or attached as a .txt or .csv file",
        f"ok    User group {APPROVER_GROUP} in APPROVERS resolves: 2 members",
        f"ok    User group {REQUESTER_GROUP} in REQUESTERS resolves: 1 member",
        "ok    POLICY_FILE is not set: the settings decide every request (APPROVERS, "
        "APPROVALS_REQUIRED, REMIND_EVERY; confirm and resend both allowed)",
        f"ok    The provider accepts HOSTUP_API_KEY (read-only GET {provider.url}/"
        "email-verification/status answered; 1 domain in its cache)",
        f"ok    HOSTUP_API_KEY can read the provider's per-domain view (GET {provider.url}/"
        "v2/domains)",
        f"ok    The store at DATABASE_URL sqlite:///{db_path} does not exist yet; its "
        f"directory {db_path.parent} is writable, and the bot creates the database when it "
        "starts",
    ]
    assert {c.method for c in slack.calls} == SLACK_READS
    assert [(c["method"], c["path"]) for c in provider.calls] == [("GET", STATUS_PATH)]
    assert [(c["method"], c["path"], c["query"]) for c in provider.view_calls] == [
        ("GET", DOMAINS_PATH, {"limit": ["1"]})
    ]
    assert list(db_path.parent.iterdir()) == []


def test_an_existing_store_is_opened_and_pinged(run, db_path: Path) -> None:
    """With the database already there, check proves it could write (taking the write lock and
    giving it back) and changes nothing in the file: not its schema, not its journal mode."""
    open_store(f"sqlite:///{db_path}").close()
    before = db_path.read_bytes()
    result = run()
    assert result.code == 0
    result.one(
        "ok    ", f"DATABASE_URL sqlite:///{db_path}", "reachable and writable", "schema version"
    )
    assert db_path.read_bytes() == before


def test_settings_are_read_from_the_env_file(
    settings: dict[str, Any], tmp_path: Path, slack: FakeSlack
) -> None:
    """run_check loads settings the way the bot does: the environment plus the .env file."""
    env_file = tmp_path / "check.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    out = io.StringIO()
    assert run_check(out, env_file=str(env_file)) == 0
    assert BOT_TOKEN not in out.getvalue()
    assert slack.calls_to("auth.test")


def test_a_requester_group_without_members_is_only_a_warning(run, slack: FakeSlack) -> None:
    """An empty REQUESTERS group gives a warn line (nobody gets the role through it), exit 0."""
    slack.set_usergroup(REQUESTER_GROUP, [])
    result = run()
    assert result.code == 0
    result.one("warn  ", f"User group {REQUESTER_GROUP} in REQUESTERS", "has no members")


def test_a_group_in_both_lists_is_resolved_once(run, slack: FakeSlack) -> None:
    """A group named in APPROVERS and REQUESTERS is looked up once and reported on one line;
    user IDs need no lookup."""
    result = run(APPROVERS=f"{APPROVER_GROUP},U0BOSS", REQUESTERS=f"U0ALICE,{APPROVER_GROUP}")
    assert result.code == 0
    result.one("ok    ", f"User group {APPROVER_GROUP} in APPROVERS and REQUESTERS", "2 members")
    assert len(slack.calls_to("usergroups.users.list")) == 1


def test_no_groups_means_nothing_to_resolve(run, slack: FakeSlack) -> None:
    """When the roles name only user IDs (or everyone), the group check still prints its line."""
    result = run(APPROVERS="U0BOSS", REQUESTERS="*")
    assert result.code == 0
    result.one("ok    ", "name no user groups")
    assert not slack.calls_to("usergroups.users.list")


def test_chat_write_public_stands_in_for_membership_of_a_public_channel(
    run, slack: FakeSlack
) -> None:
    """A bot outside a public channel can still post there with chat:write.public."""
    slack.add_channel(CHANNEL, name="email-approvals", is_member=False)
    slack.set_scopes([*DEFAULT_SCOPES, "chat:write.public"])
    result = run()
    assert result.code == 0
    result.one("ok    ", f"APPROVAL_CHANNEL {CHANNEL}", "chat:write")


def test_without_a_scope_header_chat_write_is_a_warning(run, slack: FakeSlack) -> None:
    """If Slack lists no scopes (no X-OAuth-Scopes), membership passes and chat:write is a warn."""
    slack.set_scopes(None)
    result = run()
    assert result.code == 0
    result.one("warn  ", f"APPROVAL_CHANNEL {CHANNEL}", "chat:write is not confirmed")


# ------------------------------------------------------------------- 1. settings invalid


def test_invalid_settings_name_each_setting_and_stop(
    run, slack: FakeSlack, provider: FakeProvider
) -> None:
    """Each bad or missing setting gets its own FAIL line naming it (never its value); then one
    line says the other checks cannot run, nothing is called, exit 1."""
    result = run(
        SLACK_BOT_TOKEN="Zq8SECRET-not-a-bot-token",
        APPROVAL_CHANNEL="#approvals",
        APPROVERS="alice",
        HOSTUP_API_URL="ftp://provider.example",
        DATABASE_URL="mysql://bot:pw@db.example/bot",
        remove=("HOSTUP_API_KEY", "SLACK_SIGNING_SECRET"),
    )
    assert result.code == 1
    for name in (
        "SLACK_BOT_TOKEN",
        "APPROVAL_CHANNEL",
        "APPROVERS",
        "HOSTUP_API_URL",
        "DATABASE_URL",
        "HOSTUP_API_KEY",
        "SLACK_SIGNING_SECRET",
    ):
        line = result.one(f"FAIL  {name}: ")
        assert "Fix: set " + name in line
    result.one("FAIL  HOSTUP_API_KEY: ", "is required but not set")
    assert result.lines[-1].startswith("skip  ")
    assert len(result.lines) == 8
    assert slack.calls == [] and provider.calls == []


# ------------------------------------------------------------------------ 2. Slack token


def test_a_bad_bot_token_fails_and_skips_the_checks_that_need_it(run, slack: FakeSlack) -> None:
    """Slack's invalid_auth names SLACK_BOT_TOKEN; channel and groups are skipped (one line),
    and the provider and store are still checked."""
    result = run(SLACK_BOT_TOKEN=WRONG_BOT_TOKEN)
    assert result.code == 1
    line = result.one("FAIL  SLACK_BOT_TOKEN: ", "invalid_auth")
    assert "OAuth & Permissions" in line
    result.one("skip  ", f"APPROVAL_CHANNEL {CHANNEL}", "user groups")
    result.one("ok    ", "The provider accepts HOSTUP_API_KEY")
    result.one("ok    ", "DATABASE_URL")
    assert {c.method for c in slack.calls} == {"auth.test"}


def test_a_token_echoed_by_slack_is_not_printed(run, slack: FakeSlack) -> None:
    """Even when Slack's answer repeats the token, the line shows [redacted] instead."""
    slack.fail_next("auth.test", error=f"invalid_auth {BOT_TOKEN}")
    result = run()
    assert "[redacted]" in result.one("FAIL  SLACK_BOT_TOKEN: ")


def test_slack_unreachable_is_a_fail_line_naming_slack_api_url(run) -> None:
    """Nothing listening at SLACK_API_URL: a FAIL line naming it (no traceback), then a skip."""
    url = closed_port_url("/api/")
    result = run(SLACK_API_URL=url)
    assert result.code == 1
    result.one(f"FAIL  SLACK_API_URL {url}: ", "could not reach Slack")
    result.one("skip  ", "need Slack to accept SLACK_BOT_TOKEN")


def test_slack_too_slow_is_a_timeout_naming_slack_api_url(run, slack: FakeSlack) -> None:
    """A Slack that does not answer within --timeout fails the check quickly, naming the URL."""
    slack.set_delay("auth.test", 1.5)
    result = run(timeout=0.3)
    result.one("FAIL  SLACK_API_URL ", "no answer within 0.3 s", "--timeout")


def test_a_slack_outage_is_not_blamed_on_the_token(run, slack: FakeSlack) -> None:
    """A 5xx from Slack is reported as Slack failing (naming SLACK_API_URL), not a bad token."""
    slack.fail_next("auth.test", error="fatal_error", status=503, retry_after=None, times=2)
    result = run()
    result.one("FAIL  SLACK_API_URL ", "Slack failed to answer auth.test (HTTP 503)")
    assert not result.status("FAIL  SLACK_BOT_TOKEN")


def test_a_slack_api_url_that_is_not_slack_is_named(run, provider: FakeProvider) -> None:
    """An answer that is not the Slack Web API's (here: the provider's 401 problem JSON) says
    SLACK_API_URL is wrong, not that the token is."""
    result = run(SLACK_API_URL=provider.url + "/")
    result.one("FAIL  SLACK_API_URL ", "is not the Slack Web API's")
    assert not result.status("FAIL  SLACK_BOT_TOKEN")


# --------------------------------------------------------------------- 3. APPROVAL_CHANNEL


def test_bot_not_in_the_channel(run, slack: FakeSlack) -> None:
    """conversations.info's is_member false: FAIL naming the channel and how to invite the bot."""
    slack.add_channel(CHANNEL, name="email-approvals", is_member=False)
    result = run()
    assert result.code == 1
    line = result.one(f"FAIL  APPROVAL_CHANNEL {CHANNEL}: ", "not a member of #email-approvals")
    assert "/invite @verify-email" in line


def test_channel_not_found(run) -> None:
    """channel_not_found: the bot cannot see the channel, so the ID is wrong or it is private."""
    result = run(APPROVAL_CHANNEL="C0NOSUCH")
    assert result.code == 1
    line = result.one("FAIL  APPROVAL_CHANNEL C0NOSUCH: ", "cannot see this channel")
    assert "private channel" in line


def test_missing_channels_read_scope_is_named(run, slack: FakeSlack) -> None:
    """missing_scope on conversations.info names the scope Slack says is needed."""
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "channels:read"])
    result = run()
    assert result.code == 1
    line = result.one(f"FAIL  APPROVAL_CHANNEL {CHANNEL}: ", "channels:read")
    assert "SLACK_BOT_TOKEN lacks" in line and "reinstall" in line


def test_missing_chat_write_scope_fails_without_posting(run, slack: FakeSlack) -> None:
    """chat:write absent from auth.test's X-OAuth-Scopes: FAIL naming SLACK_BOT_TOKEN and the
    channel; found without posting anything (the run helper asserts no chat.* call)."""
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "chat:write"])
    result = run()
    assert result.code == 1
    result.one("FAIL  SLACK_BOT_TOKEN: ", "chat:write", f"APPROVAL_CHANNEL {CHANNEL}")
    assert not result.status("ok    The bot is a member")


# -------------------------------------------------------------------------- 4. user groups


def test_unknown_group_is_named(run) -> None:
    """no_such_subteam: FAIL naming the group ID and its setting; the good group still passes."""
    result = run(APPROVERS=f"{APPROVER_GROUP},S0NOSUCH")
    assert result.code == 1
    line = result.one("FAIL  User group S0NOSUCH in APPROVERS: ", "no user group with this ID")
    assert "Acme" in line
    result.one("ok    ", f"User group {APPROVER_GROUP}", "2 members")


def test_missing_usergroups_read_scope_is_named(run, slack: FakeSlack) -> None:
    """missing_scope on usergroups.users.list names usergroups:read for each group."""
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "usergroups:read"])
    result = run()
    result.one(f"FAIL  User group {APPROVER_GROUP} in APPROVERS: ", "usergroups:read")
    result.one(f"FAIL  User group {REQUESTER_GROUP} in REQUESTERS: ", "usergroups:read")


def test_missing_users_read_scope_is_named(run, slack: FakeSlack) -> None:
    """Without users:read nobody gets a role through * or a group: check FAILs naming the
    scope; with only user IDs listed it is not needed and not asked for."""
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "users:read"])
    result = run(REQUESTERS="*")
    assert result.code == 1
    result.one("FAIL  SLACK_BOT_TOKEN: ", "users:read", "full member")
    assert run(APPROVERS="U0APPROVER,U0APPROVER2", REQUESTERS="U0REQUESTER").code == 0


def test_an_empty_approver_group_with_no_one_else_means_nobody_can_approve(
    run, slack: FakeSlack
) -> None:
    """When every APPROVERS entry resolves to nobody, the empty group is a FAIL, not a warning."""
    slack.set_usergroup(APPROVER_GROUP, [])
    result = run()
    assert result.code == 1
    result.one(f"FAIL  User group {APPROVER_GROUP} in APPROVERS: ", "nobody can approve")


def test_an_empty_approver_group_next_to_a_named_approver_is_a_warning(
    run, slack: FakeSlack
) -> None:
    """An empty approver group is only a warning when another entry names an approver."""
    slack.set_usergroup(APPROVER_GROUP, [])
    result = run(APPROVERS=f"{APPROVER_GROUP},U0BOSS")
    assert result.code == 0
    result.one("warn  ", f"User group {APPROVER_GROUP} in APPROVERS", "has no members")


# ----------------------------------------------------------------------------- 5. provider


def test_provider_refusing_the_key_names_hostup_api_key(run, provider: FakeProvider) -> None:
    """A 401 from the status endpoint names HOSTUP_API_KEY; only GET status was called."""
    result = run(HOSTUP_API_KEY=WRONG_PROVIDER_KEY)
    assert result.code == 1
    result.one("FAIL  HOSTUP_API_KEY: ", "refused the key", "HTTP 401")
    assert {(c["method"], c["path"]) for c in provider.calls} == {("GET", STATUS_PATH)}


def test_a_key_echoed_by_the_provider_is_not_printed(run, provider: FakeProvider) -> None:
    """A provider error message that repeats the key is shown without it."""
    provider.enqueue(Response.error(403, f"Key {PROVIDER_KEY} may not do that", shape="problem"))
    result = run()
    result.one("FAIL  HOSTUP_API_KEY: ", "HTTP 403")


def test_a_short_secret_is_scrubbed_where_it_stands_alone(
    run, slack: FakeSlack, provider: FakeProvider
) -> None:
    """A short secret (a 3-character signing secret) echoed by Slack is scrubbed as a word,
    while a 1-letter provider key does not mangle every word containing that letter."""
    provider.api_key = "e"
    slack.fail_next("auth.test", error="invalid_auth s3c")
    result = run(HOSTUP_API_KEY="e", SLACK_SIGNING_SECRET="s3c")
    assert "with invalid_auth [redacted]." in result.one("FAIL  SLACK_BOT_TOKEN: ")
    assert result.lines[0] == "ok    Settings are valid (HTTP mode on port 3000)"
    result.one("ok    The provider accepts HOSTUP_API_KEY")


def test_a_key_without_the_view_scope_is_a_warning_naming_it(run, provider: FakeProvider) -> None:
    """A key the v2 view refuses (403): the bot still works, so a warn line (exit 0) that
    names the missing scope read:domains and what the bot does without it."""
    provider.scopes.clear()
    result = run()
    assert result.code == 0
    result.one("warn  ", "HOSTUP_API_KEY may not read", "read:domains", "requests still work")
    assert not any(PROVIDER_KEY in line for line in result.lines)


def test_a_view_that_fails_otherwise_is_a_warning(run, provider: FakeProvider) -> None:
    """A v2 view failing with a server error is a warn line too, saying what it was."""
    provider.script_view("server_error")
    result = run()
    assert result.code == 0
    result.one("warn  ", "Could not read the provider's per-domain view", "HTTP 500")


def test_provider_unreachable_names_hostup_api_url(run) -> None:
    """Nothing listening at HOSTUP_API_URL: FAIL naming it, no traceback."""
    url = closed_port_url("/api")
    result = run(HOSTUP_API_URL=url)
    assert result.code == 1
    result.one(f"FAIL  HOSTUP_API_URL {url}: ", "could not reach the provider")


def test_provider_timeout_names_hostup_api_url(run, provider: FakeProvider) -> None:
    """A provider that does not answer within --timeout: FAIL naming HOSTUP_API_URL."""
    provider.enqueue(Response.hang(3))
    result = run(timeout=0.3)
    result.one("FAIL  HOSTUP_API_URL ", "no answer within 0.3 s")


def test_a_wrong_provider_path_names_hostup_api_url(run, provider: FakeProvider) -> None:
    """A 404 (HOSTUP_API_URL with a wrong path) blames the URL, not the key."""
    result = run(HOSTUP_API_URL=provider.url + "/v9")
    result.one(f"FAIL  HOSTUP_API_URL {provider.url}/v9: ", "HTTP 404", "API base URL")


# -------------------------------------------------------------------------------- 6. store


def test_store_in_an_unusable_directory_names_database_url(run, tmp_path: Path) -> None:
    """A database path whose parent is a regular file (unwritable even for root) fails,
    naming DATABASE_URL and the directory; nothing is left behind."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file")
    url = f"sqlite:///{blocker}/bot.db"
    result = run(DATABASE_URL=url)
    assert result.code == 1
    result.one(f"FAIL  DATABASE_URL {url}: ", f"{blocker} does not exist or is not a directory")
    assert blocker.read_text() == "a file"


def test_an_existing_file_that_is_not_a_database_fails(run, db_path: Path) -> None:
    """A DATABASE_URL naming a file that is not SQLite fails, naming it, and leaves it alone."""
    db_path.write_text("not a database")
    result = run()
    result.one(f"FAIL  DATABASE_URL sqlite:///{db_path}: ", "not a database")
    assert db_path.read_text() == "not a database"


def test_a_database_password_is_never_printed(run) -> None:
    """An unreachable PostgreSQL store fails, showing the URL with its password masked."""
    port = closed_port_url().rsplit(":", 1)[1].rstrip("/")
    result = run(DATABASE_URL=f"postgresql://bot:{DB_PASSWORD}@127.0.0.1:{port}/verify")
    line = result.one(f"FAIL  DATABASE_URL postgresql://bot:***@127.0.0.1:{port}/verify: ")
    assert "PostgreSQL" in line
    assert "Fix: check the host, port" in line


def test_a_postgres_store_is_checked_without_changing_it(run, postgres_url: str) -> None:
    """On PostgreSQL the store check connects and proves it could write, leaving no schema."""
    result = run(DATABASE_URL=postgres_url)
    assert result.code == 0
    result.one("ok    ", "reachable and writable", "no schema yet")
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
    open_store(postgres_url).close()  # the bot's own schema, as at start
    run(DATABASE_URL=postgres_url).one("ok    ", "reachable and writable", "schema version")


def test_safe_url_drops_passwords_queries_and_fragments() -> None:
    """safe_url keeps what locates a service and drops what may be a credential."""
    assert safe_url("https://u:p@h.example:8443/api?key=k#f") == "https://u:***@h.example:8443/api"
    assert safe_url("sqlite:////var/lib/bot.db") == "sqlite:////var/lib/bot.db"
    assert safe_url("http://[::1") == "(a URL that cannot be parsed)"


# ------------------------------------------------------------------------- command line


def test_add_arguments_takes_a_bounded_timeout() -> None:
    """--timeout defaults to the bot's Slack timeout and refuses zero or nonsense."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    add_arguments(parser)
    assert parser.parse_args([]).timeout == DEFAULT_TIMEOUT
    assert parser.parse_args(["--timeout", "2.5"]).timeout == 2.5
    for bad in ("0", "soon", "1000"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--timeout", bad])
    assert "read-only" in DESCRIPTION and "never the confirm endpoint" in DESCRIPTION


# ---------------------------------------------------------------- the stand-in's scopes


def test_stand_in_reports_scopes_and_refuses_missing_ones() -> None:
    """FakeSlack sends X-OAuth-Scopes on authenticated answers, as Slack does, and answers
    missing_scope with needed/provided when a method's scope is not granted."""
    with FakeSlack(bot_token=BOT_TOKEN, scopes=["chat:write"]) as fake:
        fake.add_channel(CHANNEL)
        client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
        assert client.auth_test().headers["X-OAuth-Scopes"] == "chat:write"
        with pytest.raises(SlackApiError) as refused:
            client.conversations_info(channel=CHANNEL)
        assert refused.value.response.data == {
            "ok": False,
            "error": "missing_scope",
            "needed": "channels:read",
            "provided": "chat:write",
        }
        assert refused.value.response.headers["X-Accepted-OAuth-Scopes"] == "channels:read"
        with pytest.raises(SlackApiError) as unknown:
            WebClient(token="xoxb-nope", base_url=fake.api_url).auth_test()
        assert "X-OAuth-Scopes" not in unknown.value.response.headers


def test_provider_status_items_of_any_shape_pass(run, provider: FakeProvider) -> None:
    """The reference documents data.domains as objects with unnamed fields: check passes on
    objects, strings and shapes it does not know alike, counting every item."""
    provider.status_items = [{"id": 1, "state": "pending"}, {"domain": "a.example"}, "b.example", 5]
    result = run()
    assert result.code == 0, result.lines
    line = next(line for line in result.lines if "HOSTUP_API_KEY" in line)
    assert line.startswith("ok ")
    assert line.endswith("answered; 4 domains in its cache)")


def test_a_quorum_larger_than_the_approvers_fails(run) -> None:
    """APPROVALS_REQUIRED above the number of distinct approvers APPROVERS resolves to (here
    the group's 2 members and one user listed by ID) is a FAIL naming the setting; a quorum
    they can meet passes."""
    result = run(APPROVALS_REQUIRED=4, APPROVERS=f"{APPROVER_GROUP},U0EXTRA")
    assert result.code == 1
    result.one(
        "FAIL  APPROVALS_REQUIRED: 4 distinct approvers are needed, but APPROVERS resolves to 3 "
        "distinct approvers"
    )
    assert run(APPROVALS_REQUIRED=3, APPROVERS=f"{APPROVER_GROUP},U0EXTRA").code == 0


def test_a_short_interrupted_after_is_a_warning(run) -> None:
    """INTERRUPTED_AFTER (the claim's lease) no longer than one provider attempt is a warn line
    naming it (the bot still works); one longer than that, or 0 (derived), says nothing."""
    result = run(INTERRUPTED_AFTER=3, HOSTUP_TIMEOUT=3)
    assert result.code == 0
    result.one("warn  ", "INTERRUPTED_AFTER=3 is a lease no longer than one provider attempt")
    assert not any(
        "INTERRUPTED_AFTER" in line for line in run(INTERRUPTED_AFTER=4, HOSTUP_TIMEOUT=3).lines
    )
    for fine in (0, 3600):
        assert not any("INTERRUPTED_AFTER" in line for line in run(INTERRUPTED_AFTER=fine).lines)


# ------------------------------------------------------------ the history scope (optional)


@pytest.mark.parametrize(
    ("private", "scope"), [(False, "channels:history"), (True, "groups:history")]
)
def test_a_missing_history_scope_is_a_warning_saying_what_it_buys(
    run, slack: FakeSlack, private: bool, scope: str
) -> None:
    """Without channels:history (groups:history for a private channel) the bot still works,
    so check passes with a warning that names the scope and what it buys: a request message
    whose posting answer was lost is otherwise posted a second time, the first keeping live
    buttons. With it, an ok line says so."""
    slack.add_channel(CHANNEL, name="email-approvals", is_private=private)
    slack.set_scopes([s for s in DEFAULT_SCOPES if not s.endswith(":history")])
    result = run()
    assert result.code == 0
    line = result.one("warn  ", scope)
    assert "posts a second copy" in line and "live buttons" in line
    assert f"add {scope} to the app's bot token scopes" in line
    slack.set_scopes(DEFAULT_SCOPES)
    assert "not posted twice" in run().one("ok    ", scope)


# ----------------------------------------------------------------- files:read (optional)


def test_without_files_read_a_warning_says_lists_can_be_pasted_not_attached(
    run, slack: FakeSlack
) -> None:
    """Without files:read the bot cannot read a list attached to the bulk form (file_input,
    files.info and the url_private download need it), but it works: check passes with one
    warn line saying a list can still be pasted but not attached, and how to add the scope.
    With it, an ok line says both are possible; with no scope header, nothing is said."""
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "files:read"])
    result = run()
    assert result.code == 0
    line = result.one("warn  ", "files:read")
    assert line == (
        "warn  SLACK_BOT_TOKEN lacks the files:read scope, so the bot cannot read a file "
        "attached to the bulk form: bulk lists can still be pasted, but not attached. Fix: add "
        "files:read to the app's bot token scopes (manifests/ lists every scope the bot needs), "
        "reinstall the app to the workspace, and put the new token in SLACK_BOT_TOKEN if it "
        "changed"
    )
    assert not [s for s in result.status("ok    ") if "files:read" in s]
    slack.set_scopes(DEFAULT_SCOPES)
    assert "pasted or attached" in run().one("ok    ", "files:read")
    slack.set_scopes(None)
    assert not [s for s in run().lines if "files:read" in s]
    assert "files.info" not in {c.method for c in slack.calls}


# ------------------------------------------------------------------------------- POLICY_FILE

POLICY = """\
[default]
approvers = ["S0APPROVERS"]
approvals_required = 1

[[rule]]
name = "vip-customers"
domains = ["*.bank.example"]
approvers = ["S0SENIOR"]
approvals_required = 2

[[rule]]
name = "resend-is-routine"
operations = ["resend"]
requesters = ["S0SUPPORT"]
approvals_required = 0
"""


def test_a_valid_policy_file_lists_its_rules(run, slack: FakeSlack, tmp_path: Path) -> None:
    """POLICY_FILE valid: one ok line naming it and its hash, then each rule in the order they
    are tried, [default] last; each user group it names is read (the groups already in
    APPROVERS or REQUESTERS are reported once, by their own check); exit 0."""
    slack.set_usergroup("S0SENIOR", ["U0SEN1", "U0SEN2"])
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    result = run(POLICY_FILE=str(path))
    assert result.code == 0, result.lines
    start = result.lines.index(result.one("ok    ", f"POLICY_FILE {path} is valid (hash "))
    assert result.lines[start].endswith("): 2 rules and [default], tried in this order:")
    assert result.lines[start + 1 : start + 5] == [
        "ok    Rule vip-customers (line 5): domains *.bank.example -> 2 approvals from S0SENIOR; "
        "reminders every 1800 s",
        "ok    Rule resend-is-routine (line 11): operations resend; requesters S0SUPPORT -> "
        "approved by the rule itself (0 approvals)",
        "ok    Rule default (line 1): every other request; operations confirm, resend -> 1 "
        "approval from S0APPROVERS; reminders every 1800 s",
        "ok    User group S0SENIOR in POLICY_FILE (rule vip-customers) resolves: 2 members",
    ]
    assert not result.status("warn")
    assert [c.params["usergroup"] for c in slack.calls_to("usergroups.users.list")].count(
        "S0SENIOR"
    ) == 1


def test_users_read_is_asked_for_when_only_the_policy_names_a_group(
    run, slack: FakeSlack, tmp_path: Path
) -> None:
    """APPROVERS and REQUESTERS name user IDs only, but POLICY_FILE gives a rule to a user
    group: a group admits only full members (users.info), so without users:read check FAILs
    naming the scope; without the file it does not."""
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "users:read"])
    slack.set_usergroup("S0SENIOR", ["U0SEN1", "U0SEN2"])
    path = tmp_path / "policy.toml"
    path.write_text('[[rule]]\nname = "vip"\ndomains = ["vip.example"]\napprovers = ["S0SENIOR"]\n')
    ids = {"APPROVERS": "U0APPROVER,U0APPROVER2", "REQUESTERS": "U0REQUESTER"}
    result = run(POLICY_FILE=str(path), **ids)
    assert result.code == 1
    result.one("FAIL  SLACK_BOT_TOKEN: ", "users:read", "full member")
    assert run(**ids).code == 0


def test_a_bad_policy_file_fails_with_its_line(run, tmp_path: Path) -> None:
    """A file the bot could not start with is a FAIL line carrying the PolicyError ("PATH line
    N: reason") and how to see what the file decides; exit 1."""
    path = tmp_path / "policy.toml"
    path.write_text('[[rule]]\nname = "a"\ndomain = ["x.example"]\n')
    result = run(POLICY_FILE=str(path))
    assert result.code == 1
    line = result.one("FAIL  POLICY_FILE: ")
    assert f"POLICY_FILE: {path} line 3: rule a: unknown key 'domain'" in line
    assert f"policy explain EMAIL --file {path}" in line


def test_a_policy_that_no_one_can_satisfy_is_warned_of(
    run, slack: FakeSlack, tmp_path: Path
) -> None:
    """A rule letting confirm run with 0 approvals, one needing more approvals than its
    approvers (with escalate_to) have people, and a rule never reached are warn lines; a
    quorum met through escalate_to or "*" is not; the run still passes."""
    slack.set_usergroup("S0SENIOR", ["U0SEN1"])
    path = tmp_path / "policy.toml"
    path.write_text(
        """\
[default]
approvers = ["U0ANN"]
approvals_required = 1

[[rule]]
name = "auto-confirm"
domains = ["free.example"]
approvals_required = 0

[[rule]]
name = "too-few"
domains = ["*.bank.example"]
approvers = ["S0SENIOR", "U0ANN"]
approvals_required = 3

[[rule]]
name = "escalated"
domains = ["*.shop.example"]
approvers = ["S0SENIOR"]
approvals_required = 3
escalate_after = 600
escalate_to = ["U0BOSS", "U0ANN"]

[[rule]]
name = "anyone"
domains = ["*.co.example"]
approvers = ["*"]
approvals_required = 5

[[rule]]
name = "everything"

[[rule]]
name = "shadowed"
domains = ["x.example"]
"""
    )
    result = run(POLICY_FILE=str(path))
    assert result.code == 0, result.lines
    assert result.status("warn") == [
        "warn  POLICY_FILE: rule shadowed (line 33) is never used: rule everything before it "
        "matches every request of its operations (confirm, resend)",
        "warn  POLICY_FILE: rule auto-confirm (line 5) lets confirm run with approvals_required "
        "0: a confirm it decides is approved by no one (it bypasses the customer's own click)",
        "warn  POLICY_FILE: rule too-few (line 10) needs 3 approvals, but its approvers are 2 "
        "distinct people: its requests can never be approved",
    ]


def test_policy_groups_that_do_not_resolve_are_named(run, tmp_path: Path) -> None:
    """A user group in the policy Slack does not know is a FAIL naming the rules that use it,
    and the quorum it would fill is only "so far"."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[[rule]]\nname = "vip"\ndomains = ["vip.example"]\napprovers = ["S0NOSUCH"]\n'
        "approvals_required = 2\n"
    )
    result = run(POLICY_FILE=str(path))
    assert result.code == 1
    result.one("FAIL  User group S0NOSUCH in POLICY_FILE (rule vip): ", "knows no user group")
    result.one("warn  POLICY_FILE: rule vip (line 1) needs 2 approvals", "(S0NOSUCH not read)")


def test_without_slack_the_policy_is_still_validated(run, tmp_path: Path) -> None:
    """With Slack refusing the token, the file is still parsed and listed; the groups it names
    are skipped, saying why."""
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    result = run(POLICY_FILE=str(path), SLACK_BOT_TOKEN=WRONG_BOT_TOKEN)
    result.one("ok    ", f"POLICY_FILE {path} is valid")
    result.one("skip  The user groups in POLICY_FILE (S0SENIOR, S0APPROVERS, S0SUPPORT) not read")
    assert not [line for line in result.lines if "POLICY_FILE" in line and "approvals" in line]
