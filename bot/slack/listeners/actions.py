"""The buttons: Approve and Reject on a request message; Retry, Check provider and Resolved on
an unknown outcome; the requester's Cancel on the request message (and on the DMs that
offered it before it moved there).

Each is its decision, and the answer it gives when the decision goes ahead; the ack, the
request id and a refusal's words are ``bot.slack.listeners.interactions.button``'s.
"""

from __future__ import annotations

from bot.domain.model import State
from bot.slack import blocks, ids
from bot.slack.listeners.interactions import Click


def approve_clicked(click: Click) -> None:
    request = click.approvals.approve(click.request_id, click.user)
    if request.state is State.PENDING:  # counted; the quorum is not complete yet
        required = click.approvals.required(request)  # its rule's, else APPROVALS_REQUIRED
        click.tell(blocks.approval_recorded_text(request, required))


def retry_clicked(click: Click) -> None:
    retried = click.approvals.retry(click.request_id, click.user)
    # The reply that offered Retry no longer does: say who retried instead.
    text, reply = blocks.result_reply(
        retried.before, retry=False, note=f"Retried by {blocks.user(click.user)}; see below."
    )
    click.replace(text, reply)


def cancel_clicked(click: Click) -> None:
    cancelled = click.approvals.cancel(click.request_id, click.user)
    actions = click.body.get("actions") or [{}]
    if actions[0].get("block_id") == ids.CANCEL_BLOCK:
        # A DM that offered Cancel (posted before it moved to the request message) says
        # what happened instead.
        click.replace(blocks.cancelled_dm(cancelled))
        return
    # The request message shows it once updated (by the outbox); the requester hears it here.
    click.tell(blocks.cancelled_dm(cancelled))


def reject_clicked(click: Click) -> None:
    """Reject: opens the form asking why (the request is rejected when it is submitted)."""
    request = click.approvals.start_rejection(click.request_id, click.user)
    click.open_form(
        blocks.reject_modal(request),
        "reject form",
        "I could not open the reject form ({error}). Please click Reject again.",
    )


def check_clicked(click: Click) -> None:
    """Check provider: the reading is posted in the thread for everyone (the channel is the
    record); only a refusal is private."""
    click.approvals.check_provider(click.request_id, click.user)


def resolve_clicked(click: Click) -> None:
    """Resolved: opens the form asking why (the request is closed when it is submitted)."""
    request = click.approvals.start_resolution(click.request_id, click.user)
    click.open_form(
        blocks.resolve_modal(request),
        "resolve form",
        "I could not open the form ({error}). Please click Resolved again.",
    )
