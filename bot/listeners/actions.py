"""The Approve and Reject buttons on a request message."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot import blocks, ids
from bot.approvals import Refused, State

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

REQUEST_ID_RE = re.compile(r"^[0-9a-f]{16}$")
NOT_AN_APPROVER_TEXT = "Only approvers can approve or reject these requests; nothing was changed."


def _tell(respond: Respond, text: str) -> None:
    """A private answer to the person who clicked, leaving the request message alone."""
    respond(text=blocks.refusal_text(text), response_type="ephemeral", replace_original=False)


def _request_id(action: dict[str, Any]) -> str | None:
    value = action.get("value")
    return value if isinstance(value, str) and REQUEST_ID_RE.match(value) else None


def register(app: App, services: Services) -> None:
    @app.action(ids.APPROVE_ACTION)
    def approve_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        user_id = str(body.get("user", {}).get("id", ""))
        request_id = _request_id(action)
        if request_id is None:
            _tell(respond, "That button does not name a request I know.")
            return
        if not services.roles.is_approver(user_id):
            _tell(respond, NOT_AN_APPROVER_TEXT)
            return
        try:
            claimed = services.approvals.claim(request_id, user_id)
        except Refused as exc:
            _tell(respond, str(exc))
            _show_if_closed(services, request_id)
            return
        log.info("Request %s approved by %s; calling the provider", request_id, user_id)
        services.notifier.show(claimed)
        executed = services.approvals.execute(claimed, user_id)
        final = executed.request
        log.info("Request %s is %s", final.id, final.state.value)
        services.notifier.reply_result(final)
        services.notifier.show(final)
        services.notifier.dm(final.requester, blocks.outcome_dm(final, services.notifier.channel))

    @app.action(ids.REJECT_ACTION)
    def reject_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        user_id = str(body.get("user", {}).get("id", ""))
        request_id = _request_id(action)
        if request_id is None:
            _tell(respond, "That button does not name a request I know.")
            return
        if not services.roles.is_approver(user_id):
            _tell(respond, NOT_AN_APPROVER_TEXT)
            return
        try:
            request = services.approvals.open_for_rejection(request_id, user_id)
        except Refused as exc:
            _tell(respond, str(exc))
            _show_if_closed(services, request_id)
            return
        services.client.views_open(trigger_id=body["trigger_id"], view=blocks.reject_modal(request))


def _show_if_closed(services: Services, request_id: str) -> None:
    """After a refused click, make sure the message no longer offers buttons that cannot work."""
    request = services.store.get(request_id)
    if request is not None and request.state is State.EXPIRED and request.message_ts:
        services.notifier.show(request)
