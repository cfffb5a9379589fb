"""Everything the provider sends is shown escaped: no field of any outcome or reading, in any
builder, can mention, link or format.

* A property: arbitrary text (mentions, links, entities, formatting characters, line breaks,
  invisible and bidirectional characters) in every provider field of every outcome and view type,
  rendered by every builder that shows them, never gives a ``<``, ``>`` or ``&`` outside the
  bot's own markup, and lands only inside code spans it cannot close (where Slack applies no
  formatting).
* End to end over real HTTP, in the real messages: tests/e2e/test_escaped_provider_text.py.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mrkdwn import MARK, assert_inert, mrkdwn_texts

from bot.domain.model import Approval, State, VerificationRequest, one_item_request
from bot.domain.outcomes import ERROR_KINDS, Cleared, Interrupted, ProviderFailed
from bot.domain.service import HomeData
from bot.domain.views import DOCUMENTED_STATUSES, ProviderView, ViewUnavailable
from bot.slack import blocks
from bot.standins.world import APPROVER, CHANNEL, REQUESTER

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
NASTY = (
    "<!channel>",
    "<!here|here>",
    "<@U123>",
    "<#C123|general>",
    "<https://x|y>",
    "<mailto:a@b.c|a@b.c>",
    "<!subteam^S1>",
    "<!date^1^{date}|x>",
    "&lt;",
    "&amp;",
    "&",
    "<",
    ">",
    "|",
    "*",
    "_",
    "~",
    "`",
    "```",
    "*bold*",
    "_it_",
    "~s~",
    "> quote",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x1b",
    "\u200b",
    "\u202e",
    "\u2066",
    "\ufeff",
    "alice@example.com",
    "2026-11-30T09:00:00Z",
)
PIECES = st.one_of(st.sampled_from(NASTY), st.text(max_size=6))
TEXT = st.one_of(
    st.lists(PIECES, max_size=8).map(lambda parts: MARK + "".join(parts)),
    # Long runs, to meet the clipping of a field, a section and a context.
    st.builds(lambda piece, n: MARK + piece * n, st.sampled_from(NASTY), st.integers(50, 700)),
)
OPT_TEXT = st.none() | TEXT
DATE = st.none() | TEXT | st.just("2026-11-30T09:00:00.000Z")
BOOL = st.none() | st.booleans()

VIEWS = st.builds(
    ProviderView,
    domain=st.just("example.com"),
    status=st.sampled_from(DOCUMENTED_STATUSES) | TEXT,
    read_at=st.just(T0),
    domain_id=OPT_TEXT,
    is_verified=BOOL,
    is_suspended=BOOL,
    reason=OPT_TEXT,
    verified_at=DATE,
    last_checked_at=DATE,
    method=OPT_TEXT,
    recipient=OPT_TEXT,
    expires_at=DATE,
    can_resend=BOOL,
)
UNAVAILABLE = st.builds(
    ViewUnavailable,
    domain=st.just("example.com"),
    kind=st.sampled_from(("not_found", "no_scope", "timeout", "server_error", "bad_response")),
    message=TEXT,
    read_at=st.just(T0),
    status=st.none() | st.integers(100, 599),
    domain_id=OPT_TEXT,
)
READINGS = VIEWS | UNAVAILABLE
OUTCOMES = st.one_of(
    st.builds(
        Cleared,
        cleared_domains=st.lists(TEXT, max_size=4).map(tuple),
        clients_notified=st.lists(TEXT, max_size=4).map(tuple),
        message=TEXT,
        provider_request_id=OPT_TEXT,
        timestamp=OPT_TEXT,
    ),
    st.builds(
        ProviderFailed,
        kind=st.sampled_from(ERROR_KINDS),
        message=TEXT,
        status=st.none() | st.integers(100, 599),
        code=OPT_TEXT,
        provider_request_id=OPT_TEXT,
        outcome_unknown=st.booleans(),
    ),
    st.builds(Interrupted, message=TEXT),
)


def request(state: State, outcome: Any, view: Any, readback: Any) -> VerificationRequest:
    return one_item_request(
        id="req_0123456789abcdef0123456789",
        email="alice@bücher.example",
        domain="bücher.example",
        reason="TICKET-1",
        requester=REQUESTER,
        state=state,
        created_at=T0,
        expires_at=T0 + timedelta(days=1),
        updated_at=T0,
        channel=CHANNEL,
        message_ts="1.2",
        decided_by=APPROVER,
        outcome=outcome,
        approvals=(Approval(APPROVER, T0),),
        view=view,
        readback=readback,
    )


def rendered(req: VerificationRequest, reading: Any) -> list[str]:
    """The mrkdwn of every builder that shows a provider field, and their fallback texts."""
    texts: list[str] = []
    for required in (1, 2):
        text, message = blocks.request_message(req, required)
        texts += [text, *mrkdwn_texts(message)]
    for retry in (True, False):
        text, reply = blocks.result_reply(req, retry=retry)
        texts += [text, *mrkdwn_texts(reply)]
    text, reply = blocks.check_reply(req, reading, APPROVER)
    texts += [text, *mrkdwn_texts(reply)]
    texts += mrkdwn_texts(blocks.resolve_modal(req))
    home = HomeData(APPROVER, True, (req,), (req,), (req,), 2)
    texts += mrkdwn_texts(blocks.home_view(home, CHANNEL))
    texts += [blocks.outcome_dm(req, CHANNEL), blocks.provider_line(reading)]
    texts.append(blocks.meaning_line(reading, req.operation))
    return texts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=st.sampled_from(State),
    outcome=st.none() | OUTCOMES,
    view=st.none() | READINGS,
    readback=st.none() | READINGS,
    reading=READINGS,
)
def test_no_provider_field_mentions_links_or_formats_in_any_builder(
    state, outcome, view, readback, reading
):
    """Arbitrary text in every field of every provider outcome and reading, in every state,
    rendered by every builder that shows it: no ``<``/``>``/``&`` outside the bot's own
    markup, no invisible or reordering character, and provider text only inside code spans
    it cannot close (one line each), where Slack applies no formatting."""
    for text in rendered(request(state, outcome, view, readback), reading):
        assert_inert(text)


@pytest.mark.parametrize("value", ["<!channel>", "<@U123>", "a & b", "`x` *y*", "soon\u202e"])
def test_a_provider_date_that_is_not_a_date_is_shown_escaped_in_a_code_span(value):
    """One helper renders every provider date: an ISO time as its day, anything else escaped,
    inside a code span it cannot close."""
    assert blocks.provider_day("2026-11-30T09:00:00Z") == "2026-11-30"
    shown = blocks.provider_day(value)
    assert shown is not None
    assert shown.startswith("`") and shown.endswith("`") and shown.count("`") == 2
    assert "<" not in shown and ">" not in shown
    assert not re.search(r"&(?!amp;|lt;|gt;)", shown)
    assert "\u202e" not in shown


def test_the_bots_own_markup_survives_and_the_check_finds_a_live_mention():
    """The checker is not vacuous: an unescaped provider value fails it; the bot's own
    mentions and dates pass."""
    own = f"<@{APPROVER}> {blocks.when(T0)} <#{CHANNEL}> `{MARK}x`"
    assert_inert(own)
    for leak in (f"{MARK}<!channel>", f"`{MARK}` {MARK}", f"a & {MARK}", f"`{MARK}\nx`"):
        with pytest.raises(AssertionError):
            assert_inert(leak)


def test_clip_never_cuts_an_escape_or_leaves_a_code_span_open():
    """Shortening a section or a field keeps its escapes whole and its code spans closed."""
    for n in range(4, 40):
        cut = blocks.clip("`" + "&amp;" * 20 + "`", n)
        assert len(cut) <= n
        assert not re.search(r"&(?!amp;|lt;|gt;)", cut), cut
        assert cut.count("`") % 2 == 0, cut


def test_a_stored_reading_renders_the_same_after_a_round_trip():
    """What the store reads back (view_from_dict) renders as inertly as what was read."""
    from bot.domain.views import view_from_dict, view_to_dict

    view = ProviderView(
        domain="example.com",
        status="pending",
        read_at=T0,
        last_checked_at="<!channel>",
        recipient="x@example.com`*",
    )
    again = view_from_dict(view_to_dict(view))
    assert blocks.provider_line(again) == blocks.provider_line(view)
    assert_inert(blocks.provider_line(replace(view, reason=MARK + "<@U1>")))
