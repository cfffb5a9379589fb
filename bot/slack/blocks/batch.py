"""A bulk request (many emails under one approval) as its request message shows it
(``batch_message``): the count, the domains and the first emails (clipped, with counts), the
rule, the reason, the approvals so far, its state with live progress while it runs
(``progress_line``: "212 of 300 done: 205 cleared, 4 failed, 3 unknown; about 40 s left") or
the counts it ended with, and the buttons: Approve, Reject and the requester's Cancel while it
waits, the requester's Cancel (stopping the emails not started) while it runs. Its final thread
reply and the requester's DMs are ``batch_reply``'s.

A bulk request's ``email``, ``domain`` and ``outcome`` raise (it has many): everything here
reads ``request.items``. The other surfaces' builders (request, thread, dm, modals) hand a bulk
request here (``shown_as_batch``), so this module imports none of them.

Within Slack's limits at BULK_MAX (1,000) emails: a handful of blocks, every section built to
stay under 3,000 characters (the lists stop with "and N more"), a short fallback text, and
buttons whose value is the request id, as on a single request's (the same action ids, so the
same handlers route them: the service tells a batch apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, assert_never

from bot.domain.batch import Progress, domains_of, progress_of
from bot.domain.model import Operation, State, VerificationRequest
from bot.slack import ids
from bot.slack.blocks.text import (
    Blocks,
    approvals_line,
    by_rule,
    clip,
    code,
    context,
    deciders,
    esc,
    header,
    mentions,
    minutes,
    operation_title,
    operation_words,
    plain,
    quorum,
    rule_line,
    section,
    user,
    when,
)

DOMAINS_SHOWN = 10  # domains named on the request message, before "and N more domains"
EMAILS_SHOWN = 10  # emails named on the request message, before "and N more"
# The characters one list may take in a section (Slack's limit is 3000 a section): the lists
# stop early, with a count, rather than be cut by ``section``'s clip.
LIST_CHARS = 2400
FALLBACK_CHARS = 300  # the notification text of a batch's messages: short, whatever its size


def shown_as_batch(request: VerificationRequest) -> bool:
    """A request shown by this module: a bulk request, or any of more than one item (whose
    ``email`` would raise)."""
    return request.bulk or len(request.items) != 1


def emails_words(request: VerificationRequest) -> str:
    """What a request is for, inside a sentence: `` `alice@example.com` `` for one email, ``300
    emails`` for several. Never raises (the other builders use it for both kinds)."""
    if len(request.items) == 1:
        return f"`{esc(request.items[0].email)}`"
    return plural(len(request.items), "email")


def plural(n: int, noun: str) -> str:
    """``1 email``, ``300 emails``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def done_word(operation: Operation) -> str:
    """What a succeeded item is called in the counts."""
    return "sent" if operation is Operation.RESEND else "cleared"


def counts_words(progress: Progress, operation: Operation) -> str:
    """``205 cleared, 4 failed, 3 unknown``: the items that ended, by how, zero counts left
    out (``nothing done yet`` when none ended). Items stopped before they ran are ``not run``."""
    parts = [
        f"{n} {word}"
        for n, word in (
            (progress.succeeded, done_word(operation)),
            (progress.failed, "failed"),
            (progress.unknown, "unknown"),
            (progress.resolved, "resolved"),
            (progress.cancelled, "not run"),
        )
        if n
    ]
    return ", ".join(parts) if parts else "nothing done yet"


def eta_words(seconds: float | None) -> str | None:
    """``about 40 s left``, ``about 3 min left``; None when there is no estimate."""
    if seconds is None:
        return None
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5)} s left"
    return f"about {minutes(seconds)} left"


def progress_line(request: VerificationRequest, now: datetime | None = None) -> str:
    """``212 of 300 done: 205 cleared, 4 failed, 3 unknown; about 40 s left`` (with ``now``
    and a run under way, the estimate at the pace so far; without, none)."""
    progress = progress_of(request, now)
    line = f"{progress.done} of {progress.total} done"
    if progress.done:
        line += f": {counts_words(progress, request.operation)}"
    if progress.running:
        line += f"; {progress.running} running"
    if (eta := eta_words(progress.eta_seconds)) is not None:
        line += f"; {eta}"
    return line


def was_stopped(request: VerificationRequest, progress: Progress) -> bool:
    """The requester's Cancel stopped the run (some items cancelled, others ran), as opposed
    to a request cancelled before anything ran."""
    return 0 < progress.cancelled < progress.total


def is_stopping(request: VerificationRequest, progress: Progress) -> bool:
    """Still running after its requester's Cancel: the items not started were cancelled (by
    the requester, the last to decide), those being called have not ended yet."""
    return (
        request.state is State.EXECUTING
        and progress.cancelled > 0
        and request.decided_by == request.requester
    )


def batch_state_line(
    request: VerificationRequest, required: int, now: datetime | None = None
) -> str:
    """The bulk request's state in one line, as ``state_line`` says a single one's: who
    approved, the progress of its run (with ``now``, the time left), or how it ended in
    counts. On the request message and on the request's row in the Home tab."""
    required = quorum(request, required)
    by = deciders(request, "someone")
    progress = progress_of(request, now)
    counts = counts_words(progress, request.operation)
    word = done_word(request.operation)
    match request.state:
        case State.PENDING:
            if by_rule(request) and request.rule is not None:
                return (
                    f":robot_face: *Approved by rule {esc(request.rule.name)}*: its "
                    f"{plural(progress.total, 'email')} run at the provider's pace; nobody needs "
                    "to approve it"
                )
            if required > 1:
                return (
                    f":hourglass: *Waiting for approval*: {approvals_line(request, required)}; "
                    "each by a different approver other than the requester"
                )
            return ":hourglass: *Waiting for approval* by an approver other than the requester"
        case State.EXECUTING:
            if is_stopping(request, progress):
                return (
                    f":octagonal_sign: *Stopping* (cancelled by {user(request.decided_by or '')}"
                    f"): the emails not started will not be called; {progress_line(request, now)}"
                )
            return (
                f":arrows_counterclockwise: *Running*, approved by {by}: "
                f"{progress_line(request, now)}"
            )
        case State.SUCCEEDED:
            return f":white_check_mark: *Done*: all {progress.total} {word}, approved by {by}"
        case State.FAILED:
            return (
                f":x: *Finished with {plural(progress.failed, 'failure')}*: {counts}; approved "
                f"by {by}. The thread lists the failed emails."
            )
        case State.UNKNOWN:
            return (
                f":grey_question: *Finished, {progress.unknown} outcome"
                f"{'' if progress.unknown == 1 else 's'} unknown*: {counts}; approved by {by}. "
                "The provider may or may not have acted for those: in the thread an approver "
                "can Retry them (only the unknown ones) or close them as resolved."
            )
        case State.RESOLVED:
            note = f": {esc(clip(request.decision_note, 600))}" if request.decision_note else ""
            return (
                f":ballot_box_with_check: *Resolved by {user(request.decided_by or '')}* after "
                f"unknown outcomes, without a Retry: {counts}{note}"
            )
        case State.CANCELLED:
            who = user(request.decided_by) if request.decided_by else "the requester"
            if was_stopped(request, progress):
                ran = counts_words(replace(progress, cancelled=0), request.operation)
                return (
                    f":leftwards_arrow_with_hook: *Stopped by {who}*, who asked for it: "
                    f"{ran}; stopped: {progress.cancelled} not run"
                )
            return (
                f":leftwards_arrow_with_hook: *Cancelled by {who}*, who asked for it; nothing "
                "was sent to the provider"
            )
        case State.REJECTED:
            note = f": {esc(clip(request.decision_note, 600))}" if request.decision_note else ""
            return f":no_entry_sign: *Rejected by {by}*{note}"
        case State.EXPIRED:
            return ":hourglass_flowing_sand: *Expired* without a decision; ask again if needed"
    assert_never(request.state)


def batch_rule_line(request: VerificationRequest) -> str | None:
    """The rule line (as a single request's), and the approvers every other rule of its emails
    names: an approver must be among each of those too (the strictest terms)."""
    line = rule_line(request)
    rule = request.rule
    if line is None or rule is None or not rule.also_approvers:
        return line
    also = " and among ".join(mentions(group, 5) for group in rule.also_approvers[:3])
    more = len(rule.also_approvers) - 3
    line += f"; each approver must also be among {also}"
    if more > 0:
        line += f" (and {more} more rules' approvers)"
    return clip(line, 1200)


def fitting(pieces: Sequence[str], budget: int) -> list[str]:
    """The first of ``pieces`` that fit in ``budget`` characters, joined by ", " (at least
    one: each piece is short)."""
    shown: list[str] = []
    used = 0
    for piece in pieces:
        if shown and used + len(piece) + 2 > budget:
            break
        shown.append(piece)
        used += len(piece) + 2
    return shown


def listed(shown: Sequence[str], total: int, noun: str) -> str:
    """``a, b, c and 12 more {noun}``: ``shown``, then how many of ``total`` were left out."""
    text = ", ".join(shown) if shown else "none"
    rest = total - len(shown)
    return f"{text} and {rest} more{f' {noun}' if noun else ''}" if rest > 0 else text


def domains_text(request: VerificationRequest, limit: int = DOMAINS_SHOWN) -> str:
    """``*Domains (12):* `a.example` (120), `b.example` (80), … and 2 more domains``."""
    domains = domains_of(request)
    pieces = [f"{code(domain, 120)} ({n})" for domain, n in domains[:limit]]
    shown = fitting(pieces, LIST_CHARS)
    return f"*Domains ({len(domains)}):* " + listed(shown, len(domains), "domains")


def emails_text(request: VerificationRequest, limit: int = EMAILS_SHOWN) -> str:
    """``*Emails (300):* `a@a.example`, … and 290 more``: the first ``limit``, in order."""
    items = request.items
    shown = fitting([code(item.email, 160) for item in items[:limit]], LIST_CHARS)
    return f"*Emails ({len(items)}):* " + listed(shown, len(items), "")


def batch_message(
    request: VerificationRequest, required: int = 1, now: datetime | None = None
) -> tuple[str, Blocks]:
    """Fallback text and blocks for a bulk request's message, in whatever state it is.
    ``required``: APPROVALS_REQUIRED, for a request without a rule; ``now``: the renderer's
    clock, for the time left while it runs (none without)."""
    n = len(request.items)
    summary = (
        f"*Bulk email verification request* from {user(request.requester)}\n"
        f"*Action:* {operation_title(request.operation)} for each email\n"
        f"*Reason:* {esc(clip(request.reason, 1200))}\n"
        f"*Expires:* {when(request.expires_at)}"
    )
    if (rule := batch_rule_line(request)) is not None:
        summary += f"\n{rule}"
    blocks: Blocks = [
        header(f"Bulk request: {operation_words(request.operation)} for {plural(n, 'email')}"),
        section(summary),
        section(domains_text(request)),
        section(emails_text(request)),
        section(batch_state_line(request, required, now)),
    ]
    progress = progress_of(request)
    # While it runs (and was not stopped yet), the requester's Cancel stops the rest.
    stoppable = request.state is State.EXECUTING and progress.queued > 0
    if request.state is State.PENDING:
        blocks.append(batch_decision_buttons(request, cancel=True, decide=not by_rule(request)))
    elif stoppable and not is_stopping(request, progress):
        cancel = [batch_cancel_element(request)]
        blocks.append({"type": "actions", "block_id": ids.ACTIONS_BLOCK, "elements": cancel})
    footer = f"Bulk request `{esc(request.id)}` · state: {request.state.value}"
    if request.rule is not None and request.rule.policy_hash:
        footer += f" · policy `{esc(request.rule.policy_hash)}`"
    footer += f" · every email: `python -m bot audit --request {esc(request.id)}`"
    blocks.append(context(footer))
    text = (
        f"Bulk email verification request from {user(request.requester)} to "
        f"{operation_words(request.operation)} for {plural(n, 'email')}: {request.state.value}"
    )
    return clip(text, FALLBACK_CHARS), blocks


def batch_decision_buttons(
    request: VerificationRequest,
    block_id: str = ids.ACTIONS_BLOCK,
    *,
    cancel: bool = False,
    decide: bool = True,
) -> dict[str, Any]:
    """Approve (with its confirmation) and Reject for a pending bulk request, and with
    ``cancel`` the requester's Cancel; without ``decide`` only Cancel (its rule approves it).
    The same action ids and values (the request id) as a single request's."""
    n = len(request.items)
    domains = len(domains_of(request))
    if request.operation is Operation.RESEND:
        title = f"Resend {plural(n, 'verification email')}?"
        does = (
            f"The provider will send the verification email again for the domain of each of "
            f"the {plural(n, 'email')} ({plural(domains, 'domain')}), at its pace; each customer "
            "still has to click its link."
        )
    else:
        title = f"Clear {plural(n, 'verification')}?"
        does = (
            f"The provider will clear the verification for each of the {plural(n, 'email')} "
            f"({plural(domains, 'domain')}), at its pace, and notify their clients. This cannot "
            "be undone."
        )
    decisions = [
        {
            "type": "button",
            "action_id": ids.APPROVE_ACTION,
            "text": plain("Approve"),
            "style": "primary",
            "value": request.id,
            "confirm": {
                "title": plain(title, 100),
                "text": {"type": "mrkdwn", "text": clip(does, 300)},
                "confirm": plain("Approve", 30),
                "deny": plain("Cancel", 30),
                "style": "primary",
            },
        },
        {
            "type": "button",
            "action_id": ids.REJECT_ACTION,
            "text": plain("Reject"),
            "style": "danger",
            "value": request.id,
        },
    ]
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            *(decisions if decide else []),
            *([batch_cancel_element(request)] if cancel else []),
        ],
    }


def batch_cancel_element(request: VerificationRequest) -> dict[str, Any]:
    """The requester's Cancel: before approval it cancels the request; during the run it stops
    the emails not started (those being called end as their calls do)."""
    running = request.state is State.EXECUTING
    if running:
        queued = progress_of(request).queued
        title, label = "Stop this bulk request?", "Cancel the rest"
        text = (
            f"Only the person who asked for it can stop it. The {plural(queued, 'email')} not "
            "started yet will not be called; those being called now end as their calls do."
        )
    else:
        title, label = "Cancel this request?", "Cancel request"
        text = (
            "Only the person who asked for it can cancel it. Nobody will be able to approve "
            f"the request for {emails_words(request)} any more."
        )
    return {
        "type": "button",
        "action_id": ids.CANCEL_ACTION,
        "text": plain(label),
        "value": request.id,
        "confirm": {
            "title": plain(title, 100),
            "text": {"type": "mrkdwn", "text": clip(text, 300)},
            "confirm": plain(label, 30),
            "deny": plain("Keep it", 30),
        },
    }
