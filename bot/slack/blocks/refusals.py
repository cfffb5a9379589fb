"""What the service refused, in words: the sentence for each ``Refusal``, and the private answer
that carries it."""

from __future__ import annotations

from typing import assert_never

from bot.domain.refusals import Refusal, Refused
from bot.slack.blocks.answers import open_request_text
from bot.slack.blocks.text import user

NOT_A_REQUESTER_TEXT = (
    "You are not on the list of people who may ask for email verifications to be cleared. "
    "Ask an approver to add you to REQUESTERS."
)
NOT_AN_APPROVER_TEXT = (
    "Only approvers can approve, reject, retry, check or resolve these requests; nothing was "
    "changed."
)
NOT_A_MEMBER_TEXT = (
    "Only full members of this workspace can ask for or approve these requests: not guests, "
    "deactivated accounts, bots or people from other organisations (Slack Connect). If you "
    "are a full member, Slack could not confirm it just now: try again in a minute. Nothing "
    "was changed."
)
OPERATION_NOT_ALLOWED_TEXT = (
    "The approval rules do not allow that for this address (see `python -m bot policy explain`"
    " with an admin); nothing was asked. Choose the other action, or ask an admin."
)
UNKNOWN_BUTTON_TEXT = "That button does not name a request I know."
# A field error cannot hold a link: the listener sends the open request's link by DM as well.
OPEN_REQUEST_ERROR = (
    "This address already has an open request; I have sent you a link to it. A new one can be "
    "made once it is done."
)


def refusal_words(refused: Refused, *, mentions: bool = True, link: str | None = None) -> str:
    """The sentence for a refusal. ``mentions`` False: for plain-text places (a modal's field
    error), where a mention would show as markup. ``link``: the permalink of the request the
    refusal points to (OPEN_REQUEST), when Slack gave one."""
    request = refused.request
    by = ""
    if request is not None and request.decided_by and mentions:
        by = f" by {user(request.decided_by)}"
    state = request.state.value if request is not None else "decided"
    match refused.code:
        case Refusal.NOT_A_REQUESTER:
            return NOT_A_REQUESTER_TEXT
        case Refusal.NOT_AN_APPROVER:
            return NOT_AN_APPROVER_TEXT
        case Refusal.UNKNOWN_REQUEST:
            return "That request does not exist (it may belong to another installation)."
        case Refusal.SELF_APPROVAL:
            return "You asked for this one, so someone else has to approve it."
        case Refusal.EXPIRED:
            return "This request has expired. Please ask again with /verify-email."
        case Refusal.EXPIRED_BEFORE_REJECT:
            return "This request has already expired; there is nothing to reject."
        case Refusal.ALREADY_DECIDED:
            return f"This request is already {state}{by}."
        case Refusal.USE_RETRY:
            return (
                "The outcome of this request is unknown: the provider may already have acted. "
                "Use Retry in its thread if you are sure it should be called again."
            )
        case Refusal.NOT_RETRYABLE:
            return f"Only a request whose outcome is unknown can be retried; this one is {state}."
        case Refusal.ALREADY_APPROVED:
            return (
                "You have approved this request already; each approver counts once. "
                "It is waiting for another approver."
            )
        case Refusal.NOT_THE_REQUESTER:
            return "Only the person who asked for this request can cancel it."
        case Refusal.EXPIRED_BEFORE_CANCEL:
            return "This request has already expired; there is nothing to cancel."
        case Refusal.BUSY:
            return "This request kept changing while I tried; nothing was done. Try again."
        case Refusal.NOT_CHECKABLE:
            return (
                "Only a request whose outcome is unknown needs the provider checked; "
                f"this one is {state}."
            )
        case Refusal.NOT_RESOLVABLE:
            return (
                "Only a request whose outcome is unknown can be closed as resolved; "
                f"this one is {state}{by}."
            )
        case Refusal.NOTE_REQUIRED:
            return "Say why it is resolved (what the provider shows): the audit log keeps it."
        case Refusal.NOT_A_MEMBER:
            return NOT_A_MEMBER_TEXT
        case Refusal.OPERATION_NOT_ALLOWED:
            return OPERATION_NOT_ALLOWED_TEXT
        case Refusal.OPEN_REQUEST:
            if not mentions:
                return OPEN_REQUEST_ERROR
            if request is None:
                return "This address already has an open request."
            return open_request_text(request, link)
    assert_never(refused.code)


def refusal_text(refused: Refused | str, *, link: str | None = None) -> str:
    """A private answer saying what was refused (a Refused, or a sentence of the listener's).
    An open request elsewhere is pointed to (with ``link``), not warned about."""
    if isinstance(refused, Refused) and refused.code is Refusal.OPEN_REQUEST:
        return refusal_words(refused, link=link)
    words = refusal_words(refused) if isinstance(refused, Refused) else refused
    return f":warning: {words}"
