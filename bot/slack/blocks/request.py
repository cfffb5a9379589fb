"""The request message in APPROVAL_CHANNEL: who asks for what (clear the stuck verification, or
resend the verification email) for which email and why, the rule that decides it and who may
approve, its state in one line, Approve and Reject (and the requester's Cancel) while it is
pending, the provider's view and earlier requests for the same email or domain. The Home tab
shows the same state line and buttons for each request."""

from __future__ import annotations

from typing import Any, assert_never

from bot.domain.batch import is_batch
from bot.domain.model import History, Operation, State, VerificationRequest
from bot.domain.outcomes import Cleared, NotResendable, Resent
from bot.domain.views import ProviderView
from bot.slack import ids
from bot.slack.blocks.batch import (
    batch_cancel_element,
    batch_decision_buttons,
    batch_message,
    batch_state_line,
    shown_as_batch,
)
from bot.slack.blocks.batch_words import in_batches
from bot.slack.blocks.provider import error_summary, mask_emails, provider_line, provider_time
from bot.slack.blocks.text import (
    Blocks,
    approvals_line,
    by_rule,
    clip,
    code,
    context,
    day,
    deciders,
    email_forms,
    esc,
    mentions,
    operation_title,
    operation_words,
    plain,
    quorum,
    rule_line,
    section,
    user,
    when,
)


def request_message(
    request: VerificationRequest, required: int = 1, history: History | None = None
) -> tuple[str, Blocks]:
    """Fallback text and blocks for the request message, in whatever state it is.
    ``required``: APPROVALS_REQUIRED, for a request without a rule (the rule's own quorum
    otherwise; above 1, the message says who has approved so far); ``history``: earlier
    requests for the same email or domain, shown so a repeat stands out. A bulk request is
    shown by ``batch_message`` (without a history: it has many emails)."""
    if shown_as_batch(request):
        return batch_message(request, required)
    via = " through a Workflow Builder step" if request.workflow is not None else ""
    summary = (
        f"*Email verification request* from {user(request.requester)}{via}\n"
        f"*Action:* {operation_title(request.operation)}\n"
        f"*Email:* {email_forms(request.email)}\n"
        f"*Domain:* {email_forms(request.domain)}\n"
        f"*Reason:* {esc(request.reason)}\n"
        f"*Expires:* {when(request.expires_at)}"
    )
    if (rule := rule_line(request)) is not None:
        summary += f"\n{rule}"
    blocks: Blocks = [section(summary), section(state_line(request, required))]
    if request.state is State.PENDING:
        # A request its rule approves asks nobody: only its requester's Cancel.
        blocks.append(decision_buttons(request, cancel=True, decide=not by_rule(request)))
    if request.view is not None:
        shown = provider_line(request.view)
        # The provider's line says when it can resend; beside a resend, say when it cannot
        # (or does not say) too.
        if request.operation is Operation.RESEND and not _can_resend(request.view):
            shown += f"\n{resend_line(request.view)}"
        blocks.append(context(shown))
    if request.readback is not None and request.state is not State.PENDING:
        blocks.append(context(provider_line(request.readback, lead="Provider after the call")))
    if history is not None:
        blocks.append(context(history_line(history)))
    footer = f"Request `{esc(request.id)}` · state: {request.state.value}"
    if request.rule is not None and request.rule.policy_hash:
        footer += f" · policy `{esc(request.rule.policy_hash)}`"
    blocks.append(context(footer))
    text = (
        f"Email verification request from {user(request.requester)} to "
        f"{operation_words(request.operation)} for {esc(request.email)}: {request.state.value}"
    )
    return text, blocks


def _can_resend(view: object) -> bool:
    return isinstance(view, ProviderView) and view.can_resend is True and not view.verified


def resend_line(view: object) -> str:
    """Whether the provider can resend the verification email, from its view of the domain:
    shown beside a resend request."""
    if not isinstance(view, ProviderView):
        return "Whether the provider can resend the email is not known (its view was not read)."
    if view.can_resend is True:
        return ":envelope: The provider can resend the verification email."
    if view.can_resend is False:
        why = code(mask_emails(view.resend_blocked), 400) if view.resend_blocked else "no reason"
        return f":no_entry_sign: The provider cannot resend the verification email: {why}"
    return "The provider's view does not say whether it can resend the email."


def state_line(request: VerificationRequest, required: int) -> str:
    """The request's state in one line (who approved, what the provider did): on the request
    message and on the request's row in the Home tab. ``required``: APPROVALS_REQUIRED, for a
    request without a rule (its rule's quorum otherwise). A bulk request's: ``batch_state_line``."""
    if shown_as_batch(request):
        return batch_state_line(request, required)
    required = quorum(request, required)
    by = deciders(request, "someone")
    outcome = request.outcome
    resend = request.operation is Operation.RESEND
    match request.state:
        case State.PENDING:
            if by_rule(request) and request.rule is not None:
                return (
                    f":robot_face: *Approved by rule {esc(request.rule.name)}*: it runs once "
                    "the provider's view is read; nobody needs to approve it"
                )
            if required > 1:
                line = (
                    f":hourglass: *Waiting for approval*: {approvals_line(request, required)}; "
                    "each by a different approver other than the requester"
                )
            else:
                line = ":hourglass: *Waiting for approval* by an approver other than the requester"
            rule = request.rule
            if rule is not None and request.escalated_at is not None and rule.escalate_to:
                line += f"; escalated to {mentions(rule.escalate_to)}, who may approve it too"
            return line
        case State.EXECUTING:
            return f":arrows_counterclockwise: *Approved by {by}*, calling the provider…"
        case State.SUCCEEDED:
            if isinstance(outcome, Resent) or resend:
                sent = outcome if isinstance(outcome, Resent) else None
                to = f" to {code(mask_emails(sent.recipient), 120)}" if sent else ""
                at = f" {provider_time(sent.sent_at)}" if sent and sent.sent_at else ""
                return f":white_check_mark: *Email resent*{to}{at}, approved by {by}"
            n = len(outcome.cleared_domains) if isinstance(outcome, Cleared) else 0
            return f":white_check_mark: *Cleared*, approved by {by} ({n} domain(s) cleared)"
        case State.FAILED:
            failed = "Resend failed" if resend else "Failed"
            return f":x: *{failed}*, approved by {by}: {code(error_summary(outcome), 400)}"
        case State.UNKNOWN:
            return (
                f":grey_question: *Outcome unknown*, approved by {by}: the provider may or may "
                "not have acted. In the thread an approver can check the provider, retry, or "
                "close it as resolved."
            )
        case State.REJECTED:
            if isinstance(outcome, NotResendable):
                return (
                    f":no_entry_sign: *Not resendable*: {code(mask_emails(outcome.reason), 600)} "
                    "Closed before approval; nothing was sent."
                )
            note = f": {esc(request.decision_note)}" if request.decision_note else ""
            return f":no_entry_sign: *Rejected by {by}*{note}"
        case State.EXPIRED:
            return ":hourglass_flowing_sand: *Expired* without a decision; ask again if needed"
        case State.CANCELLED:
            return f":leftwards_arrow_with_hook: *Cancelled by {by}*, who asked for it"
        case State.RESOLVED:
            note = f": {esc(request.decision_note)}" if request.decision_note else ""
            return (
                f":ballot_box_with_check: *Resolved by {by}* after an unknown outcome, without "
                f"a Retry{note}"
            )
    assert_never(request.state)


def decision_buttons(
    request: VerificationRequest,
    block_id: str = ids.ACTIONS_BLOCK,
    *,
    cancel: bool = False,
    decide: bool = True,
) -> dict[str, Any]:
    """Approve (with its confirmation) and Reject for a pending request, and with ``cancel``
    the requester's Cancel (the request message's: the service refuses it to anyone else);
    without ``decide`` only Cancel (a request its rule approves). ``block_id``: the channel
    message's own; the Home tab, showing several requests, gives each row its own
    (ids.for_request), as Slack refuses a view with a repeated block_id."""
    if shown_as_batch(request):
        return batch_decision_buttons(request, block_id, cancel=cancel, decide=decide)
    if request.operation is Operation.RESEND:
        title = "Resend the verification email?"
        does = (
            f"The provider will send the verification email for {email_forms(request.domain)} "
            "again; the customer still has to click its link."
        )
    else:
        title = "Clear this verification?"
        does = (
            f"The provider will clear the verification for {email_forms(request.email)} and "
            "notify its clients. This cannot be undone."
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
            *([cancel_element(request)] if cancel else []),
        ],
    }


def cancel_element(request: VerificationRequest) -> dict[str, Any]:
    """The requester's Cancel (with its confirmation): on the request message, beside Approve
    and Reject, and on the requester's Home tab."""
    if shown_as_batch(request):
        return batch_cancel_element(request)
    return {
        "type": "button",
        "action_id": ids.CANCEL_ACTION,
        "text": plain("Cancel request"),
        "value": request.id,
        "confirm": {
            "title": plain("Cancel this request?", 100),
            "text": {
                "type": "mrkdwn",
                "text": clip(
                    f"Only the person who asked for it can cancel it. Nobody will be able to "
                    f"approve the request for `{esc(request.email)}` any more.",
                    300,
                ),
            },
            "confirm": plain("Cancel request", 30),
            "deny": plain("Keep it", 30),
        },
    }


def history_line(history: History) -> str:
    """``cleared 2 times in the last 30 days, last by @ana on 2026-11-30; 1 rejected``. When
    there were more than it counts (``history.more``), it says so and what the counts cover:
    ``more than 20 in the last 30 days; of the latest 20: cleared 20 times, …``."""
    where = f"`{esc(history.email)}` or `{esc(history.domain)}`"
    if not history.requests:
        return f":mag: No earlier request for {where} in the last {history.days} days."
    parts = []
    period = f" in the last {history.days} days"
    if history.more:
        parts.append(f"more than {len(history.requests)}{period}")
        period = ""
    for operation, done in ((Operation.CONFIRM, "cleared"), (Operation.RESEND, "resent")):
        succeeded = [r for r in history.cleared if r.operation is operation and not is_batch(r)]
        if succeeded:
            last = succeeded[0]
            times = "once" if len(succeeded) == 1 else f"{len(succeeded)} times"
            parts.append(
                f"{done} {times}{period}, last by {deciders(last, 'someone')} on "
                f"{day(last.updated_at)}"
            )
            period = ""  # said once, by the first count
    others: dict[str, int] = {}
    for earlier in history.requests:
        if is_batch(earlier):
            continue  # counted below, as a batch
        if earlier.state is not State.SUCCEEDED:
            # A resend's other outcomes are told apart: "1 resend failed".
            resend = earlier.operation is Operation.RESEND
            what = ("resend " if resend else "") + earlier.state.value
            others[what] = others.get(what, 0) + 1
    parts.extend(f"{n} {state}" for state, n in sorted(others.items()))
    if batched := in_batches(history):
        parts.append(batched + period)
    if history.more:
        counted = "; ".join(parts[1:])
        return (
            f":mag: Earlier requests for {where}: {parts[0]}; "
            f"of the latest {len(history.requests)}: {counted}."
        )
    return f":mag: Earlier requests for {where}: " + "; ".join(parts) + "."
