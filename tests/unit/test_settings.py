"""Settings: the contract's names, defaults, validation and secrecy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bot
from bot.settings import Settings, SettingsError, load_settings

BOT = Path(bot.__file__).resolve().parent

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "HOSTUP_API_KEY": "provider-secret-key",
    "APPROVERS": "U0APPROVER, S0GROUP",
    "APPROVAL_CHANNEL": "C0CHANNEL",
}
ALL_NAMES = [
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "HOSTUP_API_KEY",
    "HOSTUP_API_URL",
    "HOSTUP_TIMEOUT",
    "APPROVERS",
    "REQUESTERS",
    "APPROVAL_CHANNEL",
    "ALLOW_SELF_APPROVAL",
    "REQUEST_TTL",
    "DATABASE_URL",
    "PORT",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "METRICS",
    "APPROVALS_REQUIRED",
    "REMIND_EVERY",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ALL_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults(monkeypatch):
    """Defaults are those of the README's Settings table."""
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.SLACK_API_URL == "https://slack.com/api/"
    assert s.HOSTUP_API_URL == "https://cloud.hostup.se/api"
    assert s.HOSTUP_TIMEOUT == 15
    assert s.REQUEST_TTL == 86400
    assert s.PORT == 3000
    assert s.ALLOW_SELF_APPROVAL is False
    assert s.APPROVERS == ("U0APPROVER", "S0GROUP")
    assert s.REQUESTERS is None
    assert s.requesters == s.APPROVERS
    assert s.DATABASE_URL.startswith("sqlite:///")
    assert not s.socket_mode


def test_dotenv_file(tmp_path):
    """Settings load from a .env file in the working directory."""
    (tmp_path / ".env").write_text(
        "\n".join(f"{k}={v}" for k, v in GOOD.items()) + "\nREQUESTERS=*\nPORT=8080\n"
    )
    s = load_settings()
    assert s.PORT == 8080
    assert s.REQUESTERS == ("*",)


def test_every_missing_setting_named():
    """With nothing set, every required setting is named, SLACK_SIGNING_SECRET included."""
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "HOSTUP_API_KEY",
        "APPROVERS",
        "APPROVAL_CHANNEL",
    ):
        assert name in text


def test_socket_mode_needs_no_signing_secret():
    """With SLACK_APP_TOKEN set, the signing secret is optional and socket_mode is on."""
    values = {k: v for k, v in GOOD.items() if k != "SLACK_SIGNING_SECRET"}
    s = load_settings(**values, SLACK_APP_TOKEN="xapp-1-abc")
    assert s.socket_mode


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APPROVERS", "alice,bob"),
        ("APPROVERS", ""),
        ("REQUESTERS", "@here"),
        ("APPROVAL_CHANNEL", "#ops"),
        ("SLACK_BOT_TOKEN", "xoxp-user-token-secret"),
        ("SLACK_APP_TOKEN", "xoxb-wrong"),
        ("HOSTUP_TIMEOUT", "0"),
        ("REQUEST_TTL", "-5"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://x"),
        ("HOSTUP_API_URL", "cloud.hostup.se"),
        ("ALLOW_SELF_APPROVAL", "maybe"),
        ("APPROVALS_REQUIRED", "0"),
        ("APPROVALS_REQUIRED", "-1"),
        ("APPROVALS_REQUIRED", "two"),
        ("REMIND_EVERY", "-60"),
    ],
)
def test_malformed_setting_named_without_value(name, value):
    """A malformed setting is named; its value (perhaps a secret) is never repeated."""
    with pytest.raises(SettingsError) as info:
        load_settings(**{**GOOD, name: value})
    assert any(p.startswith(name) for p in info.value.problems)
    if len(value) > 6:
        assert value not in str(info.value)


def test_approvals_required_and_reminders(monkeypatch):
    """APPROVALS_REQUIRED defaults to 1 and REMIND_EVERY to 1800; APPROVALS_REQUIRED=0 in the
    environment (a request nobody would need to approve) stops start-up, named."""
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert (s.APPROVALS_REQUIRED, s.REMIND_EVERY) == (1, 1800)
    monkeypatch.setenv("APPROVALS_REQUIRED", "2")
    monkeypatch.setenv("REMIND_EVERY", "0")
    s = load_settings()
    assert (s.APPROVALS_REQUIRED, s.REMIND_EVERY) == (2, 0)
    monkeypatch.setenv("APPROVALS_REQUIRED", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert [p for p in info.value.problems if p.startswith("APPROVALS_REQUIRED")]


def test_secrets_hidden_in_repr():
    """Secrets are SecretStr: repr and str of the settings never show them."""
    s = load_settings(**GOOD)
    shown = repr(s) + str(s) + str(s.model_dump())
    for secret in ("xoxb-secret-bot-token", "signing-secret-value", "provider-secret-key"):
        assert secret not in shown


def test_slack_api_url_gets_trailing_slash():
    """slack_sdk appends method names to SLACK_API_URL, so it always ends in a slash."""
    assert load_settings(**GOOD, SLACK_API_URL="http://127.0.0.1:9/api").SLACK_API_URL.endswith("/")


ENVIRONMENT_READERS = frozenset({"environ", "environb", "getenv", "getenvb"})


def environment_reads(source: str) -> list[str]:
    """Where ``source`` reads the process environment (os.environ, os.getenv and the like,
    however os or the name was imported) or a dotenv file itself: ``line: what``."""
    tree = ast.parse(source)
    os_names = {"os"}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "os":
                    os_names.add(alias.asname or "os")
                if alias.name.split(".")[0] == "dotenv":
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "os":
                found += [
                    f"{node.lineno}: from os import {a.name}"
                    for a in node.names
                    if a.name in ENVIRONMENT_READERS
                ]
            elif node.module.split(".")[0] == "dotenv":
                found.append(f"{node.lineno}: from {node.module} import ...")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_READERS
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_settings_is_the_only_reader():
    """bot/settings.py is the one place the bot reads the environment (and .env, which
    Settings reads too): no other module of bot/ reads os.environ, os.getenv or a dotenv file
    itself, however it imports them (a WSGI ``environ`` parameter is not the environment)."""
    assert Settings.model_config["env_file"] == ".env"
    readers = {
        str(path.relative_to(BOT.parent)): reads
        for path in sorted(BOT.rglob("*.py"))
        if path != BOT / "settings.py"
        and (reads := environment_reads(path.read_text(encoding="utf-8")))
    }
    assert readers == {}


@pytest.mark.parametrize(
    "source",
    [
        "import os\nx = os.environ['A']",
        "import os\nx = os.environ.get('A')",
        "import os\nx = os.getenv('A')",
        "import os as o\nx = o.getenv('A')",
        "from os import environ\nx = environ['A']",
        "from os import getenv as g\nx = g('A')",
        "from dotenv import load_dotenv\nload_dotenv()",
    ],
)
def test_the_scan_finds_every_way_of_reading_the_environment(source):
    """The scan above would fail on each of these (so it is not passing by finding nothing),
    and not on a WSGI app's ``environ`` argument."""
    assert environment_reads(source)
    assert not environment_reads("def app(environ, start):\n    return environ.get('PATH_INFO')")


def test_blank_signing_secret_is_unset_in_socket_mode():
    """`SLACK_SIGNING_SECRET=` as .env.example ships it means unset: Socket Mode starts."""
    values = {**GOOD, "SLACK_SIGNING_SECRET": ""}
    s = load_settings(**values, SLACK_APP_TOKEN="xapp-1-abc")
    assert s.SLACK_SIGNING_SECRET is None


def test_blank_values_in_env_file_count_as_missing(tmp_path):
    """A .env copied from .env.example and left blank names each blank required setting."""
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=\nHOSTUP_API_KEY=\nAPPROVERS=U0A\n"
        "APPROVAL_CHANNEL=C0A\nSLACK_SIGNING_SECRET=\n"
    )
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "SLACK_BOT_TOKEN: is required but not set" in info.value.problems
    assert "HOSTUP_API_KEY: is required but not set" in info.value.problems


@pytest.mark.parametrize("name", ["HOSTUP_API_URL", "SLACK_API_URL"])
def test_urls_may_not_carry_credentials(name):
    """A URL setting with user:password@ is refused (it would be logged), without echoing it."""
    with pytest.raises(SettingsError) as info:
        load_settings(**{**GOOD, name: "https://svc:hunter2@api.example.com/api"})
    assert any(p.startswith(name) for p in info.value.problems)
    assert "hunter2" not in str(info.value)
