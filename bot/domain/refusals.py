"""Why a person may not do what they asked: a code, and the request it is about.

The service raises :class:`Refused`; the Block Kit layer (``bot.slack.blocks.refusal_text``)
puts the code in words, with mentions and the slash command where the answer can show them.
"""

from __future__ import annotations

from enum import StrEnum

from bot.domain.model import VerificationRequest


class Refusal(StrEnum):
    NOT_A_REQUESTER = "not_a_requester"  # not in REQUESTERS
    NOT_AN_APPROVER = "not_an_approver"  # not in APPROVERS
    UNKNOWN_REQUEST = "unknown_request"  # no such request (another installation's button?)
    SELF_APPROVAL = "self_approval"  # the requester may not approve their own request
    EXPIRED = "expired"  # past REQUEST_TTL: ask again
    EXPIRED_BEFORE_REJECT = "expired_before_reject"  # past REQUEST_TTL: nothing to reject
    ALREADY_DECIDED = "already_decided"  # someone (or something) decided first
    USE_RETRY = "use_retry"  # Approve on an unknown outcome: only Retry may call again
    NOT_RETRYABLE = "not_retryable"  # Retry on anything but an unknown outcome
    ALREADY_APPROVED = "already_approved"  # the same approver again: counted once
    NOT_THE_REQUESTER = "not_the_requester"  # only the requester may cancel
    EXPIRED_BEFORE_CANCEL = "expired_before_cancel"  # past REQUEST_TTL: nothing to cancel
    BUSY = "busy"  # the request kept changing under this click; nothing was done
    NOT_CHECKABLE = "not_checkable"  # Check provider on anything but an unknown outcome
    NOT_RESOLVABLE = "not_resolvable"  # Resolved on anything but an unknown outcome
    NOTE_REQUIRED = "note_required"  # Resolved needs a word on why
    # Through * or a user group, but not a full member (a guest, deactivated, a bot, another
    # organisation's user), or Slack could not say: roles fail closed.
    NOT_A_MEMBER = "not_a_member"
    # The email has an open request already (``request`` is that one): see it, not a new one.
    OPEN_REQUEST = "open_request"
    # The policy's rules do not allow this operation for this domain and requester.
    OPERATION_NOT_ALLOWED = "operation_not_allowed"


class Refused(Exception):
    """An action the policy does not allow. ``request`` is the request as it stands, when the
    refusal is about one (who decided it, its state)."""

    def __init__(self, code: Refusal, request: VerificationRequest | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.request = request
