"""``/verify-email``: answer help and bad input at once; else check the role, ask the rules
what they allow for the address (when it is known) and open the form (``bulk``: the bulk
form)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond

from bot.domain.inputs import InvalidInput
from bot.domain.model import Operation, RuleTerms
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks
from bot.slack.deps import SlackDeps, deps_of
from bot.slack.errors import CALL_ERRORS, classify
from bot.slack.listeners.interactions import link_of
from bot.slack.listeners.parsing import parse_command_text

log = logging.getLogger(__name__)


def verify_email_command(
    ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    parsed = parse_command_text(body.get("text"))
    if parsed.help:
        ack(text=blocks.HELP_TEXT, response_type="ephemeral")
        return
    if parsed.error and (parsed.status or parsed.bulk) and not parsed.raw_email:
        ack(text=f"{parsed.error}.", response_type="ephemeral")
        return
    if parsed.error:
        ack(
            text=blocks.invalid_email_text(parsed.raw_email, parsed.error),
            response_type="ephemeral",
        )
        return
    # Ack before anything that may wait on Slack (a first group lookup); the trigger is still
    # good for views.open for the rest of its 3 seconds.
    ack()
    services = deps_of(context)
    user_id = str(body.get("user_id", ""))
    if parsed.status and parsed.email:
        answer_status(services, user_id, parsed.email, respond)
        return
    try:
        services.approvals.may_ask(user_id, parsed.email)
    except Refused as refused:  # an open request for the email too: then with its link
        link = link_of(services, refused)
        respond(text=blocks.refusal_words(refused, link=link), response_type="ephemeral")
        return
    if parsed.bulk:
        # No address yet: both operations offered, as the empty request form offers them (the
        # rules are asked per email when the list is submitted).
        bulk_form = blocks.bulk_modal(max_emails=services.approvals.policy.bulk_max)
        open_form(services, body, respond, bulk_form, "bulk form")
        return
    rules: dict[Operation, RuleTerms | None] = {}
    not_allowed: list[Operation] = []
    if parsed.email:
        # What the rules allow for this address and requester, and what they ask of the
        # reason (read-only; a group lookup is cached, and allowed here, after the ack).
        for operation in Operation:
            try:
                rules[operation] = services.approvals.rule_for(parsed.email, user_id, operation)
            except Refused as no:
                if no.code is not Refusal.OPERATION_NOT_ALLOWED:
                    raise
                not_allowed.append(operation)
            except InvalidInput:  # pragma: no cover - the address was validated above
                rules[operation] = None
        if len(not_allowed) == len(Operation):  # nothing to offer: say so instead of a form
            nothing = Refused(Refusal.OPERATION_NOT_ALLOWED)
            respond(text=blocks.refusal_words(nothing), response_type="ephemeral")
            return
    modal = blocks.request_modal(
        parsed.email, parsed.reason, operation=parsed.operation, refused=not_allowed, rules=rules
    )
    open_form(services, body, respond, modal, "request form")


def open_form(
    services: SlackDeps, body: dict[str, Any], respond: Respond, modal: dict[str, Any], name: str
) -> None:
    """Open ``modal`` with the command's trigger; when Slack will not, say so privately."""
    try:
        services.client.views_open(trigger_id=body["trigger_id"], view=modal)
    except CALL_ERRORS as exc:
        failure = classify(exc)
        log.error("Could not open the %s: %s", name, failure.error)
        answered = failure.kind in ("api", "ratelimited")
        said = f"Slack said `{blocks.esc(failure.error)}`" if answered else "Slack did not answer"
        respond(
            text=blocks.refusal_text(
                f"I could not open the form ({said}). Please try the command again."
            ),
            response_type="ephemeral",
        )


def answer_status(services: SlackDeps, user_id: str, email: str, respond: Respond) -> None:
    """``/verify-email status EMAIL``: the open request (with a link) and the last outcomes."""
    try:
        report = services.approvals.status_of(user_id, email)
    except Refused as refused:
        respond(text=blocks.refusal_words(refused), response_type="ephemeral")
        return
    link = services.notifier.permalink(report.open) if report.open is not None else None
    respond(text=blocks.status_text(report, link), response_type="ephemeral")
