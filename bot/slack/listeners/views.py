"""Modal submissions: the request form, the reject form and the resolve form.

Each runs its read-only checks, acks (``Submission.ack``) before anything that may wait on
Slack, then decides; the request id, a refusal's words and where they go (a field error before
the ack, a DM after) are ``bot.slack.listeners.interactions.form``'s.
"""

from __future__ import annotations

from bot.domain.inputs import (
    InvalidInput,
    check_reason,
    clean_note,
    validate_email,
    validate_reason,
)
from bot.domain.model import Operation
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks, ids
from bot.slack.listeners.interactions import Submission
from bot.slack.listeners.parsing import has_field, operation_of, selected_value

CHOOSE_OPERATION = (
    "Choose what should happen: clear the stuck verification, or resend the verification email."
)


def request_submitted(form: Submission) -> None:
    """The request form: its fields checked (the operation is untrusted: only the two the form
    offers), then, before the ack, whether the rules allow the operation for the address and
    what they ask of the reason (field errors, the form stays open); then the request."""
    errors: dict[str, str] = {}
    email = reason = ""
    operation: Operation | None = Operation.CONFIRM  # a form opened before it asked
    if has_field(form.view, ids.OPERATION_BLOCK):
        operation = operation_of(
            selected_value(form.view, ids.OPERATION_BLOCK, ids.OPERATION_INPUT)
        )
        if operation is None:
            errors[ids.OPERATION_BLOCK] = CHOOSE_OPERATION
    try:
        email = validate_email(form.value(ids.EMAIL_BLOCK, ids.EMAIL_INPUT))
    except InvalidInput as exc:
        errors[ids.EMAIL_BLOCK] = str(exc)
    try:
        reason = validate_reason(form.value(ids.REASON_BLOCK, ids.REASON_INPUT))
    except InvalidInput as exc:
        errors[ids.REASON_BLOCK] = str(exc)
    if errors or operation is None:
        form.field_errors(errors)
        return
    # Read-only: local work, one store read and the rules (whose group lookups are cached: the
    # form was opened after the command asked them) come before the ack (Slack waits 3 s).
    form.approvals.askable(email)
    try:
        rule = form.approvals.rule_for(email, form.user, operation)
    except Refused as refused:
        if refused.code is not Refusal.OPERATION_NOT_ALLOWED:
            raise
        form.field_errors({ids.OPERATION_BLOCK: blocks.refusal_words(refused, mentions=False)})
        return
    if rule is not None and rule.reason_pattern is not None:
        try:
            check_reason(reason, rule.reason_pattern, rule.name)
        except InvalidInput as exc:
            form.field_errors({ids.REASON_BLOCK: str(exc)})
            return
    # The role check may ask Slack about a user group, so it comes after the ack.
    form.ack()
    request = form.approvals.submit(email, reason, form.user, operation)
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
