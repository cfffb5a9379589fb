"""Modal submissions: the request form, the reject form and the resolve form.

Each runs its read-only checks, acks (``Submission.ack``) before anything that may wait on
Slack, then decides; the request id, a refusal's words and where they go (a field error before
the ack, a DM after) are ``bot.slack.listeners.interactions.form``'s.
"""

from __future__ import annotations

from bot.domain.inputs import InvalidInput, clean_note, validate_email, validate_reason
from bot.domain.refusals import Refusal, Refused
from bot.slack import ids
from bot.slack.listeners.interactions import Submission


def request_submitted(form: Submission) -> None:
    errors: dict[str, str] = {}
    email = reason = ""
    try:
        email = validate_email(form.value(ids.EMAIL_BLOCK, ids.EMAIL_INPUT))
    except InvalidInput as exc:
        errors[ids.EMAIL_BLOCK] = str(exc)
    try:
        reason = validate_reason(form.value(ids.REASON_BLOCK, ids.REASON_INPUT))
    except InvalidInput as exc:
        errors[ids.REASON_BLOCK] = str(exc)
    if errors:
        form.field_errors(errors)
        return
    # Read-only: only local work and one store read come before the ack (Slack waits 3 s).
    form.approvals.askable(email)
    # The role check may ask Slack about a user group, so it comes after the ack.
    form.ack()
    request = form.approvals.submit(email, reason, form.user)
    # Posted already (submit delivers): now the provider's view, shown beside it once read.
    form.approvals.look_up(request.id)


def reject_submitted(form: Submission) -> None:
    form.approvals.rejectable(form.request_id)  # read-only, before the ack
    form.ack()  # before the role check, which may ask Slack about a user group
    note = form.value(ids.REJECT_REASON_BLOCK, ids.REJECT_REASON_INPUT)
    form.approvals.reject(form.request_id, form.user, note)


def resolve_submitted(form: Submission) -> None:
    form.approvals.resolvable(form.request_id, form.user)  # read-only, before the ack
    note = form.value(ids.RESOLVE_NOTE_BLOCK, ids.RESOLVE_NOTE_INPUT)
    if not clean_note(note):
        raise Refused(Refusal.NOTE_REQUIRED)
    form.ack()  # before the role check, which may ask Slack about a user group
    form.approvals.resolve(form.request_id, form.user, note)
