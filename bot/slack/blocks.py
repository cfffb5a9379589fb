"""Pure functions that build Block Kit and fallback text. No I/O, no Slack client.

Every piece of text that came from a person or the provider goes through ``esc`` before it is
put into mrkdwn, so a reason of ``<!channel>`` pings nobody. What the provider sends (its
messages, codes, requestIds, domains, clients, statuses, reasons, recipients, and dates that are
not dates) is shown with ``code``: escaped, inside an inline code span it cannot close, where
Slack applies no formatting, so it can neither mention, link nor format. Output stays within
Slack's limits: 3000 characters a section, 50 blocks a message, 2000 a button value; long lists
are shortened with a count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, assert_never

from bot.domain.inputs import MAX_EMAIL_CHARS, MAX_REASON_CHARS, char_name, hidden_kind, other_forms
from bot.domain.model import History, State, VerificationRequest
from bot.domain.outcomes import Cleared, Outcome, ProviderFailed
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import HOME_COUNT_CAP, HomeData, StatusReport
from bot.domain.views import DomainReading, Meaning, ProviderView, meaning_of
from bot.slack import ids

SECTION_LIMIT = 3000
LIST_BUDGET = 1200  # characters one list (domains, clients) may take in a reply
Blocks = list[dict[str, Any]]

WHAT_APPROVAL_DOES = (
    "When an approver clicks *Approve*, the provider clears the stuck email verification for "
    "this address: its domains' verification caches are cleared and the affected clients are "
    "notified. Nothing happens until someone other than you approves."
)


def esc(text: object) -> str:
    """Escape text for mrkdwn: Slack's control characters are exactly &, < and >."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…": never inside an escape
    (``&amp;``), and never leaving a code span open."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 2]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if cut.count("`") % 2:
        cut += "`"
    return cut + "…"


# Stands in for a backtick in provider text, which would close the code span around it.
BACKTICK_STANDIN = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: looks alike, formats nothing
HIDDEN_STANDIN = "\ufffd"  # REPLACEMENT CHARACTER: shows where an invisible one was


def code(text: object, limit: int = 200) -> str:
    """Text from the provider as an inline code span of at most ``limit`` characters: escaped
    for mrkdwn, its backticks shown as ˋ (so it cannot close the span), line breaks as spaces
    and characters that cannot be seen or that reorder text as �. Inside a code span Slack
    applies no *bold*, _italics_, ~strike~ or links, so nothing in it can format the message."""
    shown = "".join(
        " "
        if c.isspace()
        else BACKTICK_STANDIN
        if c == "`"
        else HIDDEN_STANDIN
        if hidden_kind(c)
        else c
        for c in str(text)
    ).strip()
    if not shown:
        return "(nothing)"
    return clip(f"`{esc(shown)}`", limit)


def visible(text: str) -> str:
    """Text a person typed, with each character that cannot be seen (or reorders text) spelled
    out, e.g. ``[U+202E RIGHT-TO-LEFT OVERRIDE]``: for echoing input that was refused."""
    return "".join(f"[{char_name(c)}]" if hidden_kind(c) else c for c in text)


def email_forms(email: str) -> str:
    """An address in a code span and, when its domain has another IDNA form, that form too, as
    in `alice@bücher.example` (`alice@xn--bcher-kva.example`): a look-alike domain shows
    itself in its ASCII form. Also for a bare domain."""
    others = "".join(f" (`{esc(other)}`)" for other in other_forms(email))
    return f"`{esc(email)}`{others}"


def user(user_id: str) -> str:
    """A user mention. IDs come from Slack's own payloads but are still escaped."""
    return f"<@{esc(user_id)}>"


def when(moment: datetime) -> str:
    """Slack date formatting: shown in each reader's own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def shorten_list(items: Sequence[str], budget: int = LIST_BUDGET) -> str:
    """``a, b, c and 12 more``: escaped, in code spans, within ``budget`` characters."""
    if not items:
        return "none"
    shown: list[str] = []
    used = 0
    for item in items:
        piece = code(item, 200)
        if shown and used + len(piece) + 2 > budget - 20:
            break
        shown.append(piece)
        used += len(piece) + 2
    rest = len(items) - len(shown)
    text = ", ".join(shown)
    return f"{text} and {rest} more" if rest else text


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 2000)}]}


def plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


# ---------------------------------------------------------------------------------------------
# Slash command answers


HELP_TEXT = (
    "*/verify-email* clears a stuck email verification at the provider, once an approver "
    "agrees.\n"
    "• `/verify-email alice@example.com` opens the request form for that address\n"
    "• `/verify-email alice@example.com TICKET-123 customer locked out` also fills in the reason\n"
    "• `/verify-email` opens an empty form\n"
    "• `/verify-email status alice@example.com` shows its open request and last outcomes\n"
    "• `/verify-email help` shows this\n"
    "The request is posted for approval; you are told where, and told again when it is done."
)


def invalid_email_text(raw: str, problem: str) -> str:
    return (
        f"`{esc(visible(clip(raw, 100)))}` is not an email address I can use: {esc(problem)}\n"
        "Usage: `/verify-email alice@example.com` (or `/verify-email help`)."
    )


# ---------------------------------------------------------------------------------------------
# Modals


def request_modal(
    email: str | None, reason: str = "", private_metadata: str = ""
) -> dict[str, Any]:
    email_element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ids.EMAIL_INPUT,
        "max_length": MAX_EMAIL_CHARS,
        "placeholder": plain("alice@example.com"),
    }
    if email:
        email_element["initial_value"] = email
    reason_element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ids.REASON_INPUT,
        "multiline": True,
        "max_length": MAX_REASON_CHARS,
        "placeholder": plain("Ticket reference, or why this verification is stuck"),
    }
    if reason:
        reason_element["initial_value"] = reason[:MAX_REASON_CHARS]
    return {
        "type": "modal",
        "callback_id": ids.REQUEST_VIEW,
        "title": plain("Verify email", 24),
        "submit": plain("Ask for approval", 24),
        "close": plain("Cancel", 24),
        "private_metadata": private_metadata[:3000],
        "blocks": [
            {
                "type": "input",
                "block_id": ids.EMAIL_BLOCK,
                "label": plain("Email address"),
                "element": email_element,
            },
            {
                "type": "input",
                "block_id": ids.REASON_BLOCK,
                "label": plain("Reason or ticket reference"),
                "element": reason_element,
            },
            section(WHAT_APPROVAL_DOES),
        ],
    }


def reject_modal(request: VerificationRequest) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": ids.REJECT_VIEW,
        "title": plain("Reject request", 24),
        "submit": plain("Reject", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"request_id": request.id}),
        "blocks": [
            section(
                f"Reject {user(request.requester)}'s request to clear `{esc(request.email)}`? "
                "The provider will not be called."
            ),
            {
                "type": "input",
                "block_id": ids.REJECT_REASON_BLOCK,
                "optional": True,
                "label": plain("Reason (optional, shown in the channel)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.REJECT_REASON_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            },
        ],
    }


def resolve_modal(request: VerificationRequest) -> dict[str, Any]:
    """The form Resolved opens: why the unknown outcome needs no Retry (required)."""
    reading = request.readback
    seen = f"\n{provider_line(reading, lead='Last reading')}" if reading is not None else ""
    return {
        "type": "modal",
        "callback_id": ids.RESOLVE_VIEW,
        "title": plain("Close as resolved", 24),
        "submit": plain("Resolved", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"request_id": request.id}),
        "blocks": [
            section(
                f"Close the request to clear `{esc(request.email)}` as *resolved*? Its outcome "
                "is unknown; once resolved it cannot be retried, and the provider is not called "
                f"again.{seen}"
            ),
            {
                "type": "input",
                "block_id": ids.RESOLVE_NOTE_BLOCK,
                "label": plain("Why (what the provider shows; kept in the audit log)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.RESOLVE_NOTE_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            },
        ],
    }


# ---------------------------------------------------------------------------------------------
# The provider's view of the domain

# How the line about the provider's view begins (the stand-ins' driver waits for it).
PROVIDER_LINE_MARK = ":satellite_antenna:"

_EMAIL_IN_TEXT = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+)")


def mask_emails(text: str) -> str:
    """``alice@example.com`` as ``a***@example.com``: the provider's recipient (often another
    address than the one asked about) is not spelled out in the channel."""
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def provider_day(value: str | None) -> str | None:
    """A time the provider sent, ready for mrkdwn: an ISO time as its date (``2026-11-30``);
    any other text as it came, shown with ``code`` (so ``<!channel>`` pings nobody)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d")
    except ValueError:
        return code(value, 60)


def provider_line(reading: DomainReading, lead: str = "Provider") -> str:
    """One line saying what the provider's view of the domain reads, or why it could not be
    read, e.g. ``Provider: *pending* (checked 2026-11-30), sent to `a***@example.com```."""
    if not isinstance(reading, ProviderView):
        return (
            f":satellite_antenna: {lead}: could not read the domain's state: "
            f"{code(reading.message, 400)}"
        )
    parts: list[str] = []
    status = reading.known_status
    if reading.verified:
        since = provider_day(reading.verified_at)
        parts.append(f"already *verified*{f' since {since}' if since else ''}")
        if lead == "Provider":
            parts[-1] += ": approving may change nothing"
    elif status == "pending":
        checked = provider_day(reading.last_checked_at)
        parts.append(f"*pending*{f' (checked {checked})' if checked else ''}")
        if reading.recipient:
            parts.append(f"sent to {code(mask_emails(reading.recipient), 120)}")
        if expires := provider_day(reading.expires_at):
            parts.append(f"link expires {expires}")
    elif status == "expired":
        expired = provider_day(reading.expires_at)
        parts.append(f"verification *expired*{f' on {expired}' if expired else ''}")
    elif status == "unverified":
        parts.append("*unverified*")
    else:
        shown = f"*{reading.status}*" if reading.status == status else code(reading.status, 60)
        parts.append(f"state {shown}")
    if reading.is_suspended:
        parts.append("the domain is *suspended*")
    if reading.reason and not reading.verified and not (status == "pending" and reading.recipient):
        # (A pending one's reason says where the email went, which the line already does.)
        parts.append(code(mask_emails(reading.reason), 300))
    if reading.can_resend is True and not reading.verified:
        parts.append("the provider can resend the email")
    return f"{PROVIDER_LINE_MARK} {lead}: " + ", ".join(parts)


MEANINGS = {
    Meaning.TOOK_EFFECT: "the call most likely took effect; Retry is probably not needed.",
    Meaning.NOT_YET: (
        "the call most likely did not take effect (or not yet); Retry may be needed."
    ),
    Meaning.UNCLEAR: "that does not settle whether the call took effect.",
}


def meaning_line(reading: DomainReading) -> str:
    """What a reading after an unknown outcome suggests, in words."""
    meaning = meaning_of(reading)
    if isinstance(reading, ProviderView):
        status = reading.status
        shown = f"*{status}*" if status == reading.known_status else code(status, 60)
        what = f"The domain now reads {shown}"
    else:
        what = f"The provider's view could not be read ({code(reading.message, 400)})"
    return f"{what}: {MEANINGS[meaning]}"


def check_reply(
    request: VerificationRequest,
    reading: DomainReading,
    by: str,
    *,
    offer: bool = True,
    note: str = "",
) -> tuple[str, Blocks]:
    """The thread reply to Check provider: what the domain reads and what that means, with
    Retry and Resolved again (the request is still unknown until a person decides). Without
    ``offer`` (the reply rewritten once they can no longer act) no buttons, and ``note`` (what
    happened instead) is added as a last line."""
    text = (
        f":mag: {user(by)} checked the provider for `{esc(request.email)}`.\n"
        f"{provider_line(reading, lead='Provider now')}\n{meaning_line(reading)}"
    )
    reply: Blocks = [section(text)]
    reply.append(context(f"Read {when(reading.read_at)} · request `{esc(request.id)}`"))
    if request.state is State.UNKNOWN and offer:
        reply.append(unknown_buttons(request))
    if note:
        reply.append(context(note))
    return f"Provider check for {esc(request.email)}", reply


def moved_on_note(action: str | None, actor: str | None) -> str:
    """The line that replaces Check provider / Retry / Resolved on a thread reply once they can
    no longer act: what was decided instead (``action``: the audit action that moved the
    request out of its unknown outcome, by ``actor``)."""
    if action == "retry" and actor:
        return f"Retried by {user(actor)}; see below."
    if action == "resolve" and actor:
        return f"Closed as resolved by {user(actor)}; see below."
    return "Decided since; see below."


# ---------------------------------------------------------------------------------------------
# The request message in APPROVAL_CHANNEL


def day(moment: datetime) -> str:
    """A date as Slack shows it to each reader, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d")
    return f"<!date^{int(moment.timestamp())}^{{date}}|{fallback}>"


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
    cleared = history.cleared
    if cleared:
        last = cleared[0]
        times = "once" if len(cleared) == 1 else f"{len(cleared)} times"
        parts.append(
            f"cleared {times}{period}, last by {deciders(last, 'someone')} on "
            f"{day(last.updated_at)}"
        )
    others: dict[str, int] = {}
    for earlier in history.requests:
        if earlier.state is not State.SUCCEEDED:
            others[earlier.state.value] = others.get(earlier.state.value, 0) + 1
    parts.extend(f"{n} {state}" for state, n in sorted(others.items()))
    if history.more:
        counted = "; ".join(parts[1:])
        return (
            f":mag: Earlier requests for {where}: {parts[0]}; "
            f"of the latest {len(history.requests)}: {counted}."
        )
    return f":mag: Earlier requests for {where}: " + "; ".join(parts) + "."


def status_text(report: StatusReport, permalink: str | None) -> str:
    """The private answer to /verify-email status EMAIL."""
    lines = [f"*Requests for {email_forms(report.email)}*"]
    if report.open is not None:
        where = f"<{permalink}|the open request>" if permalink else "The open request"
        lines.append(
            f"{where} is {report.open.state.value}, asked by {user(report.open.requester)} "
            f"{when(report.open.created_at)}."
        )
    else:
        lines.append("No open request: a new one can be asked for.")
    open_id = report.open.id if report.open is not None else None
    decided = [r for r in report.recent if r.id != open_id]
    if decided:
        lines.append(f"Last outcomes (last {report.days} days):")
        lines.extend(
            f"• {r.state.value} {day(r.updated_at)}, asked by {user(r.requester)}"
            + (f", decided by {deciders(r, 'someone')}" if r.decided_by else "")
            for r in decided
        )
    else:
        lines.append(f"No other request in the last {report.days} days.")
    return "\n".join(lines)


def approvals_line(request: VerificationRequest, required: int) -> str:
    """``1 of 2 approvals: @ana``: who has approved so far, when more than one is needed."""
    names = ", ".join(user(a) for a in request.approvers) or "none yet"
    line = f"{len(request.approvals)} of {required} approvals: {names}"
    if request.withdrawn:
        gone = ", ".join(user(a.approver) for a in request.withdrawn)
        line += f" ({gone}: approval no longer counts, not an approver any more)"
    return line


def deciders(request: VerificationRequest, nobody: str) -> str:
    """Who decided: every approver counted (``@ana and @lee``) once a quorum's approval
    claimed it; else whoever decided last; ``nobody`` when no one did."""
    claimed = request.state in (State.EXECUTING, State.SUCCEEDED, State.FAILED, State.UNKNOWN)
    if len(request.approvals) > 1 and claimed:
        names = [user(a) for a in request.approvers]
        return ", ".join(names[:-1]) + " and " + names[-1]
    return user(request.decided_by) if request.decided_by else nobody


def _status_line(request: VerificationRequest, required: int) -> str:
    by = deciders(request, "someone")
    outcome = request.outcome
    match request.state:
        case State.PENDING:
            if required > 1:
                return (
                    f":hourglass: *Waiting for approval*: {approvals_line(request, required)}; "
                    "each by a different approver other than the requester"
                )
            return ":hourglass: *Waiting for approval* by an approver other than the requester"
        case State.EXECUTING:
            return f":arrows_counterclockwise: *Approved by {by}*, calling the provider…"
        case State.SUCCEEDED:
            n = len(outcome.cleared_domains) if isinstance(outcome, Cleared) else 0
            return f":white_check_mark: *Cleared*, approved by {by} ({n} domain(s) cleared)"
        case State.FAILED:
            return f":x: *Failed*, approved by {by}: {code(error_summary(outcome), 400)}"
        case State.UNKNOWN:
            return (
                f":grey_question: *Outcome unknown*, approved by {by}: the provider may or may "
                "not have acted. In the thread an approver can check the provider, retry, or "
                "close it as resolved."
            )
        case State.REJECTED:
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


def request_message(
    request: VerificationRequest, required: int = 1, history: History | None = None
) -> tuple[str, Blocks]:
    """Fallback text and blocks for the request message, in whatever state it is.
    ``required``: APPROVALS_REQUIRED (above 1, the message says who has approved so far);
    ``history``: earlier requests for the same email or domain, shown so a repeat stands out."""
    summary = (
        f"*Email verification request* from {user(request.requester)}\n"
        f"*Email:* {email_forms(request.email)}\n"
        f"*Domain:* {email_forms(request.domain)}\n"
        f"*Reason:* {esc(request.reason)}\n"
        f"*Expires:* {when(request.expires_at)}"
    )
    blocks: Blocks = [section(summary), section(_status_line(request, required))]
    if request.state is State.PENDING:
        blocks.append(decision_buttons(request))
    if request.view is not None:
        blocks.append(context(provider_line(request.view)))
    if request.readback is not None and request.state is not State.PENDING:
        blocks.append(context(provider_line(request.readback, lead="Provider after the call")))
    if history is not None:
        blocks.append(context(history_line(history)))
    blocks.append(context(f"Request `{esc(request.id)}` · state: {request.state.value}"))
    text = (
        f"Email verification request from {user(request.requester)} for "
        f"{esc(request.email)}: {request.state.value}"
    )
    return text, blocks


def decision_buttons(
    request: VerificationRequest, block_id: str = ids.ACTIONS_BLOCK
) -> dict[str, Any]:
    """Approve (with its confirmation) and Reject for a pending request. ``block_id``: the
    channel message's own; the Home tab, showing several requests, gives each row its own
    (ids.for_request), as Slack refuses a view with a repeated block_id."""
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            {
                "type": "button",
                "action_id": ids.APPROVE_ACTION,
                "text": plain("Approve"),
                "style": "primary",
                "value": request.id,
                "confirm": {
                    "title": plain("Clear this verification?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            f"The provider will clear the verification for "
                            f"{email_forms(request.email)} and notify its clients. "
                            "This cannot be undone.",
                            300,
                        ),
                    },
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
        ],
    }


# ---------------------------------------------------------------------------------------------
# The thread reply with the provider's answer


def error_summary(outcome: Outcome | None) -> str:
    """``HTTP 400 BAD_REQUEST: Email is required``: the status and code where there are any."""
    if outcome is None:
        return "no message"
    parts = []
    if isinstance(outcome, ProviderFailed):
        if outcome.status:
            parts.append(f"HTTP {outcome.status}")
        if outcome.code:
            parts.append(outcome.code)
    head = " ".join(parts)
    message = outcome.message or "no message"
    return f"{head}: {message}" if head else message


def unknown_buttons(request: VerificationRequest) -> dict[str, Any]:
    """Retry, Check provider and Resolved: what approvers can do about an unknown outcome."""
    return {
        "type": "actions",
        "block_id": ids.RETRY_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": ids.CHECK_ACTION,
                "text": plain("Check provider"),
                "value": request.id,
            },
            {
                "type": "button",
                "action_id": ids.RETRY_ACTION,
                "text": plain("Retry"),
                "value": request.id,
                "confirm": {
                    "title": plain("Call the provider again?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            "The provider may already have cleared the verification for "
                            f"`{esc(request.email)}`. Retry only once you have checked that "
                            "it did not, or when clearing twice does no harm.",
                            300,
                        ),
                    },
                    "confirm": plain("Retry", 30),
                    "deny": plain("Cancel", 30),
                },
            },
            {
                "type": "button",
                "action_id": ids.RESOLVE_ACTION,
                "text": plain("Resolved"),
                "value": request.id,
            },
        ],
    }


def result_reply(
    request: VerificationRequest, *, retry: bool = True, note: str = ""
) -> tuple[str, Blocks]:
    """The thread reply saying what the provider did, from the request's stored outcome.

    An unknown outcome offers approvers a Retry button unless ``retry`` is False (the reply
    rewritten once someone retried); ``note`` is added as a last line.
    """
    outcome = request.outcome
    by = deciders(request, "an approver")
    provider_id = outcome.provider_request_id if outcome is not None else None
    id_line = (
        f"Provider requestId: {code(provider_id, 250)}" if provider_id else "No provider requestId"
    )
    if request.state is State.SUCCEEDED:
        cleared = outcome if isinstance(outcome, Cleared) else None
        domains = list(cleared.cleared_domains) if cleared else []
        clients = list(cleared.clients_notified) if cleared else []
        text = (
            f":white_check_mark: Approved by {by}. Verification cleared for "
            f"`{esc(request.email)}`.\n"
            f"*Cleared domains ({len(domains)}):* {shorten_list(domains)}\n"
            f"*Clients notified ({len(clients)}):* {shorten_list(clients)}\n"
            f"*Provider says:* {code(cleared.message if cleared else '', 600)}"
        )
        if request.readback is not None:
            text += "\n" + provider_line(request.readback, lead="Provider now")
        fallback = (
            f"Cleared {len(domains)} domain(s) and notified {len(clients)} client(s) for "
            f"{esc(request.email)}"
        )
    elif request.state is State.UNKNOWN:
        text = (
            f":grey_question: Approved by {by}, but the outcome is *unknown*: the provider may "
            "or may not have cleared the verification. Check with the provider before asking "
            "again.\n"
            f"*Details:* {code((outcome.message if outcome else '') or 'no answer', 600)}"
        )
        if request.readback is not None:
            text += (
                f"\n{provider_line(request.readback, lead='Provider now')}\n"
                f"{meaning_line(request.readback)}"
            )
        text += (
            "\nApprovers: *Check provider* reads it again; *Resolved* closes it without a Retry."
        )
        fallback = f"Outcome unknown for {esc(request.email)}"
    elif request.state is State.RESOLVED:
        note = f": {esc(clip(request.decision_note, 800))}" if request.decision_note else "."
        text = (
            f":ballot_box_with_check: Closed as *resolved* by {user(request.decided_by or '')}, "
            f"after an unknown outcome, without calling the provider again{note}"
        )
        fallback = f"Resolved: {esc(request.email)}"
    else:
        if isinstance(outcome, ProviderFailed) and outcome.nothing_done:
            after = "Nothing was cleared."
        else:
            after = (
                "The provider's answer was not what it documents: check with the provider "
                "whether it acted before asking again."
            )
        text = (
            f":x: Approved by {by}, but the provider call *failed*: "
            f"{code(error_summary(outcome), 900)}\n{after}"
        )
        fallback = f"Provider call failed for {esc(request.email)}"
    reply = [section(text), context(f"{id_line} · request `{esc(request.id)}`")]
    if request.state is State.UNKNOWN and retry:
        reply.append(unknown_buttons(request))
    if note:
        reply.append(context(note))
    return fallback, reply


# ---------------------------------------------------------------------------------------------
# Direct messages to the requester


def submitted_dm(request: VerificationRequest, channel: str) -> tuple[str, Blocks]:
    """The DM telling the requester where the request went, with a Cancel button."""
    text = (
        f"Your request to clear the email verification for `{esc(request.email)}` was posted "
        f"in <#{esc(channel)}> for approval. It expires {when(request.expires_at)}. "
        "I will tell you here when it is decided."
    )
    return text, [section(text), cancel_button(request)]


def settled_dm(request: VerificationRequest, channel: str) -> tuple[str, Blocks]:
    """What replaces the DM that offered Cancel once the request is decided (Cancel can no
    longer act): the same sentence, and what happened instead of a button."""
    if request.state is State.CANCELLED:
        text = cancelled_dm(request)  # as the click on Cancel itself rewrites it
        return text, [section(text)]
    if request.state is State.PENDING:  # pragma: no cover - settled only once decided
        return submitted_dm(request, channel)
    posted = (
        f"Your request to clear the email verification for `{esc(request.email)}` was posted "
        f"in <#{esc(channel)}> for approval."
    )
    match request.state:
        case State.REJECTED:
            what = f":no_entry_sign: Rejected by {user(request.decided_by or '')}"
        case State.EXPIRED:
            what = ":hourglass_flowing_sand: It expired without a decision"
        case _:
            what = f":white_check_mark: Approved by {deciders(request, 'an approver')}"
    line = f"{what}, so it can no longer be cancelled; how it ended is below."
    return f"{posted} {line}", [section(posted), context(line)]


def cancel_button(request: VerificationRequest, block_id: str = ids.CANCEL_BLOCK) -> dict[str, Any]:
    """The requester's Cancel. ``block_id``: the DM's own; the Home tab gives each request's
    row its own (ids.for_request)."""
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            {
                "type": "button",
                "action_id": ids.CANCEL_ACTION,
                "text": plain("Cancel request"),
                "value": request.id,
                "confirm": {
                    "title": plain("Cancel this request?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            f"Nobody will be able to approve the request for "
                            f"`{esc(request.email)}` any more.",
                            300,
                        ),
                    },
                    "confirm": plain("Cancel request", 30),
                    "deny": plain("Keep it", 30),
                },
            }
        ],
    }


def approval_recorded_text(request: VerificationRequest, required: int) -> str:
    """The private answer to an approval that does not complete the quorum yet."""
    return (
        f":ballot_box_with_check: Your approval is recorded: {approvals_line(request, required)}. "
        "The provider is called when the last one is in."
    )


def cancelled_dm(request: VerificationRequest) -> str:
    """What replaces the DM whose Cancel button was clicked."""
    return (
        f":leftwards_arrow_with_hook: You cancelled your request to clear the email "
        f"verification for `{esc(request.email)}`. Nothing was sent to the provider."
    )


def reminder_reply(request: VerificationRequest, approvers: Sequence[str], required: int) -> str:
    """The thread reply reminding the approvers (user groups as <!subteam^S…>, users as
    <@U…>) of a request still waiting for them. A listed user who has already approved it is
    not called again (a group is: it cannot leave one member out)."""
    done = set(request.approvers)
    who = " ".join(
        f"<!subteam^{esc(a)}>" if a.startswith("S") else user(a)
        for a in approvers
        if a != "*" and a not in done
    )
    waiting = approvals_line(request, required) if required > 1 else "no approval yet"
    return (
        f":bell: {who or 'Approvers'}: this request from {user(request.requester)} to clear "
        f"`{esc(request.email)}` is still waiting ({waiting}). It expires "
        f"{when(request.expires_at)}."
    )


def outcome_dm(request: VerificationRequest, channel: str) -> str:
    where = f"<#{esc(channel)}>"
    by = deciders(request, "an approver")
    match request.state:
        case State.SUCCEEDED:
            return (
                f":white_check_mark: Your request for `{esc(request.email)}` was approved by "
                f"{by} and the verification was cleared. Details are in the thread in {where}."
            )
        case State.REJECTED:
            note = f" Reason: {esc(request.decision_note)}" if request.decision_note else ""
            return (
                f":no_entry_sign: Your request for `{esc(request.email)}` was rejected by "
                f"{by}.{note}"
            )
        case State.UNKNOWN:
            return (
                f":grey_question: Your request for `{esc(request.email)}` was approved by {by}, "
                "but the provider gave no answer, so it may or may not have acted: the outcome "
                f"is unknown. See the thread in {where}."
            )
        case State.EXPIRED:
            return f"Your request for `{esc(request.email)}` expired without a decision."
        case State.CANCELLED:
            return f"You cancelled your request for `{esc(request.email)}`."
        case State.RESOLVED:
            return (
                f":ballot_box_with_check: The outcome of your request for `{esc(request.email)}` "
                f"was unknown; {user(request.decided_by or '')} checked with the provider and "
                f"closed it as resolved. See the thread in {where}."
            )
        case _:
            return (
                f":x: Your request for `{esc(request.email)}` was approved by {by}, but the "
                f"provider call failed. See the thread in {where}."
            )


def not_posted_dm(request: VerificationRequest, channel: str, reason: str) -> str:
    return (
        f":warning: I could not post your request for `{esc(request.email)}` in "
        f"<#{esc(channel)}> ({esc(reason)}), so it was not sent for approval. "
        "Ask an admin to run `python -m bot check`."
    )


def open_request_text(existing: VerificationRequest, permalink: str | None) -> str:
    where = f"<{permalink}|the open request>" if permalink else "the open request"
    return (
        f"{email_forms(existing.email)} already has an open request ({existing.state.value}, "
        f"asked by "
        f"{user(existing.requester)}). See {where}; a new one can be made once it is done."
    )


# ---------------------------------------------------------------------------------------------
# Refusals: what the service refused, in words


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


# ---------------------------------------------------------------------------------------------
# The App Home tab

HOME_BLOCK_LIMIT = 100  # Slack's limit for a view
HOME_WAITING_SHOWN = 20  # two blocks each, with their buttons
HOME_MINE_SHOWN = 15
HOME_DECIDED_SHOWN = 10


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, 150)}


def _home_request_line(request: VerificationRequest) -> str:
    return (
        f"`{esc(request.email)}` from {user(request.requester)}: {esc(clip(request.reason, 200))}"
        f"\nAsked {when(request.created_at)}, expires {when(request.expires_at)}"
    )


def _more(
    count: int, shown: int, what: str, channel: str, *, at_least: bool = False
) -> dict[str, Any] | None:
    if count <= shown:
        return None
    plus = "+" if at_least else ""
    return context(f"…and {count - shown}{plus} more {what}: see <#{esc(channel)}>.")


def _counted(count: int | None, listed: int) -> tuple[int, str, bool]:
    """A Home list's count (the store's, capped; else the list's length), its words ("100+"
    when the count stopped at the cap), and whether it did."""
    if count is None:
        return listed, str(listed), False
    capped = count >= HOME_COUNT_CAP
    return count, f"{count}+" if capped else str(count), capped


def home_view(data: HomeData, channel: str) -> dict[str, Any]:
    """One person's Home tab; at most HOME_BLOCK_LIMIT blocks, longer lists counted."""
    out: Blocks = []
    if data.is_approver:
        waiting_words = f"{len(data.waiting)}+" if data.waiting_more else str(len(data.waiting))
        out.append(header(f"Waiting for your approval ({waiting_words})"))
        if not data.waiting:
            out.append(section("Nothing is waiting for you."))
        for request in data.waiting[:HOME_WAITING_SHOWN]:
            status = _status_line(request, data.required)
            out.append(section(f"{_home_request_line(request)}\n{status}"))
            out.append(decision_buttons(request, ids.for_request(ids.ACTIONS_BLOCK, request.id)))
        waiting_more = _more(
            len(data.waiting), HOME_WAITING_SHOWN, "waiting", channel, at_least=data.waiting_more
        )
        if waiting_more:
            out.append(waiting_more)
        out.append({"type": "divider"})
    mine_count, mine_words, mine_capped = _counted(data.mine_count, len(data.mine))
    out.append(header(f"Your requests, last {data.days} days ({mine_words})"))
    if not data.mine:
        out.append(section("You have asked for nothing lately. Type `/verify-email` to ask."))
    for request in data.mine[:HOME_MINE_SHOWN]:
        out.append(
            section(f"{_home_request_line(request)}\n{_status_line(request, data.required)}")
        )
        if request.state is State.PENDING:
            out.append(cancel_button(request, ids.for_request(ids.CANCEL_BLOCK, request.id)))
    if more := _more(mine_count, HOME_MINE_SHOWN, "of yours", channel, at_least=mine_capped):
        out.append(more)
    if data.is_approver:
        out.append({"type": "divider"})
        out.append(header("Last decisions"))
        if not data.decided:
            out.append(section("No decisions yet."))
        for request in data.decided[:HOME_DECIDED_SHOWN]:
            out.append(
                context(
                    f"`{esc(request.email)}`: {_status_line(request, data.required)} "
                    f"({when(request.updated_at)})"
                )
            )
        decided_count, _, decided_capped = _counted(data.decided_count, len(data.decided))
        decided_more = _more(
            decided_count, HOME_DECIDED_SHOWN, "decisions", channel, at_least=decided_capped
        )
        if more := decided_more:
            out.append(more)
    return {"type": "home", "blocks": out[:HOME_BLOCK_LIMIT]}
