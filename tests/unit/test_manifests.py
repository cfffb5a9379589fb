"""The Slack app manifests in manifests/: valid for Slack, scoped tightly, never stale."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from bot.slack import ids
from bot.slack.manifest import (
    BOT_SCOPES,
    EVENTS_PATH,
    OPTIONAL_SCOPES,
    PLACEHOLDER_URL,
    REFERENCE_FILES,
    build_manifest,
    reference_manifests,
    render,
    request_url,
)

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
# Slack's own schemas, kept in the repository as test data (see tests/data/slack/README.md).
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "slack"
SCHEMA_VERSIONS = (1, 2)

EXPECTED_BOT_SCOPES = {
    "commands",
    "chat:write",
    "usergroups:read",
    "users:read",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
    "files:read",
}
REGENERATE = (
    "manifests/ is generated from bot/slack/manifest.py; regenerate it with:\n"
    '  .venv/bin/python -c "from pathlib import Path; from bot.slack.manifest import '
    "reference_manifests, render; [Path('manifests', n).write_text(render(m)) "
    'for n, m in reference_manifests().items()]"'
)


def _validator(major_version: int) -> Draft7Validator:
    path = SCHEMA_DIR / f"manifest.schema.{major_version}.0.0.json"
    if not path.is_file():
        pytest.fail(
            f"Slack's manifest schema is missing: {path} (see tests/data/slack/README.md).",
            pytrace=False,
        )
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def validators() -> dict[int, Draft7Validator]:
    return {version: _validator(version) for version in SCHEMA_VERSIONS}


def _load(name: str) -> dict[str, Any]:
    path = MANIFESTS / name
    assert path.is_file(), f"{path} is missing. {REGENERATE}"
    return json.loads(path.read_text(encoding="utf-8"))


def _errors(validator: Draft7Validator, manifest: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]


def _command(manifest: dict[str, Any]) -> dict[str, Any]:
    (command,) = manifest["features"]["slash_commands"]
    return command


def test_manifest_folder_holds_exactly_the_reference_files() -> None:
    """manifests/ ships one HTTP-mode and one Socket Mode manifest, and nothing stale."""
    assert sorted(p.name for p in MANIFESTS.glob("*.json")) == sorted(REFERENCE_FILES)


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_files_equal_build_manifest_output(name: str) -> None:
    """Each file is exactly render(build_manifest(...)), so the files cannot drift from code."""
    expected = reference_manifests()[name]
    assert _load(name) == expected, REGENERATE
    assert (MANIFESTS / name).read_text(encoding="utf-8") == render(expected), REGENERATE


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_file_validates_against_slack_schema(
    name: str, version: int, validators: dict[int, Draft7Validator]
) -> None:
    """Each file is valid under Slack's schema v1 (its major_version) and, but for its
    ``functions`` (whose parameters v1 declares by name, v2 as properties and a required
    list), under v2: no v2-only keys."""
    manifest = _load(name)
    if version != manifest["_metadata"]["major_version"]:
        manifest = {k: v for k, v in manifest.items() if k != "functions"}
    assert _errors(validators[version], manifest) == []


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_file_targets_schema_major_version_1(name: str) -> None:
    """The manifests declare major_version 1, so Slack reads them with the v1 schema."""
    assert _load(name)["_metadata"]["major_version"] == 1


def test_schema_rejects_an_invalid_manifest(validators: dict[int, Draft7Validator]) -> None:
    """The schema check can fail: a manifest without display_information.name is rejected."""
    broken = copy.deepcopy(_load("http.json"))
    del broken["display_information"]["name"]
    for validator in validators.values():
        errors = _errors(validator, broken)
        assert errors, "the validator accepted a manifest with no app name"
        assert any("'name' is a required property" in e for e in errors), errors


def test_schema_rejects_an_unknown_top_level_key(validators: dict[int, Draft7Validator]) -> None:
    """A typo at the top level (v1 forbids unknown keys) is caught, not silently ignored."""
    broken = copy.deepcopy(_load("socket-mode.json")) | {"setting": {}}
    assert _errors(validators[1], broken)


def test_http_manifest_points_everything_at_slack_events() -> None:
    """HTTP mode: the command, interactivity and events all use the placeholder
    .../slack/events."""
    manifest = _load("http.json")
    url = PLACEHOLDER_URL + EVENTS_PATH
    assert _command(manifest)["url"] == url
    assert manifest["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert manifest["settings"]["event_subscriptions"] == {
        "request_url": url,
        "bot_events": ["app_home_opened", "function_executed"],
    }
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert url.endswith("/slack/events")


def test_socket_mode_manifest_has_no_urls() -> None:
    """Socket Mode: socket_mode_enabled, interactivity on, and no request URL anywhere."""
    manifest = _load("socket-mode.json")
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert manifest["settings"]["event_subscriptions"] == {
        "bot_events": ["app_home_opened", "function_executed"]
    }
    assert "url" not in _command(manifest)
    assert "://" not in json.dumps(manifest)


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_slash_command_is_verify_email(name: str) -> None:
    """The one slash command is /verify-email (the listener's constant), unescaped; its usage
    hint names what the command understands: an address and reason, status, help."""
    command = _command(_load(name))
    assert command["command"] == ids.COMMAND == "/verify-email"
    assert command["usage_hint"] == "[email] [reason] | bulk | status [email] | help"
    assert command["should_escape"] is False
    assert command["description"]


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_bot_scopes_are_exactly_the_needed_set(name: str) -> None:
    """Bot scopes are exactly what the bot calls need: no im:write, no user scopes."""
    manifest = _load(name)
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert set(scopes["bot"]) == EXPECTED_BOT_SCOPES


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_app_home_has_the_home_tab_and_a_read_only_messages_tab(name: str) -> None:
    """The Home tab shows each person their queue; requesters get DMs in the Messages tab
    (on, else messages_tab_disabled), read-only."""
    features = _load(name)["features"]
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": True,
    }
    assert features["bot_user"]["display_name"]
    assert _load(name)["display_information"]["name"] == "Verify Email"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bot.example.com", "https://bot.example.com/slack/events"),
        ("https://bot.example.com/", "https://bot.example.com/slack/events"),
        ("https://bot.example.com/slack/events", "https://bot.example.com/slack/events"),
        ("https://bot.example.com/slack/events/", "https://bot.example.com/slack/events"),
        ("https://bot.example.com:8443", "https://bot.example.com:8443/slack/events"),
        ("HTTPS://bot.example.com", "https://bot.example.com/slack/events"),
    ],
)
def test_request_url_normalises_a_base_url(url: str, expected: str) -> None:
    """A base URL, with or without a trailing slash or /slack/events, ends in /slack/events."""
    assert request_url(url) == expected
    manifest = build_manifest(url, False)
    assert _command(manifest)["url"] == expected
    assert manifest["settings"]["interactivity"]["request_url"] == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "bot.example.com",
        "http://bot.example.com",
        "http://127.0.0.1:3000",
        "ftp://bot.example.com",
        "https://",
        "https:///slack/events",
        "https://bot.example.com/other",
        "https://bot.example.com/slack/events/extra",
        "https://bot.example.com/prefix/slack/events",
        "https://bot.example.com?x=1",
        "https://bot.example.com/#top",
        "https://bot.example.com?",
        "https://user:secret@bot.example.com",
        "https://bot.example.com:99999",
        " https://bot.example.com",
        "https://bot.example.com\n",
        "https://bot.exa mple.com",
    ],
)
def test_build_manifest_rejects_bad_urls(url: str) -> None:
    """Anything but an https base URL (no credentials, query, fragment or other path) is refused."""
    with pytest.raises(ValueError):
        build_manifest(url, False)


def test_build_manifest_refuses_mismatched_mode_and_url() -> None:
    """HTTP mode needs a URL; Socket Mode refuses one rather than silently dropping it."""
    with pytest.raises(ValueError, match="needs"):
        build_manifest(None, False)
    with pytest.raises(ValueError, match="Socket Mode"):
        build_manifest(PLACEHOLDER_URL, True)


def test_built_manifest_for_a_real_host_validates(validators: dict[int, Draft7Validator]) -> None:
    """A manifest built for another host is schema-valid too, not only the shipped placeholder."""
    manifest = build_manifest("https://verify.support.example.org:8443/", False)
    assert _errors(validators[1], manifest) == []
    assert json.loads(render(manifest)) == manifest


def test_build_manifest_returns_independent_copies() -> None:
    """Callers may edit the returned dict without changing the next one built."""
    first = build_manifest(None, True)
    first["oauth_config"]["scopes"]["bot"].append("im:write")
    assert "im:write" not in build_manifest(None, True)["oauth_config"]["scopes"]["bot"]


def test_every_optional_scope_is_requested_and_files_read_is_optional() -> None:
    """The scopes the bot runs without (check warns when one is missing) are all requested;
    files:read is one: Block Kit's file_input on the bulk form needs it, and a pasted list of
    emails works without it."""
    requested = set(build_manifest(None, True)["oauth_config"]["scopes"]["bot"])
    assert set(OPTIONAL_SCOPES) <= requested
    assert "files:read" in OPTIONAL_SCOPES and "files:read" in requested
    assert "file_input" in BOT_SCOPES["files:read"]


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_the_workflow_step_is_declared_with_its_inputs_and_outputs(name: str) -> None:
    """The Workflow Builder step (issue 22): an org-ready app whose function runs remotely,
    subscribed to function_executed; its required inputs and outputs as the issue names them."""
    manifest = _load(name)
    settings = manifest["settings"]
    assert settings["org_deploy_enabled"] is True and settings["function_runtime"] == "remote"
    assert "function_executed" in settings["event_subscriptions"]["bot_events"]
    step = manifest["functions"]["verify_email"]
    assert step["title"] == "Verify email with approval"
    inputs = step["input_parameters"]
    assert {n for n, p in inputs.items() if p["is_required"]} == {"email", "reason", "requested_by"}
    assert inputs["requested_by"]["type"] == "slack#/types/user_id"
    assert inputs["operation"]["is_required"] is False
    outputs = step["output_parameters"]
    assert {
        "state",
        "decided_by",
        "cleared_domains",
        "clients_notified",
        "provider_request_id",
        "request_link",
    } <= set(outputs)
    assert outputs["decided_by"]["type"] == "slack#/types/user_id"
