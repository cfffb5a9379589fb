"""What the provider says, in words: its view of the domain (``provider_line``), what a reading
after an unknown outcome suggests (``meaning_line``), and a failed call's status and code
(``error_summary``). Shown in the request message, the thread replies and the Resolved form."""

from __future__ import annotations

import re
from datetime import datetime

from bot.domain.model import Operation
from bot.domain.outcomes import Outcome, ProviderFailed
from bot.domain.views import DomainReading, Meaning, ProviderView, meaning_of
from bot.slack.blocks.text import code, when

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


def provider_time(value: str) -> str:
    """A time the provider sent, ready for mrkdwn: an ISO time as Slack shows a date and time
    to each reader; any other text as it came, with ``code``."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return code(value, 60)
    if moment.tzinfo is None:
        return code(value, 60)  # no zone: not a moment Slack can show in the reader's
    return when(moment)


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
    Meaning.NOT_SHOWN: (
        "the provider's view cannot show whether the email went out; ask the customer whether "
        "it arrived, or check with the provider, before Retry sends another."
    ),
}


def meaning_line(reading: DomainReading, operation: Operation) -> str:
    """What a reading after an unknown outcome of ``operation`` suggests, in words."""
    meaning = meaning_of(reading, operation)
    if isinstance(reading, ProviderView):
        status = reading.status
        shown = f"*{status}*" if status == reading.known_status else code(status, 60)
        what = f"The domain now reads {shown}"
    else:
        what = f"The provider's view could not be read ({code(reading.message, 400)})"
    return f"{what}: {MEANINGS[meaning]}"


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
