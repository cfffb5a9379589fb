"""The buttons: Approve and Reject on a request message; Retry, Check provider and Resolved on
an unknown outcome; Cancel on the requester's DM."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond

from bot.domain.model import State
from bot.domain.refusals import Refused
from bot.slack import blocks
from bot.slack.errors import CALL_ERRORS, classify
from bot.slack.listeners import services_of
from bot.slack.listeners.parsing import request_id_of, user_of
from bot.slack.notifier import DeliveryError

log = logging.getLogger(__name__)


class Answer:
    """Private answers to the person who clicked: through the click's response_url, or, for a
    click on the Home tab (which carries none), as a DM from the app."""

    def __init__(self, respond: Respond | None, body: dict[str, Any], context: BoltContext):
        self.respond = respond if body.get("response_url") else None
        self.user = user_of(body)
        self.context = context

    def tell(self, text: str) -> None:
        """A private answer, leaving the message clicked in alone."""
        if self.respond is not None:
            self.respond(text=text, response_type="ephemeral", replace_original=False)
            return
        try:
            services_of(self.context).notifier.dm(self.user, text)
        except DeliveryError as exc:
            log.warning("Could not answer %s privately: %s", self.user, exc)

    def replace(self, text: str, message_blocks: blocks.Blocks | None = None) -> None:
        """Rewrite the message clicked in; from the Home tab (no message), tell instead."""
        if self.respond is not None:
            self.respond(text=text, blocks=message_blocks, replace_original=True)
        else:
            self.tell(text)


def clicked_request(action: dict[str, Any], answer: Answer) -> str | None:
    """The request id the button carries; None (having said so) when it names none."""
    request_id = request_id_of(action)
    if request_id is None:
        answer.tell(blocks.refusal_text(blocks.UNKNOWN_BUTTON_TEXT))
    return request_id


def approve_clicked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    ack()
    answer = Answer(respond, body, context)
    request_id = clicked_request(action, answer)
    if request_id is None:
        return
    services = services_of(context)
    try:
        request = services.approvals.approve(request_id, user_of(body))
    except Refused as refused:
        answer.tell(blocks.refusal_text(refused))
        return
    if request.state is State.PENDING:  # counted; the quorum is not complete yet
        required = services.approvals.policy.approvals_required
        answer.tell(blocks.approval_recorded_text(request, required))


def retry_clicked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    ack()
    answer = Answer(respond, body, context)
    request_id = clicked_request(action, answer)
    if request_id is None:
        return
    user_id = user_of(body)
    try:
        retried = services_of(context).approvals.retry(request_id, user_id)
    except Refused as refused:
        answer.tell(blocks.refusal_text(refused))
        return
    # The reply that offered Retry no longer does: say who retried instead.
    text, reply = blocks.result_reply(
        retried.before, retry=False, note=f"Retried by {blocks.user(user_id)}; see below."
    )
    answer.replace(text, reply)


def cancel_clicked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    ack()
    answer = Answer(respond, body, context)
    request_id = clicked_request(action, answer)
    if request_id is None:
        return
    try:
        cancelled = services_of(context).approvals.cancel(request_id, user_of(body))
    except Refused as refused:
        answer.tell(blocks.refusal_text(refused))
        return
    # The DM that offered Cancel says what happened instead.
    answer.replace(blocks.cancelled_dm(cancelled))


def reject_clicked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    ack()
    answer = Answer(respond, body, context)
    request_id = clicked_request(action, answer)
    if request_id is None:
        return
    services = services_of(context)
    try:
        request = services.approvals.start_rejection(request_id, user_of(body))
    except Refused as refused:
        answer.tell(blocks.refusal_text(refused))
        return
    try:
        services.client.views_open(trigger_id=body["trigger_id"], view=blocks.reject_modal(request))
    except CALL_ERRORS as exc:
        failure = classify(exc)
        log.error("Could not open the reject form: %s", failure.error)
        answer.tell(
            blocks.refusal_text(
                f"I could not open the reject form ({failure.error}). Please click Reject again."
            )
        )


def check_clicked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    """Check provider: the reading is posted in the thread for everyone (the channel is the
    record); only a refusal is private."""
    ack()
    answer = Answer(respond, body, context)
    request_id = clicked_request(action, answer)
    if request_id is None:
        return
    try:
        services_of(context).approvals.check_provider(request_id, user_of(body))
    except Refused as refused:
        answer.tell(blocks.refusal_text(refused))


def resolve_clicked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    """Resolved: opens the form asking why (the request is closed when it is submitted)."""
    ack()
    answer = Answer(respond, body, context)
    request_id = clicked_request(action, answer)
    if request_id is None:
        return
    services = services_of(context)
    try:
        request = services.approvals.start_resolution(request_id, user_of(body))
    except Refused as refused:
        answer.tell(blocks.refusal_text(refused))
        return
    try:
        services.client.views_open(
            trigger_id=body["trigger_id"], view=blocks.resolve_modal(request)
        )
    except CALL_ERRORS as exc:
        failure = classify(exc)
        log.error("Could not open the resolve form: %s", failure.error)
        answer.tell(
            blocks.refusal_text(
                f"I could not open the form ({failure.error}). Please click Resolved again."
            )
        )
