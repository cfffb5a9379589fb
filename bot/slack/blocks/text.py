"""The pieces every surface is built from: mrkdwn escaping, code spans for the provider's text,
mentions, dates, and the section, context, header and plain-text blocks, clipped to Slack's limits.

``esc`` is for text a person typed; ``code`` for text the provider sent (see the package's
docstring for why). ``approvals_line`` and ``deciders`` say who approved or decided a request,
as mentions: the request message, the thread, the DMs and the Home tab all use them; so do
``operation_title`` / ``operation_words`` (what the request asks the provider to do) and
``quorum`` / ``approvers_for`` / ``rule_line`` (who may approve it: the rule it was made under,
else the settings).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.inputs import char_name, hidden_kind, other_forms
from bot.domain.model import Operation, State, VerificationRequest
from bot.domain.policy import DEFAULT_BULK_APPROVALS

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


def mention(approver: str) -> str:
    """An approver ID as Slack shows it: a user group as ``<!subteam^S…>``, a user as
    ``<@U…>``, ``*`` as "everyone"."""
    if approver == "*":
        return "everyone"
    if approver.startswith("S"):
        return f"<!subteam^{esc(approver)}>"
    return user(approver)


# What each operation asks of the provider: as a title (the form, the request message) and
# in a sentence ("your request to …").
OPERATION_TITLES = {
    Operation.CONFIRM: "Clear the stuck verification",
    Operation.RESEND: "Resend the verification email",
}


def operation_title(operation: Operation) -> str:
    """``Clear the stuck verification`` or ``Resend the verification email``."""
    return OPERATION_TITLES[operation]


def operation_words(operation: Operation) -> str:
    """The operation inside a sentence: ``clear the stuck verification``."""
    title = OPERATION_TITLES[operation]
    return title[:1].lower() + title[1:]


def quorum(request: VerificationRequest, default: int) -> int:
    """The approvals the request needs: its rule's, else ``default`` (APPROVALS_REQUIRED), and
    for a bulk request without a policy at least the bulk requests' own minimum (as the
    service counts them: ``ServiceCore.required``)."""
    if request.rule is not None:
        return request.rule.approvals_required
    return max(default, DEFAULT_BULK_APPROVALS) if request.bulk else default


def approvers_for(request: VerificationRequest, default: Sequence[str]) -> tuple[str, ...]:
    """Who may approve the request: its rule's approvers (and its escalate_to once it was
    escalated), else ``default`` (APPROVERS)."""
    rule = request.rule
    if rule is None:
        return tuple(default)
    return rule.approvers + (rule.escalate_to if request.escalated_at is not None else ())


def by_rule(request: VerificationRequest) -> bool:
    """The request's rule approves it itself: nobody is asked, no Approve or Reject."""
    return request.rule is not None and request.rule.by_rule


def mentions(ids: Sequence[str], limit: int = 10) -> str:
    """``<!subteam^S1>, <@U2> and 3 more``: at most ``limit`` named."""
    shown = [mention(a) for a in ids[:limit]]
    if not shown:
        return "nobody"
    rest = len(ids) - len(shown)
    if rest:
        return ", ".join(shown) + f" and {rest} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def rule_line(request: VerificationRequest) -> str | None:
    """``Rule vip-customers: 2 approvers from <!subteam^S0SENIOR>``, with its escalation; None
    when the request has no rule from a policy file (policy_hash "": the settings decided, and
    the messages read as they did before rules)."""
    rule = request.rule
    if rule is None or not rule.policy_hash:
        return None
    name = f"*{esc(rule.name)}*"
    if rule.by_rule:
        return f":robot_face: Rule {name}: approved by the rule itself, no approver is asked"
    n = rule.approvals_required
    line = f"Rule {name}: {n} approver{'s' if n != 1 else ''} from {mentions(rule.approvers)}"
    if request.escalated_at is not None and rule.escalate_to:
        line += f"; escalated to {mentions(rule.escalate_to)} {when(request.escalated_at)}"
    elif rule.escalate_after is not None and rule.escalate_to:
        line += (
            f"; if still waiting after {minutes(rule.escalate_after)}, "
            f"{mentions(rule.escalate_to)} may approve too"
        )
    return line


def minutes(seconds: float) -> str:
    """``45 min``, ``2 h``, ``1 h 30 min``: a duration in words."""
    total = max(0, round(seconds / 60))
    hours, mins = divmod(total, 60)
    if not hours:
        return f"{mins} min"
    return f"{hours} h" + (f" {mins} min" if mins else "")


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
    if claimed and by_rule(request) and not request.approvals and request.rule is not None:
        return f"rule *{esc(request.rule.name)}*"  # its rule approved it: no person did
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
