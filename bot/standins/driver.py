"""Play people in a workspace: type the command, fill in the modal, click the buttons.

A ``Driver`` sends what Slack would send to the bot (over HTTP with a signature, or over the
Socket Mode stand-in) and reads what the bot did back from ``FakeSlack``. The end-to-end tests
and the offline sandbox use it, so both exercise the bot exactly as Slack would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.slack import ids
from bot.slack.blocks import PROVIDER_LINE_MARK
from bot.standins import payloads
from bot.standins.slack import FakeSlack

DEFAULT_TIMEOUT = 15.0  # only bounds a failure: every wait returns once its condition holds
REMINDER_MARK = ":bell:"  # what a reminder in a request's thread starts with
BULK_MARK = "Bulk email verification request"  # what a bulk request message's text starts with
# A file_input's limits as Slack documents them: "a 10MB file size limit" (Slack's own copy of
# the element says max_file_size_bytes 10000000) and max_files 1 to 10, 10 when not given.
FILE_INPUT_MAX_BYTES = 10_000_000
FILE_INPUT_MAX_FILES = 10
# Slack's file type for the extensions a list of emails comes in.
FILETYPES = {".txt": "text", ".csv": "csv"}


# ---------------------------------------------------------------------- reading a message


def rendered(message: dict[str, Any]) -> str:
    """A message's (or a view's) blocks as one JSON string, unescaped, to look for text in."""
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def buttons(message: dict[str, Any]) -> list[str]:
    """The action IDs of a message's buttons, in order (none once it is final)."""
    return [
        str(element.get("action_id"))
        for block in message.get("blocks", [])
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    ]


def button_values(message: dict[str, Any], action_id: str) -> list[str]:
    """The values of every ``action_id`` button of a message or a view (a Home tab's)."""
    return [
        str(element["value"])
        for block in message.get("blocks", [])
        for element in block.get("elements", [])
        if isinstance(element, dict) and element.get("action_id") == action_id
    ]


def radio_choice(view: dict[str, Any], value: str) -> dict[str, Any]:
    """The state Slack sends for the form's "What should happen?" with the option of ``value``
    chosen: that option as the form offers it, or (one it does not offer) a made-up one."""
    block: dict[str, Any] = next(
        (b for b in view.get("blocks", []) if b.get("block_id") == ids.OPERATION_BLOCK), {}
    )
    options = (block.get("element") or {}).get("options") or []
    option = next((o for o in options if o.get("value") == value), None)
    chosen = option or {"text": {"type": "plain_text", "text": value}, "value": value}
    return {"type": "radio_buttons", "selected_option": chosen}


def attached_files(
    view: dict[str, Any], files: list[dict[str, Any]], block_id: str | None = None
) -> dict[str, dict[str, Any]]:
    """The state Slack sends for ``files`` attached to the view's file_input (the one in block
    ``block_id``, or its only one), as ``{block_id: {action_id: state}}`` to merge into the
    values given to ``Driver.submit``. Only what a person can do: ValueError when the view has
    no such element, or the files are more than its ``max_files`` or one is over 10 MB (Slack's
    client refuses both; ``filetypes`` is not checked, as Slack says it checks them only "for
    convenience"). ``payloads.file_input_state`` builds any state, for what Slack would not
    send."""
    found = [
        (str(block.get("block_id")), block["element"])
        for block in view.get("blocks", [])
        if block.get("type") == "input"
        and (block.get("element") or {}).get("type") == "file_input"
        and block_id in (None, block.get("block_id"))
    ]
    if len(found) != 1:
        raise ValueError(f"the view has {len(found)} file_input elements to attach to, not 1")
    ((found_block_id, element),) = found
    max_files = int(element.get("max_files", FILE_INPUT_MAX_FILES))
    if len(files) > max_files:
        raise ValueError(f"{len(files)} files attached, but the file_input takes {max_files}")
    too_big = [f["name"] for f in files if int(f.get("size", 0)) > FILE_INPUT_MAX_BYTES]
    if too_big:
        raise ValueError(f"over Slack's 10 MB file limit: {too_big}")
    return {found_block_id: {str(element["action_id"]): payloads.file_input_state(files)}}


def request_id_of(message: dict[str, Any]) -> str:
    """The id of the request behind a request message: its Approve button's value."""
    found = button_values(message, ids.APPROVE_ACTION)
    if not found:
        raise LookupError("no Approve button on the message")
    return found[0]


@dataclass(frozen=True)
class Reply:
    """The bot's immediate answer to one delivery (the HTTP response, or the Socket Mode ack)."""

    status: int
    body: Any  # parsed JSON when it was JSON, else the text ("" for an empty ack)

    @property
    def text(self) -> str:
        """The ephemeral text of a slash command's ack, or ""."""
        return str(self.body.get("text", "")) if isinstance(self.body, dict) else str(self.body)


class Transport(Protocol):
    def command(self, fields: dict[str, str]) -> Reply: ...

    def interactive(self, payload: dict[str, Any]) -> Reply: ...

    def event(self, payload: dict[str, Any]) -> Reply: ...


class HttpTransport:
    """Signed POSTs to the bot's ``/slack/events``, form-encoded as Slack sends them."""

    def __init__(self, url: str, signing_secret: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sender = payloads.SlackRequestSender(url, signing_secret, timeout=timeout)

    @staticmethod
    def _reply(raw: payloads.HttpReply) -> Reply:
        text = raw.text
        try:
            body: Any = json.loads(text) if text else ""
        except json.JSONDecodeError:
            body = text
        return Reply(raw.status, body)

    def command(self, fields: dict[str, str]) -> Reply:
        from urllib.parse import urlencode

        return self._reply(self.sender.post(urlencode(fields).encode()))

    def interactive(self, payload: dict[str, Any]) -> Reply:
        from urllib.parse import urlencode

        return self._reply(self.sender.post(urlencode({"payload": json.dumps(payload)}).encode()))

    def event(self, payload: dict[str, Any]) -> Reply:
        """An Events API request: JSON, as Slack POSTs it."""
        return self._reply(self.sender.post(json.dumps(payload).encode(), "application/json"))


class SocketModeTransport:
    """Envelopes over the Socket Mode stand-in; the reply is the bot's ack."""

    def __init__(self, socket: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket = socket
        self.timeout = timeout

    def _send(self, kind: str, payload: dict[str, Any]) -> Reply:
        envelope_id = self.socket.send_envelope(kind, payload)
        ack = self.socket.wait_for_ack(envelope_id, timeout=self.timeout)
        return Reply(200, ack.get("payload") or "")

    def command(self, fields: dict[str, str]) -> Reply:
        return self._send("slash_commands", fields)

    def interactive(self, payload: dict[str, Any]) -> Reply:
        return self._send("interactive", payload)

    def event(self, payload: dict[str, Any]) -> Reply:
        return self._send("events_api", payload)


@dataclass(frozen=True)
class Delivered:
    """One command or click as delivered: the bot's ack, and the trigger and response_url it
    carried (to find the modal it opened, or the private answer it sent)."""

    reply: Reply
    trigger_id: str
    response_url: str


class Driver:
    """People using the bot through Slack, with FakeSlack as their window on the channel."""

    def __init__(
        self, slack: FakeSlack, transport: Transport, channel: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.slack = slack
        self.transport = transport
        self.channel = channel
        self.timeout = timeout

    # ------------------------------------------------------------------ the request

    def command(self, user: str, text: str, channel_id: str = "C0GENERAL") -> Delivered:
        trigger_id = self.slack.new_trigger_id()
        response_url = self.slack.new_response_url()
        fields = payloads.slash_command_payload(
            text,
            user_id=user,
            trigger_id=trigger_id,
            response_url=response_url,
            command=ids.COMMAND,
            channel_id=channel_id,
        )
        return Delivered(self.transport.command(fields), trigger_id, response_url)

    def modal(self, delivered: Delivered) -> dict[str, Any]:
        """The modal the bot opened for this command or click, as Slack holds it."""
        call = self.slack.wait_for_call(
            "views.open",
            where=lambda p: p.get("trigger_id") == delivered.trigger_id,
            timeout=self.timeout,
        )
        if not call.ok:
            raise RuntimeError(f"views.open failed: {call.answer.get('error')}")
        return dict(call.answer["view"])

    def answer(self, delivered: Delivered) -> str:
        """The private text the bot posted to this delivery's response_url, waiting for it."""
        post = self.slack.wait_for(
            lambda: next(
                (r for r in self.slack.responses if r.url == delivered.response_url), None
            ),
            self.timeout,
            what="private answer (response_url post)",
        )
        body = post.body
        return str(body.get("text", "")) if isinstance(body, dict) else str(body)

    def upload(
        self,
        user: str,
        name: str,
        content: bytes | str,
        *,
        filetype: str | None = None,
        size: int | None = None,
    ) -> dict[str, Any]:
        """``user`` uploads a file into a modal's file_input: FakeSlack holds it (files.info,
        its url_private), and its file object is returned, to pass to ``attached_files``.
        ``filetype``: Slack's file type, by default from the name's extension (.txt ``text``,
        .csv ``csv``); ``size``: what Slack reports, by default the content's length."""
        data = content.encode() if isinstance(content, str) else content
        if filetype is None:
            extension = "." + name.rpartition(".")[2].lower() if "." in name else ""
            if extension not in FILETYPES:
                raise ValueError(f"say the filetype of {name!r} (Slack's name for its type)")
            filetype = FILETYPES[extension]
        return self.slack.add_file(name, data, filetype=filetype, user=user, size=size)

    def submit(self, user: str, view: dict[str, Any], values: dict[str, dict[str, Any]]) -> Reply:
        payload = payloads.view_submission_payload(user_id=user, view=view, values=values)
        return self.transport.interactive(payload)

    def submit_request(
        self,
        user: str,
        view: dict[str, Any],
        email: str | None = None,
        reason: str | None = None,
        *,
        operation: str | None = None,
    ) -> Reply:
        """Submit the request modal; None keeps what the modal was prefilled with (and the
        operation it chose). ``operation``: the value of the choice made in "What should
        happen?" (``confirm``, ``resend``; any other value is sent as given, as a tampered
        form would)."""
        blocks = {b.get("block_id"): b for b in view.get("blocks", [])}
        email_value = (
            email
            if email is not None
            else (blocks[ids.EMAIL_BLOCK]["element"].get("initial_value"))
        )
        reason_value = (
            reason
            if reason is not None
            else (blocks[ids.REASON_BLOCK]["element"].get("initial_value"))
        )
        values: dict[str, dict[str, Any]] = {
            ids.EMAIL_BLOCK: {ids.EMAIL_INPUT: email_value},
            ids.REASON_BLOCK: {ids.REASON_INPUT: reason_value},
        }
        if operation is not None:
            values[ids.OPERATION_BLOCK] = {ids.OPERATION_INPUT: radio_choice(view, operation)}
        return self.submit(user, view, values)

    def posted(self) -> set[str]:
        """The timestamps of the messages in the approval channel now, to tell a new one."""
        return {str(m.get("ts")) for m in self.slack.messages(self.channel)}

    def request_message(
        self, email: str, seen: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The newest request message for ``email`` in the approval channel, waiting for it;
        messages whose timestamps are in ``seen`` (an earlier request for the same email) are
        not it."""

        def find() -> dict[str, Any] | None:
            for message in reversed(self.slack.messages(self.channel)):
                if str(message.get("ts")) in seen:
                    continue
                if email in json.dumps(message.get("blocks", [])):
                    return dict(message)
            return None

        return self.slack.wait_for(find, self.timeout, what=f"request message for {email}")

    def with_provider_line(self, message: dict[str, Any]) -> dict[str, Any]:
        """The request message once it shows the provider's view of the domain (the bot reads
        it after posting, then updates the message), waiting for that update."""

        def shown() -> dict[str, Any] | None:
            current = self.slack.message(self.channel, message["ts"])
            return current if PROVIDER_LINE_MARK in json.dumps(current.get("blocks", [])) else None

        return self.slack.wait_for(shown, self.timeout, what="the provider's view on the request")

    def ask(
        self, user: str, email: str, reason: str = "TICKET-1", *, operation: str | None = None
    ) -> dict[str, Any]:
        """The whole request: command, modal, submit; returns the posted request message.
        ``operation``: what to choose in the form (None: what it offers first, the clear)."""
        seen = self.posted()
        told = self._posted_dms(user, email)
        delivered = self.command(user, email)
        if delivered.reply.status != 200 or delivered.reply.text:
            raise RuntimeError(f"command refused: {delivered.reply}")
        view = self.modal(delivered)
        reply = self.submit_request(user, view, reason=reason, operation=operation)
        if reply.body not in ("", None) and reply.body != {}:
            raise RuntimeError(f"submit refused: {reply.body}")
        message = self.request_message(email, seen)
        # The bot's last steps of a request are its DM to the requester and the update showing
        # the provider's view of the domain; wait for both, so that what a caller does next (a
        # scripted Slack failure, say) meets the approval, not the request.
        message = self.with_provider_line(message)
        self.slack.wait_for(
            lambda: self._posted_dms(user, email) > told or None,
            self.timeout,
            what=f"the 'posted' DM to {user}",
        )
        return message

    def ask_bulk(
        self,
        user: str,
        *,
        pasted: str | None = None,
        files: list[dict[str, Any]] | None = None,
        reason: str = "INC-1 provider mail outage",
        operation: str = "confirm",
    ) -> dict[str, Any]:
        """A bulk request: ``/verify-email bulk``, the form filled in (a ``pasted`` list and/or
        ``files`` from ``upload``), submitted; returns the posted request message. Raises
        RuntimeError with the form's answer when it stays open."""
        seen = self.posted()
        delivered = self.command(user, "bulk")
        if delivered.reply.status != 200 or delivered.reply.text:
            raise RuntimeError(f"command refused: {delivered.reply}")
        view = self.modal(delivered)
        values: dict[str, dict[str, Any]] = {
            ids.BULK_LIST_BLOCK: {ids.BULK_LIST_INPUT: pasted},
            ids.REASON_BLOCK: {ids.REASON_INPUT: reason},
            ids.OPERATION_BLOCK: {ids.OPERATION_INPUT: radio_choice(view, operation)},
        }
        if files:
            values |= attached_files(view, files)
        reply = self.submit(user, view, values)
        if reply.body not in ("", None) and reply.body != {}:
            raise RuntimeError(f"bulk form refused: {reply.body}")

        def find() -> dict[str, Any] | None:
            for message in reversed(self.slack.messages(self.channel)):
                if str(message.get("ts")) not in seen and BULK_MARK in str(message.get("text")):
                    return dict(message)
            return None

        return self.slack.wait_for(find, self.timeout, what="bulk request message")

    def _posted_dms(self, user: str, email: str) -> int:
        """How many "your request was posted" DMs ``user`` has had for ``email``."""
        return sum(
            1
            for m in self.slack.messages(user)
            if "was posted" in m.get("text", "") and email in m.get("text", "")
        )

    # ------------------------------------------------------------------ the decision

    def click(
        self, user: str, message: dict[str, Any], action_id: str, channel: str | None = None
    ) -> Delivered:
        """Click a button of ``message`` (in the approval channel, or in ``channel``: a DM's)."""
        trigger_id = self.slack.new_trigger_id()
        response_url = self.slack.new_response_url()
        payload = payloads.block_actions_payload(
            user_id=user,
            action_id=action_id,
            message=message,
            channel_id=channel or self.channel,
            trigger_id=trigger_id,
            response_url=response_url,
        )
        return Delivered(self.transport.interactive(payload), trigger_id, response_url)

    def approve(self, user: str, message: dict[str, Any]) -> Delivered:
        return self.click(user, message, ids.APPROVE_ACTION)

    def reject(self, user: str, message: dict[str, Any], reason: str = "") -> Reply:
        """Click Reject, then submit the reject modal it opens with ``reason``."""
        clicked = self.click(user, message, ids.REJECT_ACTION)
        view = self.modal(clicked)
        return self.submit(user, view, {ids.REJECT_REASON_BLOCK: {ids.REJECT_REASON_INPUT: reason}})

    # ------------------------------------------------------------------ Workflow Builder

    def run_step(self, inputs: dict[str, Any], *, callback_id: str = "verify_email") -> str:
        """A workflow runs the app's step with ``inputs``: Slack sends ``function_executed``;
        the run's execution id (Fx…), once the bot acknowledged it."""
        event = self.slack.run_function(callback_id, inputs)
        reply = self.transport.event(event)
        if reply.status != 200:
            raise RuntimeError(f"function_executed refused: {reply}")
        return str(event["event"]["function_execution_id"])

    def step_completion(self, execution_id: str) -> Any:
        """What ended the step run (Slack accepted one completion), waiting for it."""
        return self.slack.wait_for(
            lambda: next(iter(self.slack.completions(execution_id)), None),
            self.timeout,
            what=f"step run {execution_id} completed",
        )

    def step_message(self, email: str) -> dict[str, Any]:
        """The request message a step run posted for ``email``, waiting for it."""
        return self.request_message(email)

    def open_home(self, user: str) -> dict[str, Any]:
        """Open the app's Home tab as ``user``; the view the bot publishes for it."""
        published = len(
            [c for c in self.slack.calls_to("views.publish") if c.params.get("user_id") == user]
        )
        reply = self.transport.event(payloads.app_home_opened_payload(user_id=user))
        if reply.status != 200:
            raise RuntimeError(f"app_home_opened refused: {reply}")
        self.slack.wait_for(
            lambda: (
                len(
                    [
                        c
                        for c in self.slack.calls_to("views.publish")
                        if c.params.get("user_id") == user and c.ok
                    ]
                )
                > published
                or None
            ),
            self.timeout,
            what=f"the Home tab published for {user}",
        )
        home = self.slack.home(user)
        assert home is not None
        return home

    def click_home(self, user: str, action_id: str, request_id: str) -> Reply:
        """Click ``action_id`` for ``request_id`` on ``user``'s Home tab (no response_url)."""
        home = self.slack.home(user)
        if home is None:
            raise RuntimeError(f"{user} has no Home tab published")
        payload = payloads.home_block_actions_payload(
            user_id=user,
            action_id=action_id,
            view=home,
            trigger_id=self.slack.new_trigger_id(),
            value=request_id,
        )
        return self.transport.interactive(payload)

    def final_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """The request message once it has left pending and executing (no buttons, final state)."""

        def find() -> dict[str, Any] | None:
            current = self.slack.message(self.channel, message["ts"])
            rendered = json.dumps(current.get("blocks", []))
            if "state: pending" in rendered or "state: executing" in rendered:
                return None
            return current

        return self.slack.wait_for(find, self.timeout, what="final request message")

    # ------------------------------------------------------------------ reading it back

    def current(self, message: dict[str, Any]) -> dict[str, Any]:
        """The request message as the channel shows it now (after the bot's updates)."""
        return self.slack.message(self.channel, message["ts"])

    def dm_texts(self, user: str) -> list[str]:
        """The texts of the bot's DMs to ``user``, oldest first."""
        return [str(m.get("text", "")) for m in self.slack.messages(user)]

    def dm_with(self, user: str, containing: str) -> dict[str, Any]:
        """The first DM to ``user`` whose text contains ``containing``, waiting for it."""
        return self._first_dm(user, lambda m: containing in str(m.get("text", "")), containing)

    def dm_with_button(self, user: str, action_id: str) -> dict[str, Any]:
        """The first DM to ``user`` with an ``action_id`` button (Cancel), waiting for it."""
        return self._first_dm(user, lambda m: action_id in buttons(m), action_id)

    def _first_dm(
        self, user: str, wanted: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        return self.slack.wait_for(
            lambda: next((m for m in self.slack.messages(user) if wanted(m)), None),
            self.timeout,
            what=f"DM to {user} with {what!r}",
        )

    def cancel(self, user: str, message: dict[str, Any]) -> Delivered:
        """``user`` clicks Cancel request on the request message (the requester's button)."""
        return self.click(user, message, ids.CANCEL_ACTION)

    def reminders(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The reminders posted in the request message's thread so far."""
        return [m for m in self.thread(message) if REMINDER_MARK in str(m.get("text", ""))]

    def thread(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        return self.slack.messages(self.channel, message["ts"])

    def wait_thread_reply(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.slack.wait_for(
            lambda: next(iter(self.thread(message)), None),
            self.timeout,
            what="thread reply",
        )
