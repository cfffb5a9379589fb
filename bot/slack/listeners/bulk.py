"""The bulk form's submission: the list read (pasted and attached), the request asked for.

In order, all before the ack so that every problem is a field error and the form stays open:

1. the operation and the reason, as the request form checks them;
2. the pasted text and the attached file (``bot.slack.list_file``: files.info and the download
   with the bot token, within FILE_BUDGET), each read by ``bot.domain.bulk_input`` (a refused
   line, nothing usable or more than BULK_MAX: the field error says what and where, through
   ``EmailList.summary``), then the two combined (duplicates across them collapse);
3. ``submit_bulk`` (the role, the rules per email, the open requests elsewhere; then the
   request is stored and posted): NotAllowed, NothingToAsk, InvalidInput and Refused become
   field errors.

Slack closes the form with an error of its own when no answer comes within 3 seconds. So the
whole submission is bounded: the file gets FILE_BUDGET, and ``submit_bulk`` runs on the
listener pool while this waits for it until ACK_BUDGET after the submission arrived. If it has
not answered by then (a slow store or Slack), the form is closed anyway and what the service
answers is told by DM instead (the receipt, or why nothing was asked).

On success the form closes and the requester gets a receipt by DM: how many emails were asked
for, the duplicates collapsed, and the emails left out because each has an open request
elsewhere (the first few with that request's id, and how many more). The request's own "posted"
DM (with its link) comes from the outbox, as a single request's does.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass

from bot.domain.bulk import BulkSubmitted, NotAllowed, NothingToAsk
from bot.domain.bulk_input import EmailList, decode_list_file, read_email_list
from bot.domain.inputs import InvalidInput, validate_reason
from bot.domain.model import Operation
from bot.domain.refusals import Refused
from bot.slack import blocks, ids
from bot.slack.blocks import bulk as bulk_blocks
from bot.slack.deps import SlackDeps
from bot.slack.list_file import ListFileError, fetch_list_file
from bot.slack.listeners.interactions import Submission, link_of, try_dm
from bot.slack.listeners.parsing import files_of, has_field, operation_of, selected_value
from bot.slack.listeners.views import CHOOSE_OPERATION

log = logging.getLogger(__name__)

# Seconds from the submission's arrival: for files.info and the download of an attached list
# (a stalled read may add as much again: see bot.slack.list_file), and until the form is
# answered whatever ``submit_bulk`` has not said yet. Slack waits 3 s for the answer.
FILE_BUDGET = 1.2
ACK_BUDGET = 2.5

NOTHING_GIVEN = (
    "Paste the emails here, one a line (or separated by commas or spaces), or attach a .txt or "
    ".csv file below."
)
ONE_FILE = "Attach one file: the form reads one list a submission."


@dataclass(frozen=True)
class BulkList:
    """The emails to ask for, and where their field errors go."""

    emails: tuple[str, ...]
    duplicates: int  # left out of the list as the same address as an earlier one
    field: str  # the block the list's problems are shown under (the paste's, else the file's)


def bulk_submitted(form: Submission) -> None:
    """The bulk form: see the module's doc."""
    started = time.monotonic()
    errors: dict[str, str] = {}
    operation: Operation | None = Operation.CONFIRM
    if has_field(form.view, ids.OPERATION_BLOCK):
        operation = operation_of(
            selected_value(form.view, ids.OPERATION_BLOCK, ids.OPERATION_INPUT)
        )
        if operation is None:
            errors[ids.OPERATION_BLOCK] = CHOOSE_OPERATION
    reason = ""
    try:
        reason = validate_reason(form.value(ids.REASON_BLOCK, ids.REASON_INPUT))
    except InvalidInput as exc:
        errors[ids.REASON_BLOCK] = str(exc)
    listed = read_lists(form, deadline=started + FILE_BUDGET, errors=errors)
    if errors or listed is None or operation is None:
        form.field_errors(errors)
        return
    ask(form, listed, reason, operation, answer_by=started + ACK_BUDGET)


def read_lists(form: Submission, *, deadline: float, errors: dict[str, str]) -> BulkList | None:
    """The pasted list and the attached one, read and combined; None (with ``errors`` said)
    when either cannot be used, or neither was given."""
    limit = form.approvals.policy.bulk_max
    text = form.value(ids.BULK_LIST_BLOCK, ids.BULK_LIST_INPUT)
    files = files_of(form.view, ids.BULK_FILE_BLOCK, ids.BULK_FILE_INPUT)
    read: list[EmailList] = []
    if text.strip():
        pasted = read_email_list(text, limit=limit, slack_markup=True)
        if not pasted.usable:
            errors[ids.BULK_LIST_BLOCK] = bulk_blocks.field_error(pasted.summary())
        read.append(pasted)
    if len(files) > 1:
        errors[ids.BULK_FILE_BLOCK] = ONE_FILE
    elif files:
        filed = read_file(form.deps, files[0], limit=limit, deadline=deadline, errors=errors)
        if filed is not None:
            read.append(filed)
    if not text.strip() and not files:
        errors[ids.BULK_LIST_BLOCK] = NOTHING_GIVEN
    if errors:
        return None
    field = ids.BULK_LIST_BLOCK if text.strip() else ids.BULK_FILE_BLOCK
    if len(read) == 1:
        return BulkList(read[0].emails, read[0].duplicates, field)
    # Both: the addresses of each (valid, normalised) read again as one list, so that the same
    # address in both counts once (as the store compares them) and the limit is the whole's.
    both = read_email_list(
        "\n".join(e for one in read for e in one.emails), limit=limit, slack_markup=False
    )
    if not both.usable:
        errors[field] = bulk_blocks.field_error(
            f"The pasted emails and the file's together: {both.summary()}"
        )
        return None
    return BulkList(both.emails, both.duplicates + sum(one.duplicates for one in read), field)


def read_file(
    deps: SlackDeps,
    attached: dict[str, object],
    *,
    limit: int,
    deadline: float,
    errors: dict[str, str],
) -> EmailList | None:
    """The attached list read (None, with its field error said, when it cannot be)."""
    try:
        got = fetch_list_file(
            attached,
            token=deps.client.token or "",
            api_url=deps.client.base_url,
            deadline=deadline,
        )
        text = decode_list_file(got.data, got.name)
    except (ListFileError, InvalidInput) as exc:
        errors[ids.BULK_FILE_BLOCK] = bulk_blocks.field_error(str(exc))
        return None
    filed = read_email_list(text, limit=limit, slack_markup=False)
    if not filed.usable:
        name = got.name.strip() or "The file"
        errors[ids.BULK_FILE_BLOCK] = bulk_blocks.field_error(f"{name}: {filed.summary()}")
        return None
    return filed


def ask(
    form: Submission, listed: BulkList, reason: str, operation: Operation, *, answer_by: float
) -> None:
    """``submit_bulk`` on the listener pool, waited for until ``answer_by``: its refusals are
    field errors; its request closes the form with a receipt. Not answered by then: the form
    closes, and what it answers is told by DM."""
    deps, user = form.deps, form.user
    asked: Future[BulkSubmitted] = deps.executor.submit(
        form.approvals.submit_bulk, list(listed.emails), reason, user, operation
    )
    wait([asked], timeout=max(0.0, answer_by - time.monotonic()))
    if not asked.done():
        log.warning("The bulk form of %s closed before its request was made", user)
        form.ack()
        asked.add_done_callback(
            lambda done: tell_later(deps, user, done, listed, operation=operation)
        )
        return
    try:
        submitted = asked.result()
    except NotAllowed as exc:
        total = len(listed.emails)
        form.field_errors(
            {listed.field: bulk_blocks.not_allowed_error(exc.emails, total, operation)}
        )
        return
    except NothingToAsk as exc:
        form.field_errors({listed.field: bulk_blocks.nothing_to_ask_error(exc.left_out)})
        return
    except InvalidInput as exc:
        form.field_errors({field_of(exc, listed.field): bulk_blocks.field_error(str(exc))})
        return
    # A Refused goes on to interactions.form: a field error under the list, as the request
    # form's refusals are.
    form.ack()
    receipt = bulk_blocks.bulk_asked_text(
        submitted.request, submitted.left_out, duplicates=listed.duplicates
    )
    try_dm(deps, user, receipt)


def field_of(exc: InvalidInput, list_field: str) -> str:
    """The field an InvalidInput from ``submit_bulk`` is about: the reason (a rule's
    reason_pattern, or the reason itself), else the list (an address, the count)."""
    return ids.REASON_BLOCK if "reason" in str(exc).lower() else list_field


def tell_later(
    deps: SlackDeps,
    user: str,
    done: Future[BulkSubmitted],
    listed: BulkList,
    *,
    operation: Operation,
) -> None:
    """What ``submit_bulk`` answered after the form closed, by DM."""
    try:
        submitted = done.result()
    except NotAllowed as exc:
        why = bulk_blocks.not_allowed_error(exc.emails, len(listed.emails), operation)
    except NothingToAsk as exc:
        why = bulk_blocks.nothing_to_ask_error(exc.left_out)
    except InvalidInput as exc:
        why = str(exc)
    except Refused as refused:
        try_dm(deps, user, blocks.refusal_text(refused, link=link_of(deps, refused)))
        return
    except Exception:
        log.exception("The bulk request of %s failed after its form closed", user)
        return
    else:
        receipt = bulk_blocks.bulk_asked_text(
            submitted.request, submitted.left_out, duplicates=listed.duplicates
        )
        try_dm(deps, user, receipt)
        return
    try_dm(deps, user, bulk_blocks.bulk_not_asked_text(why))
