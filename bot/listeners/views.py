"""Modal submissions: the request form and the reject form."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot import blocks, ids
from bot.approvals import (
    InvalidInput,
    OpenRequestExists,
    Refused,
    VerificationRequest,
    validate_email,
    validate_reason,
)

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)


def input_value(view: dict[str, Any], block_id: str, action_id: str) -> str:
    """The submitted value of a plain_text_input, or "" when absent (optional, or tampered)."""
    try:
        value = view["state"]["values"][block_id][action_id].get("value")
    except (KeyError, TypeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def register(app: App, services: Services) -> None:
    @app.view(ids.REQUEST_VIEW)
    def request_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = str(body.get("user", {}).get("id", ""))
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
        existing = None if errors else services.approvals.open_request_for(email)
        if existing is not None:
            errors[ids.EMAIL_BLOCK] = OPEN_REQUEST_ERROR
        if errors:
            ack(response_action="errors", errors=errors)
            if existing is not None:
                point_to_open_request(services, user_id, existing)
            return
        # Only local work comes before the ack (Slack waits 3 s for it); the role check may ask
        # Slack about a user group, so it comes after, and a refusal goes by DM.
        ack()
        if not services.roles.is_requester(user_id):
            try_dm(services, user_id, blocks.refusal_text(blocks.NOT_A_REQUESTER_TEXT))
            return
        try:
            request = services.approvals.submit(email, reason, user_id)
        except OpenRequestExists as exc:  # someone asked in the same moment
            point_to_open_request(services, user_id, exc.existing)
            return
        log.info("Request %s for %s by %s", request.id, request.email, user_id)
        services.outbox.deliver(request.id)

    @app.view(ids.REJECT_VIEW)
    def reject_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = str(body.get("user", {}).get("id", ""))
        request_id = _request_id_from_metadata(view.get("private_metadata"))
        note = input_value(view, ids.REJECT_REASON_BLOCK, ids.REJECT_REASON_INPUT)
        if request_id is None:
            ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: "Unknown request."})
            return
        try:
            services.approvals.open_for_rejection(request_id, user_id)
        except Refused as exc:
            error = blocks.without_mentions(str(exc))
            ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: error})
            services.outbox.deliver(request_id)  # an expiry the refusal caused, say
            return
        ack()  # before the role check, which may ask Slack about a user group
        if not services.roles.is_approver(user_id):
            try_dm(services, user_id, blocks.refusal_text("Only approvers can reject requests."))
            return
        try:
            request = services.approvals.reject(request_id, user_id, note)
        except Refused as exc:  # decided by someone else in the same moment
            try_dm(services, user_id, blocks.refusal_text(str(exc)))
            services.outbox.deliver(request_id)
            return
        log.info("Request %s rejected by %s", request.id, user_id)
        services.outbox.deliver(request.id)


OPEN_REQUEST_ERROR = (
    "This address already has an open request; I have sent you a link to it. A new one can be "
    "made once it is done."
)


def point_to_open_request(services: Services, user_id: str, existing: VerificationRequest) -> None:
    link = services.notifier.permalink(existing)
    try_dm(services, user_id, blocks.open_request_text(existing, link))


def try_dm(services: Services, user_id: str, text: str) -> None:
    """A courtesy DM outside any request's outbox (nothing is lost if it fails)."""
    from bot.notify import DeliveryError

    try:
        services.notifier.dm(user_id, text)
    except DeliveryError as exc:
        log.warning("%s", exc)


def _request_id_from_metadata(raw: object) -> str | None:
    try:
        data = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return None
    request_id = data.get("request_id") if isinstance(data, dict) else None
    return request_id if isinstance(request_id, str) and request_id.isalnum() else None
