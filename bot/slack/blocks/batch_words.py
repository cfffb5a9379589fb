"""A bulk request in words, where it is listed beside single requests: the Home tab, the
answer to /verify-email status, the history beside a request. A bulk request has no one email
(``request.email`` raises for it): it is named by its count (``Bulk: confirm 300 emails``),
its state by its items' progress (``212 of 300 done: 205 cleared, 4 failed, 3 unknown``), and
an email in it by that email's item.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from bot.domain.batch import Progress, domains_of, is_batch, item_for, progress_of
from bot.domain.model import History, Item, Operation, State, VerificationRequest
from bot.slack.blocks.provider import error_summary
from bot.slack.blocks.text import (
    approvals_line,
    by_rule,
    code,
    deciders,
    esc,
    mentions,
    minutes,
    quorum,
)

# What a bulk request does to each email, as its title says it.
BULK_VERBS = {Operation.CONFIRM: "confirm", Operation.RESEND: "resend"}
# What a succeeded item came to, by operation.
DONE_WORDS = {Operation.CONFIRM: "cleared", Operation.RESEND: "resent"}
# How many domains a Home row names before "and N more".
DOMAINS_SHOWN = 3
# How many bulk requests the history beside a request names before "and N more".
BATCHES_SHOWN = 3


def batch_title(request: VerificationRequest) -> str:
    """``Bulk: confirm 300 emails``."""
    n = len(request.items)
    return f"Bulk: {BULK_VERBS[request.operation]} {n} email{'' if n == 1 else 's'}"


def domains_words(request: VerificationRequest, shown: int = DOMAINS_SHOWN) -> str:
    """``example.com (200), acme.io (90) and 4 more domains``: the most frequent first."""
    domains = domains_of(request)
    words = ", ".join(f"`{esc(d)}` ({n})" for d, n in domains[:shown])
    rest = len(domains) - min(len(domains), shown)
    return words + (f" and {rest} more domain{'' if rest == 1 else 's'}" if rest else "")


def eta_words(seconds: float) -> str:
    """``about 40 s left``, ``about 3 min left``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    return f"about {minutes(seconds)} left"


def progress_words(request: VerificationRequest, now: datetime | None = None) -> str:
    """``212 of 300 done: 205 cleared, 4 failed, 3 unknown; about 40 s left`` (the time left
    with ``now``, while it runs and once something is done to measure by)."""
    progress = progress_of(request, now)
    line = f"{progress.done} of {progress.total} done"
    counts = _counts(progress, request.operation)
    if counts:
        line += ": " + ", ".join(counts)
    if progress.eta_seconds is not None:
        line += f"; {eta_words(progress.eta_seconds)}"
    return line


def _counts(progress: Progress, operation: Operation) -> list[str]:
    return [
        f"{n} {what}"
        for n, what in (
            (progress.succeeded, DONE_WORDS[operation]),
            (progress.failed, "failed"),
            (progress.unknown, "unknown"),
            (progress.cancelled, "cancelled"),
            (progress.resolved, "resolved"),
        )
        if n
    ]


def _ran(request: VerificationRequest) -> bool:
    """Whether any of its items was run (or is running)."""
    return any(
        item.state
        in (State.EXECUTING, State.SUCCEEDED, State.FAILED, State.UNKNOWN, State.RESOLVED)
        for item in request.items
    )


def batch_state_line(
    request: VerificationRequest, required: int, now: datetime | None = None
) -> str:
    """A bulk request's state in one line (the Home tab's ``state_line`` for it): waiting for
    approval, or running with its progress, or how its items ended. ``required``:
    APPROVALS_REQUIRED, for a request without a rule."""
    required = quorum(request, required)
    by = deciders(request, "someone")
    progress = progress_words(request, now)
    match request.state:
        case State.PENDING:
            if by_rule(request) and request.rule is not None:
                return f":robot_face: *Approved by rule {esc(request.rule.name)}*: it runs soon"
            if required > 1:
                line = f":hourglass: *Waiting for approval*: {approvals_line(request, required)}"
            else:
                line = ":hourglass: *Waiting for approval* by an approver other than the requester"
            rule = request.rule
            if rule is not None and request.escalated_at is not None and rule.escalate_to:
                line += f"; escalated to {mentions(rule.escalate_to)}, who may approve it too"
            return line
        case State.EXECUTING:
            return f":arrows_counterclockwise: *Running*, approved by {by}: {progress}"
        case State.SUCCEEDED:
            return f":white_check_mark: *Done*, approved by {by}: {progress}"
        case State.FAILED:
            return f":x: *Done, some failed*, approved by {by}: {progress}"
        case State.UNKNOWN:
            return (
                f":grey_question: *Done, some outcomes unknown*, approved by {by}: {progress}. "
                "In the thread an approver can retry the unknown ones or close them as resolved."
            )
        case State.REJECTED:
            note = f": {esc(request.decision_note)}" if request.decision_note else ""
            return f":no_entry_sign: *Rejected by {by}*{note}"
        case State.EXPIRED:
            return ":hourglass_flowing_sand: *Expired* without a decision; ask again if needed"
        case State.CANCELLED:
            if _ran(request):
                return f":leftwards_arrow_with_hook: *Stopped by {by}* during its run: {progress}"
            return f":leftwards_arrow_with_hook: *Cancelled by {by}*, who asked for it"
        case State.RESOLVED:
            return f":ballot_box_with_check: *Resolved by {by}* after unknown outcomes: {progress}"
    assert_never(request.state)


def item_words(request: VerificationRequest, item: Item) -> str:
    """One email's own state in its bulk request, with the provider's answer where it
    failed: ``queued``, ``cleared``, ``failed (`HTTP 400 BAD_EMAIL: …`)``."""
    match item.state:
        case State.PENDING:
            return "waiting for approval" if request.state is State.PENDING else "queued"
        case State.EXECUTING:
            return "running (the provider is being called)"
        case State.SUCCEEDED:
            return DONE_WORDS[request.operation]
        case State.FAILED:
            return f"failed ({code(error_summary(item.outcome), 300)})"
        case State.UNKNOWN:
            return "unknown (the provider may or may not have acted)"
        case _:
            return item.state.value


def in_batches(history: History) -> str:
    """The bulk requests among ``history``'s (which counts single requests only), newest
    first: ``in a bulk request of 300 (cleared), in a bulk request of 12 and 2 more``; each
    with the history's email's own state where it was one of its emails; "" when none."""
    batches = [r for r in history.requests if is_batch(r)]
    shown = []
    for request in batches[:BATCHES_SHOWN]:
        words = f"in a bulk request of {len(request.items)}"
        item = item_for(request, history.email)
        if item is not None:
            words += f" ({item_words(request, item)})"
        shown.append(words)
    rest = len(batches) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest else "")
