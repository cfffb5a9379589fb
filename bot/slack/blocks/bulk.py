"""The bulk form (``/verify-email bulk``: a list of emails pasted or attached, the operation and
the reason) and what its submission answers: the field errors of a list the service refuses,
and the requester's receipt (how many emails were asked for, which were left out).

Field errors are plain text (Slack shows them as typed: no mrkdwn, no mentions); the receipt is
a DM in mrkdwn, every address in it escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.bulk_input import MAX_LIST_BYTES
from bot.domain.inputs import MAX_REASON_CHARS
from bot.domain.model import Operation, VerificationRequest
from bot.slack import ids
from bot.slack.blocks.modals import HINT_LIMIT, operation_option
from bot.slack.blocks.text import clip, code, context, esc, operation_words, plain, section

# Slack's cap on a plain_text_input's max_length: a longer list goes in a file.
PASTE_LIMIT = 3000
# Block Kit's file_input: the list's two file types (Slack's names), and one file.
LIST_FILETYPES = ("txt", "csv")
# A field error is one short paragraph under the field (Slack documents no limit; keep it short).
FIELD_ERROR_LIMIT = 1000
# How many emails a field error names before "and N more"; and the receipt (a DM).
ERROR_SHOWN = 3
RECEIPT_SHOWN = 10

WHAT_BULK_DOES = (
    "One request for the whole list, approved once (bulk requests may need more approvals "
    "than one email). Once approved, the provider is called for each email at its own pace; "
    "the request message shows the progress and its thread gets the result, with the emails "
    "that failed."
)


def bulk_modal(
    *, max_emails: int, operation: Operation = Operation.CONFIRM, offered: Sequence[Operation] = ()
) -> dict[str, Any]:
    """The bulk form: the emails pasted (up to Slack's 3,000 characters) or attached as one
    .txt/.csv file, what should happen to them (``offered``: the operations offered, every one
    when empty; ``operation`` chosen) and why. ``max_emails``: BULK_MAX, said in the intro."""
    choices = [op for op in Operation if op in offered] or list(Operation)
    chosen = operation if operation in choices else choices[0]
    options = [operation_option(op) for op in choices]
    megabytes = MAX_LIST_BYTES // (1024 * 1024)
    return {
        "type": "modal",
        "callback_id": ids.BULK_VIEW,
        "title": plain("Verify emails in bulk", 24),
        "submit": plain("Ask for approval", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(
                f"Ask for up to *{max_emails:,}* emails under one approval: paste them below, "
                "or attach a file. Each is checked as a single address is; duplicates are "
                "collapsed, and an email that already has an open request is left out (you "
                "are told which)."
            ),
            {
                "type": "input",
                "block_id": ids.BULK_LIST_BLOCK,
                "optional": True,
                "label": plain("Emails"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.BULK_LIST_INPUT,
                    "multiline": True,
                    "max_length": PASTE_LIMIT,
                    "placeholder": plain("alice@example.com\nbob@example.org", 150),
                },
                "hint": plain(
                    "One a line, or separated by commas or spaces. Slack takes at most "
                    f"{PASTE_LIMIT:,} characters here (about a hundred emails): attach a "
                    "longer list as a file below.",
                    HINT_LIMIT,
                ),
            },
            {
                "type": "input",
                "block_id": ids.BULK_FILE_BLOCK,
                "optional": True,
                "label": plain("Or attach the list"),
                "element": {
                    "type": "file_input",
                    "action_id": ids.BULK_FILE_INPUT,
                    "filetypes": list(LIST_FILETYPES),
                    "max_files": 1,
                },
                "hint": plain(
                    "A .txt file (one email a line) or a .csv file with a column of emails, "
                    f"in UTF-8, up to {megabytes} MB. Pasted emails are added to it.",
                    HINT_LIMIT,
                ),
            },
            {
                "type": "input",
                "block_id": ids.OPERATION_BLOCK,
                "label": plain("What should happen to each email?"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": ids.OPERATION_INPUT,
                    "options": options,
                    "initial_option": options[choices.index(chosen)],
                },
            },
            {
                "type": "input",
                "block_id": ids.REASON_BLOCK,
                "label": plain("Reason or ticket reference"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.REASON_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                    "placeholder": plain(
                        "Incident reference, or why these verifications are stuck"
                    ),
                },
            },
            context(WHAT_BULK_DOES),
        ],
    }


# ---------------------------------------------------------------------- field errors


def field_error(text: str) -> str:
    """A field error's text, within FIELD_ERROR_LIMIT."""
    return clip(text, FIELD_ERROR_LIMIT)


def first_few(emails: Sequence[str], shown: int = ERROR_SHOWN) -> str:
    """``a@x.com, b@y.com, c@z.com and 4 more`` (plain text)."""
    named = ", ".join(emails[:shown])
    more = len(emails) - shown
    return named + (f" and {more:,} more" if more > 0 else "")


def not_allowed_error(refused: Sequence[str], total: int, operation: Operation) -> str:
    """The rules refuse ``operation`` for ``refused`` of the ``total`` emails: nothing asked."""
    of = "the email" if total == 1 else f"{len(refused):,} of the {total:,} emails"
    return field_error(
        f"The approval rules do not allow you to {operation_words(operation)} for {of}: "
        f"{first_few(refused)}. Take them out of the list, or choose the other action; "
        "nothing was asked."
    )


def nothing_to_ask_error(left_out: Sequence[tuple[str, str]]) -> str:
    """Every email has an open request elsewhere (email, request id)."""
    named = [f"{email} (request {request_id})" for email, request_id in left_out]
    every = "The email already has" if len(left_out) == 1 else "Every email already has"
    return field_error(
        f"{every} an open request: {first_few(named)}. A new one can be asked for once those "
        "are done; `/verify-email status EMAIL` shows where each is."
    )


# ---------------------------------------------------------------------- the receipt


def bulk_asked_text(
    request: VerificationRequest,
    left_out: Sequence[tuple[str, str]],
    *,
    duplicates: int = 0,
) -> str:
    """The requester's DM once the form closed: how many emails were asked for (and to do
    what), the duplicates collapsed, and the emails left out as each has an open request
    elsewhere (the first few, with that request's id, and how many more)."""
    count = len(request.items)
    lines = [
        f":inbox_tray: Your bulk request to {operation_words(request.operation)} for "
        f"*{count:,} email{'' if count == 1 else 's'}* is asked for (request "
        f"{code(request.id)}): it is posted for approval, and you will be told how it ends."
    ]
    if duplicates:
        lines.append(
            f"{duplicates:,} duplicate{' was' if duplicates == 1 else 's were'} left out of "
            "the list."
        )
    if left_out:
        named = [f"`{esc(email)}` (request {code(rid)})" for email, rid in left_out]
        shown = ", ".join(named[:RECEIPT_SHOWN])
        more = len(named) - RECEIPT_SHOWN
        lines.append(
            f"Left out, as {'it has' if len(left_out) == 1 else 'each has'} an open request "
            f"already ({len(left_out):,}): {shown}" + (f" and {more:,} more." if more > 0 else ".")
        )
    return clip("\n".join(lines), 3000)


def bulk_not_asked_text(why: str) -> str:
    """The requester's DM when a bulk form was closed before the service answered and the
    service then refused it: nothing was asked. ``why`` is plain text (escaped here)."""
    return clip(
        f":warning: Your bulk request was not made: {esc(why)}\nOpen the form again with "
        "`/verify-email bulk`.",
        3000,
    )
