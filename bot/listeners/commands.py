"""``/verify-email``: answer help and bad input at once; else check the role and open the form."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.approvals import parse_command_text

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services, command: str) -> None:
    @app.command(command)
    def verify_email_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        parsed = parse_command_text(body.get("text"))
        if parsed.help:
            ack(text=blocks.HELP_TEXT, response_type="ephemeral")
            return
        if parsed.error:
            ack(
                text=blocks.invalid_email_text(parsed.raw_email, parsed.error),
                response_type="ephemeral",
            )
            return
        # Ack before anything that may wait on Slack (a first group lookup); the trigger is
        # still good for views.open for the rest of its 3 seconds.
        ack()
        user_id = str(body.get("user_id", ""))
        if not services.roles.is_requester(user_id):
            respond(text=blocks.NOT_A_REQUESTER_TEXT, response_type="ephemeral")
            return
        if parsed.email:
            existing = services.approvals.open_request_for(parsed.email)
            if existing is not None:
                link = services.notifier.permalink(existing)
                respond(text=blocks.open_request_text(existing, link), response_type="ephemeral")
                return
        try:
            services.client.views_open(
                trigger_id=body["trigger_id"],
                view=blocks.request_modal(parsed.email, parsed.reason),
            )
        except (SlackClientError, OSError) as exc:
            reason = exc.response.get("error") if isinstance(exc, SlackApiError) else None
            log.error("Could not open the request form: %s", reason or type(exc).__name__)
            said = f"Slack said `{blocks.esc(reason)}`" if reason else "Slack did not answer"
            respond(
                text=blocks.refusal_text(
                    f"I could not open the form ({said}). Please try the command again."
                ),
                response_type="ephemeral",
            )
