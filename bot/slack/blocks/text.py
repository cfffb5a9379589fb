"""The pieces every surface is built from: mrkdwn escaping, code spans for the provider's text,
mentions, dates, and the section, context, header and plain-text blocks, clipped to Slack's limits.

``esc`` is for text a person typed; ``code`` for text the provider sent (see the package's
docstring for why). ``approvals_line`` and ``deciders`` say who approved or decided a request,
as mentions: the request message, the thread, the DMs and the Home tab all use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.inputs import char_name, hidden_kind, other_forms
from bot.domain.model import State, VerificationRequest

SECTION_LIMIT = 3000
LIST_BUDGET = 1200  # characters one list (domains, clients) may take in a reply
Blocks = list[dict[str, Any]]


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


def when(moment: datetime) -> str:
    """Slack date formatting: shown in each reader's own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def day(moment: datetime) -> str:
    """A date as Slack shows it to each reader, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d")
    return f"<!date^{int(moment.timestamp())}^{{date}}|{fallback}>"


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


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, 150)}
