"""Pure functions that build Block Kit and fallback text. No I/O, no Slack client.

Every piece of text that came from a person or the provider goes through ``esc`` before it is
put into mrkdwn, so a reason of ``<!channel>`` pings nobody. What the provider sends (its
messages, codes, requestIds, domains, clients, statuses, reasons, recipients, and dates that are
not dates) is shown with ``code``: escaped, inside an inline code span it cannot close, where
Slack applies no formatting, so it can neither mention, link nor format. Output stays within
Slack's limits: 3000 characters a section, 50 blocks a message, 2000 a button value; long lists
are shortened with a count.

One module a surface, all built from ``text``:

- ``text``: escaping, code spans, mentions, dates, the basic blocks
- ``provider``: the provider's view of the domain and its errors, in words
- ``request``: the request message in APPROVAL_CHANNEL
- ``batch``: a bulk request's message (the others hand a bulk request to it)
- ``batch_reply``: a bulk request's final thread reply and its requester's DMs
- ``thread``: the replies in its thread (result, check, reminder)
- ``dm``: the requester's direct messages
- ``modals``: the request, Reject and Resolved forms
- ``bulk``: the bulk form, its field errors and its receipt
- ``answers``: private answers (help, status, an unusable address, an open request)
- ``refusals``: what the service refused, in words
- ``home``: the App Home tab

Callers use the names re-exported here (``blocks.request_message(...)``).
"""

from bot.slack.blocks.answers import (
    HELP_TEXT,
    approval_recorded_text,
    invalid_email_text,
    open_request_text,
    status_text,
)
from bot.slack.blocks.batch import (
    batch_message,
    batch_state_line,
    counts_words,
    emails_words,
    progress_line,
    shown_as_batch,
)
from bot.slack.blocks.batch_reply import (
    batch_cancelled_dm,
    batch_outcome_dm,
    batch_result_reply,
    batch_submitted_dm,
    batch_unknown_buttons,
)
from bot.slack.blocks.bulk import bulk_asked_text, bulk_modal, bulk_not_asked_text
from bot.slack.blocks.dm import (
    cancel_button,
    cancelled_dm,
    not_posted_dm,
    outcome_dm,
    settled_dm,
    submitted_dm,
)
from bot.slack.blocks.home import (
    HOME_BLOCK_LIMIT,
    HOME_DECIDED_SHOWN,
    HOME_MINE_SHOWN,
    HOME_WAITING_SHOWN,
    home_view,
)
from bot.slack.blocks.modals import (
    WHAT_APPROVAL_DOES,
    reject_modal,
    request_modal,
    resolve_modal,
)
from bot.slack.blocks.provider import (
    MEANINGS,
    PROVIDER_LINE_MARK,
    error_summary,
    mask_emails,
    meaning_line,
    provider_day,
    provider_line,
    provider_time,
)
from bot.slack.blocks.refusals import (
    NOT_A_MEMBER_TEXT,
    NOT_A_REQUESTER_TEXT,
    NOT_AN_APPROVER_TEXT,
    OPEN_REQUEST_ERROR,
    UNKNOWN_BUTTON_TEXT,
    refusal_text,
    refusal_words,
)
from bot.slack.blocks.request import (
    decision_buttons,
    history_line,
    request_message,
    resend_line,
)
from bot.slack.blocks.text import (
    BACKTICK_STANDIN,
    HIDDEN_STANDIN,
    LIST_BUDGET,
    SECTION_LIMIT,
    Blocks,
    approvals_line,
    approvers_for,
    clip,
    code,
    context,
    day,
    deciders,
    email_forms,
    esc,
    header,
    operation_title,
    operation_words,
    plain,
    quorum,
    rule_line,
    section,
    shorten_list,
    user,
    visible,
    when,
)
from bot.slack.blocks.thread import (
    check_reply,
    escalation_reply,
    moved_on_note,
    reminder_reply,
    result_reply,
    unknown_buttons,
)

__all__ = [
    "BACKTICK_STANDIN",
    "Blocks",
    "HELP_TEXT",
    "HIDDEN_STANDIN",
    "HOME_BLOCK_LIMIT",
    "HOME_DECIDED_SHOWN",
    "HOME_MINE_SHOWN",
    "HOME_WAITING_SHOWN",
    "LIST_BUDGET",
    "MEANINGS",
    "NOT_AN_APPROVER_TEXT",
    "NOT_A_MEMBER_TEXT",
    "NOT_A_REQUESTER_TEXT",
    "PROVIDER_LINE_MARK",
    "SECTION_LIMIT",
    "OPEN_REQUEST_ERROR",
    "UNKNOWN_BUTTON_TEXT",
    "WHAT_APPROVAL_DOES",
    "approval_recorded_text",
    "approvals_line",
    "bulk_asked_text",
    "bulk_modal",
    "bulk_not_asked_text",
    "approvers_for",
    "batch_cancelled_dm",
    "batch_message",
    "batch_outcome_dm",
    "batch_result_reply",
    "batch_state_line",
    "batch_submitted_dm",
    "batch_unknown_buttons",
    "cancel_button",
    "cancelled_dm",
    "check_reply",
    "clip",
    "code",
    "context",
    "counts_words",
    "day",
    "deciders",
    "decision_buttons",
    "email_forms",
    "emails_words",
    "error_summary",
    "escalation_reply",
    "esc",
    "header",
    "history_line",
    "home_view",
    "invalid_email_text",
    "mask_emails",
    "meaning_line",
    "moved_on_note",
    "not_posted_dm",
    "open_request_text",
    "outcome_dm",
    "plain",
    "progress_line",
    "provider_day",
    "provider_line",
    "provider_time",
    "refusal_text",
    "refusal_words",
    "reject_modal",
    "reminder_reply",
    "request_message",
    "request_modal",
    "resend_line",
    "resolve_modal",
    "result_reply",
    "section",
    "settled_dm",
    "shorten_list",
    "shown_as_batch",
    "status_text",
    "submitted_dm",
    "unknown_buttons",
    "operation_title",
    "operation_words",
    "quorum",
    "rule_line",
    "user",
    "visible",
    "when",
]
