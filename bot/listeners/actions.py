"""The buttons: Approve and Reject on a request message, Retry on an unknown outcome."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot import blocks, ids
from bot.approvals import Refused

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

REQUEST_ID_RE = re.compile(r"^[0-9a-f]{16}$")
NOT_AN_APPROVER_TEXT = (
    "Only approvers can approve, reject or retry these requests; nothing was changed."
)


def _tell(respond: Respond, text: str) -> None:
    """A private answer to the person who clicked, leaving the message alone."""
    respond(text=blocks.refusal_text(text), response_type="ephemeral", replace_original=False)


def _request_id(action: dict[str, Any]) -> str | None:
    value = action.get("value")
    return value if isinstance(value, str) and REQUEST_ID_RE.match(value) else None


def register(app: App, services: Services) -> None:
    def approver_and_request(
        body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> tuple[str, str] | None:
        """(user, request id) when the click can go ahead; else says why, privately."""
        user_id = str(body.get("user", {}).get("id", ""))
        request_id = _request_id(action)
        if request_id is None:
            _tell(respond, "That button does not name a request I know.")
            return None
        if not services.roles.is_approver(user_id):
            _tell(respond, NOT_AN_APPROVER_TEXT)
            return None
        return user_id, request_id

    def call_provider(request_id: str, user_id: str, respond: Respond, *, retry: bool) -> bool:
        """Claim the request, call the provider once, and tell Slack. False when refused."""
        try:
            claimed = services.approvals.claim(request_id, user_id, retry=retry)
        except Refused as exc:
            _tell(respond, str(exc))
            services.outbox.deliver(request_id)  # an expiry the refusal caused, say
            return False
        verb = "retried" if retry else "approved"
        log.info("Request %s %s by %s; calling the provider", request_id, verb, user_id)
        # The provider is called at once; "calling the provider…" goes to Slack alongside, so a
        # slow Slack never delays the call (nor eats into the interrupted-call sweep's margin).
        showing = services.delivery_executor.submit(services.outbox.deliver, request_id)
        final = services.approvals.execute(claimed, user_id).request
        log.info("Request %s is %s", final.id, final.state.value)
        showing.result()  # in order: the interim update is finished with before the final
        services.outbox.deliver(request_id)
        return True

    @app.action(ids.APPROVE_ACTION)
    def approve_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        checked = approver_and_request(body, action, respond)
        if checked is not None:
            user_id, request_id = checked
            call_provider(request_id, user_id, respond, retry=False)

    @app.action(ids.RETRY_ACTION)
    def retry_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        checked = approver_and_request(body, action, respond)
        if checked is None:
            return
        user_id, request_id = checked
        before = services.store.get(request_id)
        if before is None:
            _tell(respond, "That request no longer exists.")
            return
        if call_provider(request_id, user_id, respond, retry=True):
            # The reply that offered Retry no longer does: say who retried instead.
            text, reply = blocks.result_reply(
                before, retry=False, note=f"Retried by {blocks.user(user_id)}; see below."
            )
            respond(text=text, blocks=reply, replace_original=True)

    @app.action(ids.REJECT_ACTION)
    def reject_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        checked = approver_and_request(body, action, respond)
        if checked is None:
            return
        user_id, request_id = checked
        try:
            request = services.approvals.open_for_rejection(request_id, user_id)
        except Refused as exc:
            _tell(respond, str(exc))
            services.outbox.deliver(request_id)
            return
        services.client.views_open(trigger_id=body["trigger_id"], view=blocks.reject_modal(request))
