"""The Slack app manifest for the bot, built in one place.

``build_manifest`` is the single source of the manifest. The files in ``manifests/`` at the
repository's top level are its output for a placeholder URL (HTTP mode) and for Socket Mode;
a test asserts they equal ``reference_manifests()`` rendered, so they can never drift from
this module. Everything here is pure: no file, network or environment access.

Choices, each pinned by a test:

* ``_metadata.major_version`` is 1: the bot uses no version-2-only features (functions,
  workflows, external auth providers), and the manifest validates against both schemas.
* Bot scopes are exactly what the Web API calls need (see ``BOT_SCOPES``); the history scopes
  only for finding a request message whose posting answer was lost (``OPTIONAL_SCOPES``: the
  bot runs without them, and reads no channel but APPROVAL_CHANNEL); ``files:read`` only for
  a list of emails attached to the bulk form (Block Kit's ``file_input`` needs it; without it
  the list can still be pasted). Posting to a user ID with ``chat.postMessage`` lands in the
  App Home Messages tab and needs only ``chat:write``, so ``im:write`` is not requested; the
  Messages tab must be enabled or Slack answers ``messages_tab_disabled``.
* ``should_escape`` is false: the command takes an email address and free text, no user or
  channel mentions, so escaping (which exists to turn mentions into stable IDs) buys nothing
  and would wrap the address as ``<mailto:…|…>``. The parser accepts both forms anyway.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from bot.slack import ids
from bot.slack.step import INPUTS, OUTPUTS, STEP_CALLBACK_ID, STEP_DESCRIPTION, STEP_TITLE

# Where ``python -m bot`` serves Slack's commands and interactivity (HTTP mode).
EVENTS_PATH = "/slack/events"
# The base URL of the shipped HTTP-mode manifest; replace it with the real host.
PLACEHOLDER_URL = "https://bot.example.com"

APP_NAME = "Verify Email"
# Slack documents bot display names as limited to a-z, 0-9, "-", "_" and ".".
BOT_DISPLAY_NAME = "verify-email"
APP_DESCRIPTION = (
    "Clear a customer's stuck email verification at the provider, once a second person approves."
)
COMMAND_DESCRIPTION = "Ask to clear a stuck email verification (an approver must agree)"
COMMAND_USAGE_HINT = "[email] [reason] | bulk | status [email] | help"

# Every bot scope, with the Web API method that needs it. Nothing else is requested.
BOT_SCOPES: dict[str, str] = {
    "commands": "the /verify-email slash command",
    "chat:write": (
        "chat.postMessage (request, thread replies, DM to a user ID in App Home), "
        "chat.update, chat.postEphemeral"
    ),
    "usergroups:read": "usergroups.users.list, to expand S… group IDs in APPROVERS/REQUESTERS",
    "users:read": (
        "users.info, so * and user groups admit only full members (no guests, deactivated "
        "accounts, bots or other organisations' users)"
    ),
    "channels:read": "conversations.info on a public APPROVAL_CHANNEL (is the bot a member?)",
    "groups:read": "conversations.info on a private APPROVAL_CHANNEL",
    # Not needed to run: without it a request message whose posting answer Slack lost may be
    # posted a second time (the first copy keeping stale buttons); ``check`` says so.
    "channels:history": (
        "conversations.history on a public APPROVAL_CHANNEL, to find a request message Slack "
        "posted but whose answer was lost (by its message metadata) and update it, not post twice"
    ),
    "groups:history": "conversations.history on a private APPROVAL_CHANNEL, for the same",
    # Not needed to run: the bulk form's Block Kit file_input needs it (Slack documents it so),
    # and so do files.info and downloading the attached file's url_private with the bot token.
    # Without it a list of emails can still be pasted into the form; ``check`` says so.
    "files:read": (
        "the bulk form's file_input, files.info and the download of an attached .txt/.csv "
        "list of emails (its url_private, with the bot token)"
    ),
}
# The bot scopes the bot works without, each with what it loses without it (``check`` warns).
OPTIONAL_SCOPES: dict[str, str] = {
    "channels:history": "a public",
    "groups:history": "a private",
    "files:read": "attaching a list of emails to the bulk form (pasting one still works)",
}

# File name in manifests/ -> the arguments that produce it.
REFERENCE_FILES: dict[str, tuple[str | None, bool]] = {
    "http.json": (PLACEHOLDER_URL, False),
    "socket-mode.json": (None, True),
}

_LOOSE_SUFFIXES = ("", "/", EVENTS_PATH, EVENTS_PATH + "/")


def request_url(url: str) -> str:
    """The Slack request URL for a public base URL: ``https://host[:port]/slack/events``.

    Accepts the base (``https://bot.example.com``, with or without a trailing slash) or the
    full request URL. Raises ValueError for anything else: not https, no host, credentials,
    a query or fragment, or a path other than ``/slack/events``.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("the URL is empty; give the bot's public https base URL")
    if url != url.strip() or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ValueError(f"the URL contains whitespace or control characters: {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError(f"Slack needs an https URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"the URL has no host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry credentials")
    try:
        _ = parts.port  # reading it validates it
    except ValueError as exc:
        raise ValueError(f"the URL has an invalid port: {url!r}") from exc
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"the URL must not have a query or fragment: {url!r}")
    if parts.path not in _LOOSE_SUFFIXES:
        raise ValueError(
            f"the URL's path must be empty or {EVENTS_PATH!r} (the bot serves only there), "
            f"got {parts.path!r}"
        )
    return f"https://{parts.netloc}{EVENTS_PATH}"


# Events the bot subscribes to: the Home tab being opened, and its Workflow Builder step being
# run (Slack sends that one for the functions an app declares; listing it is what its manifest
# reference shows).
BOT_EVENTS = ("app_home_opened", "function_executed")


def build_manifest(url: str | None, socket_mode: bool) -> dict[str, Any]:
    """The app manifest for HTTP mode (``url`` is the public base URL) or Socket Mode.

    Socket Mode takes no URL: Slack delivers commands and interactivity over the socket.
    HTTP mode needs one, and both the slash command and interactivity point at
    ``<url>/slack/events``. Raises ValueError for a bad or misplaced URL.
    """
    if socket_mode and url is not None:
        raise ValueError("a Socket Mode manifest has no request URL; pass url=None")
    if not socket_mode and url is None:
        raise ValueError("an HTTP-mode manifest needs the bot's public https URL")
    target = None if url is None else request_url(url)

    # Key order follows Slack's own manifest export, so the files diff cleanly against it.
    command: dict[str, Any] = {"command": ids.COMMAND}
    interactivity: dict[str, Any] = {"is_enabled": True}
    # The Home tab is published when someone opens it (Events API: app_home_opened).
    events: dict[str, Any] = {}
    if target is not None:
        command["url"] = target
        interactivity["request_url"] = target
        events["request_url"] = target
    events["bot_events"] = list(BOT_EVENTS)
    command |= {
        "description": COMMAND_DESCRIPTION,
        "usage_hint": COMMAND_USAGE_HINT,
        "should_escape": False,
    }

    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {"name": APP_NAME, "description": APP_DESCRIPTION},
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": BOT_DISPLAY_NAME},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            # Custom steps need an org-ready app (installed at the org level and given access
            # to a workspace) whose functions run remotely: in this bot.
            "org_deploy_enabled": True,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
            "function_runtime": "remote",
        },
        # The Workflow Builder step (manifest v1: each parameter by name, with is_required).
        "functions": {
            STEP_CALLBACK_ID: {
                "title": STEP_TITLE,
                "description": STEP_DESCRIPTION,
                "input_parameters": {name: dict(p) for name, p in INPUTS.items()},
                "output_parameters": {name: dict(p) for name, p in OUTPUTS.items()},
            }
        },
    }


def reference_manifests() -> dict[str, dict[str, Any]]:
    """What each file in ``manifests/`` must contain, by file name."""
    return {name: build_manifest(*args) for name, args in REFERENCE_FILES.items()}


def render(manifest: dict[str, Any]) -> str:
    """The manifest as JSON text (indent 2, key order kept, trailing newline)."""
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
