"""How every button click and form submission is answered, so each handler is its decision.

``bot.slack.app.ROUTES`` wraps each button handler in :func:`button` and each form handler in
:func:`form`; the handler gets a :class:`Click` or a :class:`Submission` and only decides.

- :func:`button` acks at once, reads the request id the button carries (a tampered one is
  answered without the service), calls the handler, and says a :class:`Refused` privately:
  through the click's response_url, or, from the Home tab (which has none), by DM.
- :func:`form` reads the request id from the modal's metadata (a field error when it names
  none) and calls the handler. A Refused raised before the handler acked (its read-only checks)
  keeps the form open with the refusal as a field error; one raised after it is said by DM.
  The handler acks (``Submission.ack``) before anything that may wait on Slack (a role check);
  if it does not, the wrapper acks once it returns.

Refusals are worded by ``bot.slack.blocks.refusal_text`` and ``refusal_words``; an open request
elsewhere (Refusal.OPEN_REQUEST) gets its permalink here, and on a form a DM with it too (a
field error cannot hold a link).

Why wrappers and not Bolt's listener middleware: a listener middleware's ``next`` only marks the
request to go on; Bolt runs the listener after the whole chain has returned (on the listener
pool), so no middleware sees what a listener raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext, Respond

from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks
from bot.slack.deps import SlackDeps, deps_of
from bot.slack.errors import CALL_ERRORS, classify
from bot.slack.listeners.parsing import (
    input_value,
    request_id_from_metadata,
    request_id_of,
    user_of,
)
from bot.slack.notifier import DeliveryError

log = logging.getLogger(__name__)

# What Bolt calls: it passes the arguments a handler names (ack, body, action, view, …).
Handler = Callable[..., None]


def link_of(deps: SlackDeps, refused: Refused) -> str | None:
    """The permalink of the request a refusal points to (an open request elsewhere), if any."""
    if refused.code is Refusal.OPEN_REQUEST and refused.request is not None:
        return deps.notifier.permalink(refused.request)
    return None


def try_dm(deps: SlackDeps, user_id: str, text: str) -> None:
    """A courtesy DM outside any request's outbox (nothing is lost if it fails)."""
    try:
        deps.notifier.dm(user_id, text)
    except DeliveryError as exc:
        log.warning("%s", exc)


class Answer:
    """Private answers to the person who clicked: through the click's response_url, or, for a
    click on the Home tab (which carries none), as a DM from the app."""

    def __init__(self, deps: SlackDeps, respond: Respond | None, body: dict[str, Any]) -> None:
        self.deps = deps
        self.respond = respond if body.get("response_url") else None
        self.user = user_of(body)

    def tell(self, text: str) -> None:
        """A private answer, leaving the message clicked in alone."""
        if self.respond is not None:
            self.respond(text=text, response_type="ephemeral", replace_original=False)
            return
        try:
            self.deps.notifier.dm(self.user, text)
        except DeliveryError as exc:
            log.warning("Could not answer %s privately: %s", self.user, exc)

    def replace(self, text: str, message_blocks: blocks.Blocks | None = None) -> None:
        """Rewrite the message clicked in; from the Home tab (no message), tell instead."""
        if self.respond is not None:
            self.respond(text=text, blocks=message_blocks, replace_original=True)
        else:
            self.tell(text)


class Click(Answer):
    """A click on a button naming a request: who (``user``), which request, and the answers."""

    def __init__(
        self, deps: SlackDeps, respond: Respond | None, body: dict[str, Any], request_id: str
    ) -> None:
        super().__init__(deps, respond, body)
        self.approvals = deps.approvals
        self.request_id = request_id
        self.body = body

    def open_form(self, view: dict[str, Any], name: str, unopened: str) -> None:
        """Open the modal ``view`` with the click's trigger; when Slack will not, log it as the
        ``name`` and tell the clicker ``unopened`` (``{error}``: what failed)."""
        try:
            self.deps.client.views_open(trigger_id=self.body["trigger_id"], view=view)
        except CALL_ERRORS as exc:
            failure = classify(exc)
            log.error("Could not open the %s: %s", name, failure.error)
            self.tell(blocks.refusal_text(unopened.format(error=failure.error)))


def button(decide: Callable[[Click], None]) -> Handler:
    """The Bolt handler for a button whose value is a request id: see the module's doc."""

    def handle(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        context: BoltContext,
    ) -> None:
        ack()
        deps = deps_of(context)
        request_id = request_id_of(action)
        if request_id is None:
            Answer(deps, respond, body).tell(blocks.refusal_text(blocks.UNKNOWN_BUTTON_TEXT))
            return
        click = Click(deps, respond, body, request_id)
        try:
            decide(click)
        except Refused as refused:
            click.tell(blocks.refusal_text(refused, link=link_of(deps, refused)))

    return _named(handle, decide)


class Submission:
    """A modal submitted: who (``user``), what they entered, the request it is about, its ack."""

    def __init__(
        self,
        deps: SlackDeps,
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        request_id: str | None,
    ) -> None:
        self.deps = deps
        self.approvals = deps.approvals
        self.user = user_of(body)
        self.view = view
        self.acked = False
        self._ack = ack
        self._request_id = request_id

    @property
    def request_id(self) -> str:
        """The request the form is about (its metadata's; checked by :func:`form`)."""
        if self._request_id is None:
            raise LookupError("This form names no request")
        return self._request_id

    def value(self, block_id: str, action_id: str) -> str:
        return input_value(self.view, block_id, action_id)

    def ack(self) -> None:
        """Close the form: its checks passed. A refusal from here on is said by DM."""
        self._ack()
        self.acked = True

    def field_errors(self, errors: dict[str, str]) -> None:
        """Keep the form open, showing ``errors`` (block_id -> text) under its fields."""
        self._ack(response_action="errors", errors=errors)
        self.acked = True


def form(
    decide: Callable[[Submission], None], field: str, *, about_request: bool = True
) -> Handler:
    """The Bolt handler for a modal: see the module's doc. ``field``: the block_id a refusal
    before the ack is shown under; ``about_request``: the metadata names the request."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        deps = deps_of(context)
        request_id = None
        if about_request:
            request_id = request_id_from_metadata(view.get("private_metadata"))
        submission = Submission(deps, ack, body, view, request_id)
        if about_request and request_id is None:
            submission.field_errors({field: "Unknown request."})
            return
        try:
            decide(submission)
        except Refused as refused:
            if not submission.acked:
                submission.field_errors({field: blocks.refusal_words(refused, mentions=False)})
                if refused.code is not Refusal.OPEN_REQUEST:
                    return
            text = blocks.refusal_text(refused, link=link_of(deps, refused))
            try_dm(deps, submission.user, text)
            return
        if not submission.acked:
            submission.ack()

    return _named(handle, decide)


def _named(handle: Handler, decide: Callable[..., None]) -> Handler:
    """``handle`` under ``decide``'s name, for Bolt's logs. Not functools.wraps: Bolt reads the
    arguments to pass from the unwrapped function, and those are ``handle``'s."""
    handle.__name__ = decide.__name__
    handle.__qualname__ = decide.__qualname__
    handle.__doc__ = decide.__doc__
    return handle
