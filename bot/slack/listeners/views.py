"""Modal submissions: the request form, the reject form and the resolve form."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, BoltContext

from bot.domain.inputs import InvalidInput, clean_note, validate_email, validate_reason
from bot.domain.model import OpenRequestExists, VerificationRequest
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks, ids
from bot.slack.listeners import services_of
from bot.slack.listeners.parsing import input_value, request_id_from_metadata, user_of
from bot.slack.notifier import DeliveryError

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

OPEN_REQUEST_ERROR = (
    "This address already has an open request; I have sent you a link to it. A new one can be "
    "made once it is done."
)


def request_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
) -> None:
    services = services_of(context)
    user_id = user_of(body)
    errors: dict[str, str] = {}
    email = reason = ""
    try:
        email = validate_email(input_value(view, ids.EMAIL_BLOCK, ids.EMAIL_INPUT))
    except InvalidInput as exc:
        errors[ids.EMAIL_BLOCK] = str(exc)
    try:
        reason = validate_reason(input_value(view, ids.REASON_BLOCK, ids.REASON_INPUT))
    except InvalidInput as exc:
        errors[ids.REASON_BLOCK] = str(exc)
    # Read-only: only local work and one store read come before the ack (Slack waits 3 s).
    existing = None if errors else services.approvals.open_request_for(email)
    if existing is not None:
        errors[ids.EMAIL_BLOCK] = OPEN_REQUEST_ERROR
    if errors:
        ack(response_action="errors", errors=errors)
        if existing is not None:
            point_to_open_request(services, user_id, existing)
        return
    # The role check may ask Slack about a user group, so it comes after the ack, and a
    # refusal goes by DM.
    ack()
    try:
        request = services.approvals.submit(email, reason, user_id)
    except Refused as refused:
        try_dm(services, user_id, blocks.refusal_text(refused))
        return
    except OpenRequestExists as exc:  # someone asked in the same moment
        point_to_open_request(services, user_id, exc.existing)
        return
    # Posted already (submit delivers): now the provider's view, shown beside it once read.
    services.approvals.look_up(request.id)


def reject_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
) -> None:
    services = services_of(context)
    user_id = user_of(body)
    request_id = request_id_from_metadata(view.get("private_metadata"))
    note = input_value(view, ids.REJECT_REASON_BLOCK, ids.REJECT_REASON_INPUT)
    if request_id is None:
        ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: "Unknown request."})
        return
    try:
        services.approvals.rejectable(request_id)  # read-only, before the ack
    except Refused as refused:
        error = blocks.refusal_words(refused, mentions=False)
        ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: error})
        return
    ack()  # before the role check, which may ask Slack about a user group
    try:
        services.approvals.reject(request_id, user_id, note)
    except Refused as refused:  # not an approver, or decided by someone else meanwhile
        try_dm(services, user_id, blocks.refusal_text(refused))


def resolve_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
) -> None:
    services = services_of(context)
    user_id = user_of(body)
    request_id = request_id_from_metadata(view.get("private_metadata"))
    note = input_value(view, ids.RESOLVE_NOTE_BLOCK, ids.RESOLVE_NOTE_INPUT)
    if request_id is None:
        ack(response_action="errors", errors={ids.RESOLVE_NOTE_BLOCK: "Unknown request."})
        return
    error = None
    try:
        services.approvals.resolvable(request_id, user_id)  # read-only, before the ack
    except Refused as refused:
        error = blocks.refusal_words(refused, mentions=False)
    if error is None and not clean_note(note):
        error = blocks.refusal_words(Refused(Refusal.NOTE_REQUIRED), mentions=False)
    if error is not None:
        ack(response_action="errors", errors={ids.RESOLVE_NOTE_BLOCK: error})
        return
    ack()  # before the role check, which may ask Slack about a user group
    try:
        services.approvals.resolve(request_id, user_id, note)
    except Refused as refused:  # not an approver, or retried or resolved meanwhile
        try_dm(services, user_id, blocks.refusal_text(refused))


def point_to_open_request(services: Services, user_id: str, existing: VerificationRequest) -> None:
    link = services.notifier.permalink(existing)
    try_dm(services, user_id, blocks.open_request_text(existing, link))


def try_dm(services: Services, user_id: str, text: str) -> None:
    """A courtesy DM outside any request's outbox (nothing is lost if it fails)."""
    try:
        services.notifier.dm(user_id, text)
    except DeliveryError as exc:
        log.warning("%s", exc)
