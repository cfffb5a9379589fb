"""Requests shaped as Slack sends them to an app, and a way to send them signed.

Each builder comes in two forms:

* `*_payload(...) -> dict`: the JSON object, as carried by a Socket Mode envelope (a slash
  command's form fields become a JSON object of strings there);
* the plain name, `slash_command(...)` etc. `-> bytes`: the form-encoded HTTP body Slack POSTs
  to the Request URL (`payload=<json>` for interactions).

Events (`app_home_opened_payload`, `function_executed_payload`) are one JSON object either
way: the HTTP body (Content-Type application/json) and a Socket Mode `events_api` envelope's
payload; `function_executed(...)` is that body already encoded.

`sign()` adds Slack's v0 signature headers and `post_signed()` / `SlackRequestSender` POST a
body to the bot's `/slack/events` the way Slack does.

A little over 500 lines: every shape Slack sends is kept in this one module, so that a change of
one is made, and reviewed, in one place.
"""

from __future__ import annotations

import copy
import inspect
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, ParamSpec
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

FORM = "application/x-www-form-urlencoded"
# Slack's deprecated per-app verification token; Bolt does not check it.
VERIFICATION_TOKEN = "fake-verification-token"  # noqa: S105 - a stand-in value, not a secret
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"

P = ParamSpec("P")

# A value in view_submission's `values`: the element state dict Slack sends, or a str / None
# as a shorthand for a plain_text_input's value.
StateValue = Mapping[str, Any] | str | None


class HttpReply(NamedTuple):
    """What the app answered: unpacks as `(status, headers, body)`."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8")


def sign(body: bytes, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The `X-Slack-Request-Timestamp` and `X-Slack-Signature` (v0) headers for `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    if signature is None:  # only when the timestamp is missing, which it never is here
        raise ValueError("no signature")
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def post_signed(
    url: str,
    body: bytes,
    signing_secret: str,
    content_type: str = FORM,
    *,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> HttpReply:
    """POST `body` to `url` signed as Slack signs it; returns whatever the app answered."""
    headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
    headers.update(sign(body, signing_secret, timestamp))
    # trust_env=False: these requests go to loopback and must never go through a proxy.
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        response = client.post(url, content=body, headers=headers)
    return HttpReply(response.status_code, dict(response.headers), response.content)


class SlackRequestSender:
    """Slack's side of the Request URL: signs and POSTs bodies to one app URL."""

    def __init__(self, url: str, signing_secret: str, *, timeout: float = 10.0) -> None:
        """`url` is the app's Request URL, e.g. `http://127.0.0.1:PORT/slack/events`."""
        self.url = url
        self.signing_secret = signing_secret
        self.timeout = timeout

    def post(self, body: bytes, content_type: str = FORM) -> HttpReply:
        """POST a body built by this module (or any other), signed."""
        return post_signed(self.url, body, self.signing_secret, content_type, timeout=self.timeout)


def new_trigger_id() -> str:
    """A trigger id shaped as Slack's; no FakeSlack knows it (use FakeSlack.new_trigger_id)."""
    return f"{int(time.time() * 1000)}.0.{secrets.token_hex(16)}"


def _now_ts() -> str:
    return f"{time.time():.6f}"


def _user(user_id: str, team_id: str, user_name: str | None) -> dict[str, str]:
    name = user_name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _form(payload: Mapping[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


# --------------------------------------------------------------------- slash command


def slash_command_payload(
    text: str,
    *,
    user_id: str,
    trigger_id: str,
    response_url: str,
    command: str = "/verify-email",
    channel_id: str = "C1",
    channel_name: str = "general",
    user_name: str | None = None,
    team_id: str = "T1",
    team_domain: str = "sandbox",
    api_app_id: str = "A1",
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, str]:
    """A slash command's fields, in Slack's order, all strings (as in a Socket Mode envelope)."""
    fields = {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
    }
    if enterprise_id is not None:
        fields["enterprise_id"] = enterprise_id
        fields["enterprise_name"] = enterprise_name or enterprise_id
    fields.update(
        {
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name or user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )
    return fields


# --------------------------------------------------------------------- events


def app_home_opened_payload(
    *, user_id: str, tab: str = "home", team_id: str = "T1", api_app_id: str = "A1"
) -> dict[str, Any]:
    """The Events API envelope Slack sends when someone opens the app's Home (or Messages) tab."""
    now = time.time()
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id[1:],
            "tab": tab,
            "event_ts": f"{now:.6f}",
        },
        "type": "event_callback",
        "event_id": f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(now),
        "authorizations": [
            {"team_id": team_id, "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }


def function_executed_payload(
    *,
    callback_id: str,
    inputs: Mapping[str, Any],
    function_execution_id: str,
    workflow_execution_id: str,
    bot_access_token: str,
    title: str | None = None,
    description: str = "",
    input_parameters: Iterable[Mapping[str, Any]] = (),
    output_parameters: Iterable[Mapping[str, Any]] = (),
    function_id: str | None = None,
    team_id: str = "T1",
    api_app_id: str = "A1",
    bot_user_id: str = "UBOT",
    enterprise_id: str | None = None,
) -> dict[str, Any]:
    """The Events API envelope Slack sends when a workflow runs the app's custom step
    `callback_id` (https://docs.slack.dev/reference/events/function_executed/).

    `input_parameters` / `output_parameters` are the step's parameters as the event lists
    them: each a dict with `name`, `type`, `title`, `description`, `is_required`. The event
    names no workflow and no user; `bot_access_token` is the run's own token. An org-level
    install (custom steps need one) adds `enterprise_id`: pass it to have it.
    """
    now = time.time()
    authorization: dict[str, Any] = {
        "enterprise_id": enterprise_id,
        "team_id": team_id,
        "user_id": bot_user_id,
        "is_bot": True,
        "is_enterprise_install": enterprise_id is not None,
    }
    envelope: dict[str, Any] = {"token": VERIFICATION_TOKEN}
    if enterprise_id is not None:
        envelope["enterprise_id"] = enterprise_id
    envelope |= {
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": {
            "type": "function_executed",
            "function": {
                "id": function_id or f"Fn{secrets.token_hex(5).upper()}",
                "callback_id": callback_id,
                "title": title or callback_id,
                "description": description,
                "type": "app",
                "input_parameters": [dict(p) for p in input_parameters],
                "output_parameters": [dict(p) for p in output_parameters],
                "app_id": api_app_id,
                "date_created": int(now),
                "date_updated": int(now),
                "date_deleted": 0,
            },
            "inputs": copy.deepcopy(dict(inputs)),
            "function_execution_id": function_execution_id,
            "workflow_execution_id": workflow_execution_id,
            "event_ts": f"{now:.6f}",
            "bot_access_token": bot_access_token,
        },
        "type": "event_callback",
        "event_id": f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(now),
        "authorizations": [authorization],
        "is_ext_shared_channel": False,
    }
    return envelope


def home_block_actions_payload(
    *,
    user_id: str,
    action_id: str,
    view: Mapping[str, Any],
    trigger_id: str,
    value: str,
    team_id: str = "T1",
    api_app_id: str = "A1",
) -> dict[str, Any]:
    """A click on a button of a published Home view: Slack sends the view, no message, no
    channel and no response_url."""
    block_id, element = next(
        (str(b.get("block_id", "")), e)
        for b in view.get("blocks") or []
        for e in (b.get("elements") or [])
        if isinstance(e, dict) and e.get("action_id") == action_id and e.get("value") == value
    )
    return {
        "type": "block_actions",
        "user": _user(user_id, team_id, None),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view.get("id")},
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "sandbox"},
        "is_enterprise_install": False,
        "view": dict(view),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": element.get("text"),
                "value": value,
                "action_ts": _now_ts(),
            }
        ],
    }


# --------------------------------------------------------------------- block_actions


def _find_element(
    message: Mapping[str, Any], action_id: str, block_id: str | None
) -> tuple[str, dict[str, Any]]:
    """The (block_id, element) of the interactive element `action_id` in `message`."""
    for block in message.get("blocks") or []:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        elements = list(block.get("elements") or [])
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    raise ValueError(f"the message has no element with action_id {action_id!r}")


def block_actions_payload(
    *,
    user_id: str,
    action_id: str,
    message: Mapping[str, Any],
    channel_id: str,
    trigger_id: str,
    response_url: str,
    value: str | None = None,
    block_id: str | None = None,
    channel_name: str = "approvals",
    user_name: str | None = None,
    team_id: str = "T1",
    team_domain: str = "sandbox",
    api_app_id: str = "A1",
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """A click on the button `action_id` of `message` (a message as Slack holds it: ts, blocks).

    The button must be in the message, as only a button a person sees can be clicked; its
    block_id, text, style and value come from there unless `block_id` / `value` are given.
    """
    found_block_id, element = _find_element(message, action_id, block_id)
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": found_block_id,
        "text": element.get("text"),
        "value": value if value is not None else element.get("value"),
        "type": element.get("type", "button"),
        "action_ts": _now_ts(),
    }
    if "style" in element:
        action["style"] = element["style"]
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": channel_id,
        "is_ephemeral": False,
    }
    if message.get("thread_ts", message["ts"]) != message["ts"]:
        container["thread_ts"] = message["thread_ts"]
    return {
        "type": "block_actions",
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": token,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": dict(message),
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


# ------------------------------------------------------------------- view_submission


def _state_values(
    view: Mapping[str, Any], values: Mapping[str, Mapping[str, StateValue]]
) -> dict[str, dict[str, Any]]:
    """Slack's `view.state.values`: every plain_text_input (empty ones as null) and radio group
    (its initial option chosen, else null), then `values`."""
    state: dict[str, dict[str, Any]] = {}
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if block.get("type") == "input" and element.get("type") == "plain_text_input":
            state.setdefault(str(block.get("block_id")), {})[element["action_id"]] = {
                "type": "plain_text_input",
                "value": None,
            }
        if block.get("type") == "input" and element.get("type") == "radio_buttons":
            state.setdefault(str(block.get("block_id")), {})[element["action_id"]] = {
                "type": "radio_buttons",
                "selected_option": copy.deepcopy(element.get("initial_option")),
            }
    for block_id, actions in values.items():
        for action_id, given in actions.items():
            if given is None or isinstance(given, str):
                given = {"type": "plain_text_input", "value": given}
            state.setdefault(block_id, {})[action_id] = dict(given)
    return state


def file_input_state(files: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A file_input element's state in view_submission's `view.state.values`, as Slack sends
    it: `{"type": "file_input", "files": [...]}`, each file the whole file object (id, name,
    title, filetype, mimetype, size, url_private, url_private_download, user, ...: what
    `FakeSlack.add_file` returns and files.info answers). Slack's client enforces the element's
    `max_files` and its 10 MB limit; this does not, so a test can send what Slack would not."""
    return {"type": "file_input", "files": [copy.deepcopy(dict(f)) for f in files]}


def view_submission_payload(
    *,
    user_id: str,
    view: Mapping[str, Any],
    values: Mapping[str, Mapping[str, StateValue]],
    trigger_id: str | None = None,
    user_name: str | None = None,
    team_id: str = "T1",
    team_domain: str = "sandbox",
    api_app_id: str = "A1",
    bot_id: str = "BBOT",
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """A modal submitted by `user_id`.

    `view` is the view as the bot sent it to views.open, or as FakeSlack holds it (then its id
    and hash are kept). `values[block_id][action_id]` is the element's state, e.g.
    `{"type": "plain_text_input", "value": "..."}`; a str or None is short for that; a
    file_input's is `file_input_state(files)`. A file_input given no state is left out: what
    Slack sends for one left empty is not documented.
    """
    view_id = str(view.get("id") or f"V{secrets.token_hex(5).upper()}")
    submitted = {
        "id": view_id,
        "team_id": team_id,
        "type": view.get("type", "modal"),
        "blocks": list(view.get("blocks") or []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": _state_values(view, values)},
        "hash": view.get("hash") or f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": view.get("title"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": view.get("previous_view_id"),
        "root_view_id": view.get("root_view_id") or view_id,
        "app_id": api_app_id,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


# ------------------------------------------------------------------- wire encodings


def _encoded(
    build: Callable[P, Mapping[str, Any]],
    encode: Callable[[Mapping[str, Any]], bytes],
    name: str,
    doc: str,
) -> Callable[P, bytes]:
    """`build` with the same parameters, returning the encoded body instead of the object."""

    def encoded(*args: P.args, **kwargs: P.kwargs) -> bytes:
        return encode(build(*args, **kwargs))

    encoded.__name__ = encoded.__qualname__ = name
    encoded.__doc__ = doc
    signature = inspect.signature(build).replace(return_annotation="bytes")
    encoded.__signature__ = signature  # type: ignore[attr-defined]  # for help() and IDEs
    return encoded


slash_command = _encoded(
    slash_command_payload,
    lambda fields: urlencode(fields).encode(),
    "slash_command",
    "The form-encoded body Slack POSTs for `/command text` (see slash_command_payload).",
)
block_actions = _encoded(
    block_actions_payload,
    _form,
    "block_actions",
    "The body (`payload=<json>`) Slack POSTs for a button click (see block_actions_payload).",
)
function_executed = _encoded(
    function_executed_payload,
    lambda payload: json.dumps(payload).encode(),
    "function_executed",
    "The JSON body Slack POSTs (Content-Type application/json) when a workflow runs a custom "
    "step (see function_executed_payload).",
)
view_submission = _encoded(
    view_submission_payload,
    _form,
    "view_submission",
    "The body (`payload=<json>`) Slack POSTs when a modal is submitted "
    "(see view_submission_payload).",
)
