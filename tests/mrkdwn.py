"""Reading what the bot shows in Slack's mrkdwn, for the tests that provider text stays inert
(tests/unit/test_escaping.py, tests/e2e/test_escaped_provider_text.py): every mrkdwn text of a
Block Kit structure, and the check that one of them holds no live mention, link or formatting
from provider text (MARK marks every provider string a test makes up).
"""

from __future__ import annotations

import re
from typing import Any

from bot.domain.inputs import hidden_kind

# Marks every provider string, so the rendered text shows where provider text landed.
MARK = "Ж"

# The bot's own markup, as the builders write it (people's ids, channels, dates, links).
OWN_MARKUP = re.compile(
    r"<@U0[A-Z0-9]+>"
    r"|<#C0[A-Z0-9]+>"
    r"|<!subteam\^S0[A-Z0-9]+>"
    r"|<!date\^\d+\^\{[a-z_]+\}(?: at \{time\})?\|[0-9: -]+(?:UTC)?>"
    r"|<https://slack\.example/archives/[A-Za-z0-9/]+\|the open request>"
)


def mrkdwn_texts(value: Any) -> list[str]:
    """Every mrkdwn text in a Block Kit structure (sections, contexts, confirm dialogs)."""
    if isinstance(value, list):
        return [t for item in value for t in mrkdwn_texts(item)]
    if not isinstance(value, dict):
        return []
    found = [str(value["text"])] if value.get("type") == "mrkdwn" else []
    return found + [t for v in value.values() for t in mrkdwn_texts(v)]


def assert_inert(text: str) -> None:
    """No live mention, link or formatting from provider text in one rendered mrkdwn text."""
    bare = OWN_MARKUP.sub("", text)
    assert "<" not in bare and ">" not in bare, text
    assert not re.search(r"&(?!amp;|lt;|gt;)", bare), text
    assert not any(hidden_kind(c) for c in bare if c not in "\n"), ascii(text)
    for i, segment in enumerate(bare.split("`")):
        if i % 2:  # inside a code span: one line, so Slack renders it as code
            assert "\n" not in segment, text
        else:  # outside every code span: no provider text at all
            assert MARK not in segment, text
    assert bare.count("`") % 2 == 0, text
