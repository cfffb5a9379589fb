"""Every Slack ID the bot defines (callback_id, action_id, block_id), in one place.

The Block Kit builders, the listeners and the tests all import these names, so a rename can
never leave one of them behind.
"""

COMMAND = "/verify-email"

# The request modal opened by /verify-email.
REQUEST_VIEW = "verify_email_request"
EMAIL_BLOCK = "email_block"
EMAIL_INPUT = "email_input"
REASON_BLOCK = "reason_block"
REASON_INPUT = "reason_input"
# What should happen (a radio group in an input block: Slack sends its choice with the form,
# no action of its own): its options' values are the operations' (confirm, resend).
OPERATION_BLOCK = "operation_block"
OPERATION_INPUT = "operation_input"

# The bulk form opened by /verify-email bulk: the list pasted (BULK_LIST_*) or attached as a
# .txt/.csv file (BULK_FILE_*: a Block Kit file_input), with the reason and the operation under
# the request form's own ids (REASON_*, OPERATION_*).
BULK_VIEW = "verify_email_bulk"
BULK_LIST_BLOCK = "bulk_list_block"
BULK_LIST_INPUT = "bulk_list_input"
BULK_FILE_BLOCK = "bulk_file_block"
BULK_FILE_INPUT = "bulk_file_input"

# The buttons on the request message in APPROVAL_CHANNEL. Their value is the request id.
APPROVE_ACTION = "verify_email_approve"
REJECT_ACTION = "verify_email_reject"
ACTIONS_BLOCK = "verify_email_actions"
# The buttons on the thread reply of a request whose outcome is unknown: Retry, Check provider
# (read the provider's view of the domain again) and Resolved (close it without a Retry).
RETRY_ACTION = "verify_email_retry"
RETRY_BLOCK = "verify_email_retry_actions"
CHECK_ACTION = "verify_email_check_provider"
RESOLVE_ACTION = "verify_email_resolve"

# The requester's Cancel button: on the request message (beside Approve and Reject), on the
# App Home, and on the "posted" DMs sent before it moved to the message (CANCEL_BLOCK). Its
# value is the request id.
CANCEL_ACTION = "verify_email_cancel"
CANCEL_BLOCK = "verify_email_cancel_actions"

# Slack refuses a message or view that repeats a block_id (at most 255 characters each). The
# Home tab shows one row of buttons per request, so each row's block_id names its request;
# the handlers route by action_id and read the request id from the button's value.
MAX_BLOCK_ID = 255


def for_request(block_id: str, request_id: str) -> str:
    """``block_id`` for the row of one request, where a view shows one such row per request."""
    unique = f"{block_id}:{request_id}"
    if len(unique) > MAX_BLOCK_ID:
        raise ValueError(f"block_id longer than {MAX_BLOCK_ID} characters: {unique[:40]}…")
    return unique


# The optional-reason modal opened by Reject.
REJECT_VIEW = "verify_email_reject"
REJECT_REASON_BLOCK = "reject_reason_block"
REJECT_REASON_INPUT = "reject_reason_input"

# The modal opened by Resolved, asking why (required: it is the audit's record of the decision).
RESOLVE_VIEW = "verify_email_resolve"
RESOLVE_NOTE_BLOCK = "resolve_note_block"
RESOLVE_NOTE_INPUT = "resolve_note_input"
