"""The replies in a request's thread: what the provider did (``result_reply``), what a check of
the provider found (``check_reply``), the buttons for an unknown outcome (Check provider, Retry,
Resolved), the line that replaces them once they can no longer act, the reminder to the
approvers of a request still waiting, and the notice that it was escalated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.model import Operation, State, VerificationRequest
from bot.domain.outcomes import Cleared, ProviderFailed, Resent
from bot.domain.views import DomainReading
from bot.slack import ids
from bot.slack.blocks.batch import emails_words, shown_as_batch
from bot.slack.blocks.batch_reply import batch_result_reply, batch_unknown_buttons
from bot.slack.blocks.provider import (
    error_summary,
    mask_emails,
    meaning_line,
    provider_line,
    provider_time,
)
from bot.slack.blocks.text import (
    Blocks,
    approvals_line,
    approvers_for,
    clip,
    code,
    context,
    deciders,
    esc,
    mention,
    mentions,
    minutes,
    operation_words,
    plain,
    quorum,
    section,
    shorten_list,
    user,
    when,
)


def result_reply(
    request: VerificationRequest, *, retry: bool = True, note: str = ""
) -> tuple[str, Blocks]:
    """The thread reply saying what the provider did, from the request's stored outcome.

    An unknown outcome offers approvers a Retry button unless ``retry`` is False (the reply
    rewritten once someone retried); ``note`` is added as a last line. A bulk request's is
    ``batch_result_reply``.
    """
    if shown_as_batch(request):
        return batch_result_reply(request, retry=retry, note=note)
    outcome = request.outcome
    by = deciders(request, "an approver")
    provider_id = outcome.provider_request_id if outcome is not None else None
    id_line = (
        f"Provider requestId: {code(provider_id, 250)}" if provider_id else "No provider requestId"
    )
    resend = request.operation is Operation.RESEND
    if request.state is State.SUCCEEDED and (resend or isinstance(outcome, Resent)):
        sent = outcome if isinstance(outcome, Resent) else None
        recipient = code(mask_emails(sent.recipient), 200) if sent else "(not said)"
        at = provider_time(sent.sent_at) if sent and sent.sent_at else "(not said)"
        text = (
            f":white_check_mark: Approved by {by}. Verification email *resent* for "
            f"`{esc(request.domain)}` (asked for `{esc(request.email)}`).\n"
            f"*Sent to:* {recipient}\n*Sent at:* {at}"
        )
        if sent is not None and sent.method:
            text += f"\n*Method:* {code(sent.method, 100)}"
        if request.readback is not None:
            text += "\n" + provider_line(request.readback, lead="Provider now")
        fallback = f"Verification email resent for {esc(request.domain)}"
    elif request.state is State.SUCCEEDED:
        cleared = outcome if isinstance(outcome, Cleared) else None
        domains = list(cleared.cleared_domains) if cleared else []
        clients = list(cleared.clients_notified) if cleared else []
        text = (
            f":white_check_mark: Approved by {by}. Verification cleared for "
            f"`{esc(request.email)}`.\n"
            f"*Cleared domains ({len(domains)}):* {shorten_list(domains)}\n"
            f"*Clients notified ({len(clients)}):* {shorten_list(clients)}\n"
            f"*Provider says:* {code(cleared.message if cleared else '', 600)}"
        )
        if request.readback is not None:
            text += "\n" + provider_line(request.readback, lead="Provider now")
        fallback = (
            f"Cleared {len(domains)} domain(s) and notified {len(clients)} client(s) for "
            f"{esc(request.email)}"
        )
    elif request.state is State.UNKNOWN:
        did = "sent the verification email again" if resend else "cleared the verification"
        text = (
            f":grey_question: Approved by {by}, but the outcome is *unknown*: the provider may "
            f"or may not have {did}. Check with the provider before asking again.\n"
            f"*Details:* {code((outcome.message if outcome else '') or 'no answer', 600)}"
        )
        if request.readback is not None:
            text += (
                f"\n{provider_line(request.readback, lead='Provider now')}\n"
                f"{meaning_line(request.readback, request.operation)}"
            )
        text += (
            "\nApprovers: *Check provider* reads it again; *Resolved* closes it without a Retry."
        )
        fallback = f"Outcome unknown for {esc(request.email)}"
    elif request.state is State.RESOLVED:
        note = f": {esc(clip(request.decision_note, 800))}" if request.decision_note else "."
        text = (
            f":ballot_box_with_check: Closed as *resolved* by {user(request.decided_by or '')}, "
            f"after an unknown outcome, without calling the provider again{note}"
        )
        fallback = f"Resolved: {esc(request.email)}"
    else:
        if isinstance(outcome, ProviderFailed) and outcome.nothing_done:
            after = "No email was sent." if resend else "Nothing was cleared."
        else:
            after = (
                "The provider's answer was not what it documents: check with the provider "
                "whether it acted before asking again."
            )
        call = "the resend" if resend else "the provider call"
        text = (
            f":x: Approved by {by}, but {call} *failed*: "
            f"{code(error_summary(outcome), 900)}\n{after}"
        )
        fallback = f"Provider call to {operation_words(request.operation)} failed for " + esc(
            request.email
        )
    reply = [section(text), context(f"{id_line} · request `{esc(request.id)}`")]
    if request.state is State.UNKNOWN and retry:
        reply.append(unknown_buttons(request))
    if note:
        reply.append(context(note))
    return fallback, reply


def unknown_buttons(request: VerificationRequest) -> dict[str, Any]:
    """Retry, Check provider and Resolved: what approvers can do about an unknown outcome (a
    bulk request's: Retry and Resolved, ``batch_unknown_buttons``)."""
    if shown_as_batch(request):
        return batch_unknown_buttons(request)
    return {
        "type": "actions",
        "block_id": ids.RETRY_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": ids.CHECK_ACTION,
                "text": plain("Check provider"),
                "value": request.id,
            },
            {
                "type": "button",
                "action_id": ids.RETRY_ACTION,
                "text": plain("Retry"),
                "value": request.id,
                "confirm": {
                    "title": plain("Call the provider again?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            (
                                "The provider may already have sent the verification email "
                                f"for `{esc(request.domain)}` again. Retry only once you have "
                                "checked that it did not, or when a second email does no harm."
                            )
                            if request.operation is Operation.RESEND
                            else (
                                "The provider may already have cleared the verification for "
                                f"`{esc(request.email)}`. Retry only once you have checked "
                                "that it did not, or when clearing twice does no harm."
                            ),
                            300,
                        ),
                    },
                    "confirm": plain("Retry", 30),
                    "deny": plain("Cancel", 30),
                },
            },
            {
                "type": "button",
                "action_id": ids.RESOLVE_ACTION,
                "text": plain("Resolved"),
                "value": request.id,
            },
        ],
    }


def check_reply(
    request: VerificationRequest,
    reading: DomainReading,
    by: str,
    *,
    offer: bool = True,
    note: str = "",
) -> tuple[str, Blocks]:
    """The thread reply to Check provider: what the domain reads and what that means, with
    Retry and Resolved again (the request is still unknown until a person decides). Without
    ``offer`` (the reply rewritten once they can no longer act) no buttons, and ``note`` (what
    happened instead) is added as a last line."""
    text = (
        f":mag: {user(by)} checked the provider for {emails_words(request)}.\n"
        f"{provider_line(reading, lead='Provider now')}\n"
        f"{meaning_line(reading, request.operation)}"
    )
    reply: Blocks = [section(text)]
    reply.append(context(f"Read {when(reading.read_at)} · request `{esc(request.id)}`"))
    if request.state is State.UNKNOWN and offer:
        reply.append(unknown_buttons(request))
    if note:
        reply.append(context(note))
    return f"Provider check for {emails_words(request)}", reply


def moved_on_note(action: str | None, actor: str | None) -> str:
    """The line that replaces Check provider / Retry / Resolved on a thread reply once they can
    no longer act: what was decided instead (``action``: the audit action that moved the
    request out of its unknown outcome, by ``actor``)."""
    if action == "retry" and actor:
        return f"Retried by {user(actor)}; see below."
    if action == "resolve" and actor:
        return f"Closed as resolved by {user(actor)}; see below."
    return "Decided since; see below."


def reminder_reply(request: VerificationRequest, approvers: Sequence[str], required: int) -> str:
    """The thread reply reminding the approvers (user groups as <!subteam^S…>, users as
    <@U…>) of a request still waiting for them: its rule's approvers (and escalate_to once
    escalated), else ``approvers`` (APPROVERS); its rule's quorum, else ``required``. A listed
    user who has already approved it is not called again (a group is: it cannot leave one
    member out)."""
    required = quorum(request, required)
    done = set(request.approvers)
    who = " ".join(
        mention(a) for a in approvers_for(request, approvers) if a != "*" and a not in done
    )
    waiting = approvals_line(request, required) if required > 1 else "no approval yet"
    return (
        f":bell: {who or 'Approvers'}: this request from {user(request.requester)} to "
        f"{operation_words(request.operation)} for {emails_words(request)} is still waiting "
        f"({waiting}). It expires {when(request.expires_at)}."
    )


def escalation_reply(request: VerificationRequest, after: float | None) -> str:
    """The thread reply, once, when a request waited its rule's escalate_after: who may
    approve it too from now on. ``after``: the seconds it waited (the escalation's audit
    entry's; else its rule's)."""
    rule = request.rule
    to = mentions(rule.escalate_to) if rule is not None else "more approvers"
    waited = after if after is not None else (rule.escalate_after if rule is not None else None)
    since = f"Waiting {minutes(waited)}" if waited is not None else "Still waiting"
    return (
        f":arrow_double_up: {since}: escalated to {to}, who may approve it too. "
        f"The request from {user(request.requester)} to {operation_words(request.operation)} "
        f"for {emails_words(request)} expires {when(request.expires_at)}."
    )
