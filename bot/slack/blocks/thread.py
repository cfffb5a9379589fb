"""The replies in a request's thread: what the provider did (``result_reply``), what a check of
the provider found (``check_reply``), the buttons for an unknown outcome (Check provider, Retry,
Resolved), the line that replaces them once they can no longer act, and the reminder to the
approvers of a request still waiting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.model import State, VerificationRequest
from bot.domain.outcomes import Cleared, ProviderFailed
from bot.domain.views import DomainReading
from bot.slack import ids
from bot.slack.blocks.provider import error_summary, meaning_line, provider_line
from bot.slack.blocks.text import (
    Blocks,
    approvals_line,
    clip,
    code,
    context,
    deciders,
    esc,
    plain,
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
    rewritten once someone retried); ``note`` is added as a last line.
    """
    outcome = request.outcome
    by = deciders(request, "an approver")
    provider_id = outcome.provider_request_id if outcome is not None else None
    id_line = (
        f"Provider requestId: {code(provider_id, 250)}" if provider_id else "No provider requestId"
    )
    if request.state is State.SUCCEEDED:
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
        text = (
            f":grey_question: Approved by {by}, but the outcome is *unknown*: the provider may "
            "or may not have cleared the verification. Check with the provider before asking "
            "again.\n"
            f"*Details:* {code((outcome.message if outcome else '') or 'no answer', 600)}"
        )
        if request.readback is not None:
            text += (
                f"\n{provider_line(request.readback, lead='Provider now')}\n"
                f"{meaning_line(request.readback)}"
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
            after = "Nothing was cleared."
        else:
            after = (
                "The provider's answer was not what it documents: check with the provider "
                "whether it acted before asking again."
            )
        text = (
            f":x: Approved by {by}, but the provider call *failed*: "
            f"{code(error_summary(outcome), 900)}\n{after}"
        )
        fallback = f"Provider call failed for {esc(request.email)}"
    reply = [section(text), context(f"{id_line} · request `{esc(request.id)}`")]
    if request.state is State.UNKNOWN and retry:
        reply.append(unknown_buttons(request))
    if note:
        reply.append(context(note))
    return fallback, reply


def unknown_buttons(request: VerificationRequest) -> dict[str, Any]:
    """Retry, Check provider and Resolved: what approvers can do about an unknown outcome."""
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
                            "The provider may already have cleared the verification for "
                            f"`{esc(request.email)}`. Retry only once you have checked that "
                            "it did not, or when clearing twice does no harm.",
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
        f":mag: {user(by)} checked the provider for `{esc(request.email)}`.\n"
        f"{provider_line(reading, lead='Provider now')}\n{meaning_line(reading)}"
    )
    reply: Blocks = [section(text)]
    reply.append(context(f"Read {when(reading.read_at)} · request `{esc(request.id)}`"))
    if request.state is State.UNKNOWN and offer:
        reply.append(unknown_buttons(request))
    if note:
        reply.append(context(note))
    return f"Provider check for {esc(request.email)}", reply


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
    <@U…>) of a request still waiting for them. A listed user who has already approved it is
    not called again (a group is: it cannot leave one member out)."""
    done = set(request.approvers)
    who = " ".join(
        f"<!subteam^{esc(a)}>" if a.startswith("S") else user(a)
        for a in approvers
        if a != "*" and a not in done
    )
    waiting = approvals_line(request, required) if required > 1 else "no approval yet"
    return (
        f":bell: {who or 'Approvers'}: this request from {user(request.requester)} to clear "
        f"`{esc(request.email)}` is still waiting ({waiting}). It expires "
        f"{when(request.expires_at)}."
    )
