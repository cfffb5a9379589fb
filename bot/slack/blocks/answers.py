"""The private (ephemeral) answers to a person: /verify-email help and status, an address that
cannot be used, an open request for the same address, and an approval that does not complete
the quorum yet. What the service refused is in ``refusals``. An email inside a bulk request is
answered with that request (its count, its id) and the email's own item."""

from __future__ import annotations

from bot.domain.batch import is_batch, item_for
from bot.domain.model import VerificationRequest
from bot.domain.service import StatusReport
from bot.slack.blocks.batch_words import item_words
from bot.slack.blocks.text import (
    approvals_line,
    clip,
    day,
    deciders,
    email_forms,
    esc,
    operation_words,
    quorum,
    user,
    visible,
    when,
)

HELP_TEXT = (
    "*/verify-email* clears a stuck email verification at the provider, or has it send the "
    "verification email again, once an approver agrees (or the rules need nobody to).\n"
    "• `/verify-email alice@example.com` opens the request form for that address\n"
    "• `/verify-email resend alice@example.com` opens it to resend the verification email\n"
    "• `/verify-email alice@example.com TICKET-123 customer locked out` also fills in the reason\n"
    "• `/verify-email` opens an empty form\n"
    "• `/verify-email bulk` opens the bulk form: many emails under one approval, pasted or "
    "attached as a .txt or .csv file\n"
    "• `/verify-email status alice@example.com` shows its open request and last outcomes\n"
    "• `/verify-email help` shows this\n"
    "The request is posted for approval; you are told where, and told again when it is done."
)


def invalid_email_text(raw: str, problem: str) -> str:
    return (
        f"`{esc(visible(clip(raw, 100)))}` is not an email address I can use: {esc(problem)}\n"
        "Usage: `/verify-email alice@example.com` (or `/verify-email help`)."
    )


def status_text(report: StatusReport, permalink: str | None) -> str:
    """The private answer to /verify-email status EMAIL."""
    lines = [f"*Requests for {email_forms(report.email)}*"]
    if report.open is not None and is_batch(report.open):
        lines.append(_open_batch_line(report.email, report.open, permalink))
    elif report.open is not None:
        where = f"<{permalink}|the open request>" if permalink else "The open request"
        lines.append(
            f"{where} is {report.open.state.value} (to "
            f"{operation_words(report.open.operation)}), asked by {user(report.open.requester)} "
            f"{when(report.open.created_at)}."
        )
    else:
        lines.append("No open request: a new one can be asked for.")
    open_id = report.open.id if report.open is not None else None
    decided = [r for r in report.recent if r.id != open_id]
    if decided:
        lines.append(f"Last outcomes (last {report.days} days):")
        lines.extend(
            f"• {operation_words(r.operation)}: {_outcome_words(report.email, r)} "
            f"{day(r.updated_at)}, asked by {user(r.requester)}"
            + (f", decided by {deciders(r, 'someone')}" if r.decided_by else "")
            for r in decided
        )
    else:
        lines.append(f"No other request in the last {report.days} days.")
    return "\n".join(lines)


def _open_batch_line(email: str, request: VerificationRequest, permalink: str | None) -> str:
    """``The open request is bulk request `…`: this email is one of its 300 emails (to …),
    asked by @ana …; the request is executing; this email: queued.``"""
    where = f"<{permalink}|the open request>" if permalink else "The open request"
    item = item_for(request, email)
    mine = item_words(request, item) if item is not None else "not found in it"
    return (
        f"{where} is bulk request `{esc(request.id)}`: this email is one of its "
        f"{len(request.items)} emails (to {operation_words(request.operation)}), asked by "
        f"{user(request.requester)} {when(request.created_at)}. The request is "
        f"{request.state.value}; this email: {mine}."
    )


def _outcome_words(email: str, request: VerificationRequest) -> str:
    """A request's state in the status answer's list; for a bulk request, the email's own
    (``cleared in bulk request `…` of 300``)."""
    if not is_batch(request):
        return request.state.value
    item = item_for(request, email)
    mine = item_words(request, item) if item is not None else request.state.value
    return f"{mine} in bulk request `{esc(request.id)}` of {len(request.items)} emails"


def open_request_text(existing: VerificationRequest, permalink: str | None) -> str:
    where = f"<{permalink}|the open request>" if permalink else "the open request"
    if is_batch(existing):
        return (
            f"This address is in an open bulk request of {len(existing.items)} emails (to "
            f"{operation_words(existing.operation)}, {existing.state.value}, asked by "
            f"{user(existing.requester)}). See {where}; a new one can be made once it is done."
        )
    return (
        f"{email_forms(existing.email)} already has an open request (to "
        f"{operation_words(existing.operation)}, {existing.state.value}, asked by "
        f"{user(existing.requester)}). See {where}; a new one can be made once it is done."
    )


def approval_recorded_text(request: VerificationRequest, required: int) -> str:
    """The private answer to an approval that does not complete the quorum yet (the
    request's rule's quorum; ``required`` for a request without one)."""
    required = quorum(request, required)
    return (
        f":ballot_box_with_check: Your approval is recorded: {approvals_line(request, required)}. "
        "The provider is called when the last one is in."
    )
