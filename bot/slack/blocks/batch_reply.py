"""A bulk request's one final thread reply (``batch_result_reply``): how its run ended in
counts, then the failed and the unknown emails grouped by the provider's code, clipped with
counts (every email is in ``python -m bot audit --request ID``), with Retry (the unknown emails
only) and Resolved while any outcome is unknown, and no Check provider (one domain's reading
cannot speak for a batch); and the requester's DMs of a bulk request (where it went, how it
ended, what their Cancel did), short, pointing at the thread.

At 1,000 emails the reply stays within Slack's limits: at most six blocks, each list section
built under 3,000 characters, a fallback text of a few hundred, button values the request id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.batch import Progress, items_in, progress_of
from bot.domain.model import Item, Operation, State, VerificationRequest
from bot.domain.outcomes import Interrupted, ProviderFailed
from bot.slack import ids
from bot.slack.blocks.batch import (
    FALLBACK_CHARS,
    LIST_CHARS,
    counts_words,
    fitting,
    is_stopping,
    listed,
    plural,
    was_stopped,
)
from bot.slack.blocks.text import (
    Blocks,
    by_rule,
    clip,
    code,
    context,
    deciders,
    esc,
    operation_words,
    plain,
    section,
    user,
    when,
)

GROUP_EMAILS_SHOWN = 8  # emails named under one provider code
GROUPS_SHOWN = 8  # provider codes shown in one list (failed, unknown)


def _code_of(item: Item) -> str:
    """The provider's code for an item's outcome: ``HTTP 400 INVALID_EMAIL``, else the kind of
    failure (``timeout``), ``interrupted``, or ``no answer``."""
    outcome = item.outcome
    if isinstance(outcome, ProviderFailed):
        parts = [f"HTTP {outcome.status}"] if outcome.status else []
        if outcome.code:
            parts.append(outcome.code)
        return " ".join(parts) or outcome.kind
    if isinstance(outcome, Interrupted):
        return "interrupted"
    return "no answer"


def _message_of(item: Item) -> str:
    outcome = item.outcome
    return (outcome.message if outcome is not None else "") or ""


def outcomes_text(items: Sequence[Item], noun: str, budget: int = LIST_CHARS) -> str:
    """``*Failed (80):*`` and a line per provider code (most first): the code, its message
    (the first item's), how many, and the first of their emails (``and 52 more``); within
    ``budget`` characters, ending with ``and 412 more failed under 9 other codes`` when not
    every code fits."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(_code_of(item), []).append(item)
    ordered = sorted(groups.items(), key=lambda pair: (-len(pair[1]), pair[0]))
    lines = [f"*{noun.capitalize()} ({len(items)}):*"]
    used = len(lines[0])
    groups_shown = 0
    for label, members in ordered[:GROUPS_SHOWN]:
        message = _message_of(members[0])
        head = f"• {code(label, 100)}" + (f" {code(message, 160)}" if message else "")
        head += f" ({len(members)}): "
        shown = fitting([code(m.email, 120) for m in members[:GROUP_EMAILS_SHOWN]], 500)
        line = head + listed(shown, len(members), "")
        if used + len(line) + 1 > budget - 80:
            break
        lines.append(line)
        used += len(line) + 1
        groups_shown += 1
    left = ordered[groups_shown:]
    if left:
        rest = sum(len(members) for _, members in left)
        lines.append(f"and {rest} more {noun} under {plural(len(left), 'other code')}")
    return clip("\n".join(lines), budget)


def _ended_words(request: VerificationRequest, progress: Progress) -> tuple[str, str]:
    """The emoji and how a bulk request's run ended, in a few words."""
    match request.state:
        case State.SUCCEEDED:
            return ":white_check_mark:", "finished"
        case State.UNKNOWN:
            return ":grey_question:", f"finished with {progress.unknown} unknown"
        case State.FAILED:
            return ":x:", f"finished with {plural(progress.failed, 'failure')}"
        case State.CANCELLED:
            return ":leftwards_arrow_with_hook:", "was stopped"
        case State.RESOLVED:
            return ":ballot_box_with_check:", "was resolved"
        case State.EXECUTING:
            return ":arrows_counterclockwise:", "is running again"
    return ":information_source:", f"is {request.state.value}"


def batch_result_reply(
    request: VerificationRequest, *, retry: bool = True, note: str = ""
) -> tuple[str, Blocks]:
    """The one thread reply at the end of a bulk request's run: the counts, then the failed
    and the unknown emails grouped by the provider's code (clipped with counts). While any
    outcome is unknown it offers approvers Retry (the unknown emails only) and Resolved
    (without Check provider), unless ``retry`` is False (the reply rewritten once they can no
    longer act); ``note`` is added as a last line."""
    progress = progress_of(request)
    emoji, ended = _ended_words(request, progress)
    by = deciders(request, "an approver")
    headline = (
        f"{emoji} The bulk request to {operation_words(request.operation)} for "
        f"{plural(progress.total, 'email')} {ended}: "
        f"{counts_words(progress, request.operation)}. Approved by {by}."
    )
    if progress.queued or progress.running:
        headline += f" Still to run: {progress.queued + progress.running}."
    if progress.unknown:
        did = (
            "sent their emails again"
            if request.operation is Operation.RESEND
            else "cleared their verification"
        )
        headline += (
            f"\nFor the {progress.unknown} unknown, the provider may or may not have {did}: "
            "*Retry* calls it again for those only; *Resolved* closes them without a call."
        )
    reply: Blocks = [section(headline)]
    failed = items_in(request, State.FAILED)
    if failed:
        reply.append(section(outcomes_text(failed, "failed")))
    unknown = items_in(request, State.UNKNOWN)
    if unknown:
        reply.append(section(outcomes_text(unknown, "unknown")))
    reply.append(
        context(
            f"Bulk request `{esc(request.id)}` · one row per email: "
            f"`python -m bot audit --request {esc(request.id)}`"
        )
    )
    if unknown and retry and request.state is State.UNKNOWN:
        reply.append(batch_unknown_buttons(request))
    if note:
        reply.append(context(note))
    fallback = (
        f"Bulk request {request.id} {ended}: {counts_words(progress, request.operation)} "
        f"of {progress.total}"
    )
    return clip(fallback, FALLBACK_CHARS), reply


def batch_unknown_buttons(request: VerificationRequest) -> dict[str, Any]:
    """Retry (the unknown emails only, confirmed) and Resolved: a single unknown outcome's
    action ids and values, without Check provider (one reading cannot speak for a batch)."""
    n = len(items_in(request, State.UNKNOWN))
    did = (
        "sent the verification email again"
        if request.operation is Operation.RESEND
        else "cleared the verification"
    )
    return {
        "type": "actions",
        "block_id": ids.RETRY_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": ids.RETRY_ACTION,
                "text": plain(f"Retry the {n} unknown"),
                "value": request.id,
                "confirm": {
                    "title": plain("Call the provider again?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            f"The provider is called again for the {plural(n, 'email')} whose "
                            f"outcome is unknown (only those). It may already have {did} for "
                            "them: retry only once you have checked, or when twice does no harm.",
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


# -- the requester's DMs ----------------------------------------------------------------------


def _asked(request: VerificationRequest) -> str:
    """``Your bulk request to clear the stuck verification for 300 emails``."""
    return (
        f"Your bulk request to {operation_words(request.operation)} for "
        f"{plural(len(request.items), 'email')}"
    )


def batch_submitted_dm(request: VerificationRequest, channel: str) -> tuple[str, Blocks]:
    """Where the bulk request went; no button (its Cancel is on the request message)."""
    if by_rule(request) and request.rule is not None:
        text = (
            f"{_asked(request)} was posted in <#{esc(channel)}>. The rule "
            f"*{esc(request.rule.name)}* approves it: nobody needs to; its emails run at the "
            "provider's pace. I will tell you here how it ends."
        )
    else:
        text = (
            f"{_asked(request)} was posted in <#{esc(channel)}> for approval. It expires "
            f"{when(request.expires_at)}. I will tell you here how it ends; until then you can "
            "cancel it with *Cancel request* on the request message there (during the run, it "
            "stops the emails not started)."
        )
    return text, [section(text)]


def batch_outcome_dm(request: VerificationRequest, channel: str) -> str:
    """How the bulk request ended, short: the counts and where the details are."""
    where = f"<#{esc(channel)}>"
    asked = _asked(request)
    progress = progress_of(request)
    counts = counts_words(progress, request.operation)
    by = deciders(request, "an approver")
    match request.state:
        case State.SUCCEEDED:
            return (
                f":white_check_mark: {asked} was approved by {by} and has finished: {counts}. "
                f"Details are in the thread in {where}."
            )
        case State.FAILED:
            return (
                f":x: {asked} has finished: {counts}. The failed emails and the provider's "
                f"codes are in the thread in {where}."
            )
        case State.UNKNOWN:
            return (
                f":grey_question: {asked} has finished: {counts}. For the {progress.unknown} "
                "unknown the provider may or may not have acted; see the thread in "
                f"{where}, where an approver can retry them or close them as resolved."
            )
        case State.RESOLVED:
            return (
                f":ballot_box_with_check: {asked} has finished: {counts}. "
                f"{user(request.decided_by or '')} closed its unknown outcomes as resolved. "
                f"See the thread in {where}."
            )
        case State.REJECTED:
            note = (
                f" Reason: {esc(clip(request.decision_note, 800))}" if request.decision_note else ""
            )
            return f":no_entry_sign: {asked} was rejected by {by}.{note}"
        case State.EXPIRED:
            return f"{asked} expired without a decision."
        case State.CANCELLED:
            return batch_cancelled_dm(request)
    return f"{asked} is {request.state.value}: {counts}. See {where}."


def batch_cancelled_dm(request: VerificationRequest) -> str:
    """What the requester hears of their Cancel: before approval nothing was sent; during the
    run the emails not started are not called."""
    progress = progress_of(request)
    if was_stopped(request, progress) or is_stopping(request, progress):
        return (
            f":leftwards_arrow_with_hook: You stopped your bulk request to "
            f"{operation_words(request.operation)} for {plural(progress.total, 'email')}: the "
            f"emails not started are not called ({progress.cancelled} not run); those already "
            f"called end as their calls do. So far: {counts_words(progress, request.operation)}."
        )
    return (
        f":leftwards_arrow_with_hook: You cancelled your bulk request to "
        f"{operation_words(request.operation)} for {plural(progress.total, 'email')}. Nothing "
        "was sent to the provider."
    )
