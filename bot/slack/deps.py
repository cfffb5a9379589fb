"""What the Slack edge needs from the wiring, and how a handler finds it, typed.

``bot.services`` builds one :class:`SlackDeps` (``Services.slack_deps``; bot.slack may not import
bot.services); ``bot.slack.app`` puts it in every request's Bolt context, where a handler
reads it with :func:`deps_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot.domain.service import Approvals
from bot.metrics import Metrics
from bot.slack.home import Home
from bot.slack.notifier import Notifier
from bot.slack.step_failures import StepFailures

DEPS_KEY = "verify_email_deps"


@dataclass(frozen=True)
class SlackDeps:
    approvals: Approvals  # every decision and query a person's click or command asks for
    notifier: Notifier  # DMs and permalinks outside any request's outbox
    home: Home  # publishes the Home tab when it is opened
    client: WebClient  # Bolt's client, and views.open
    metrics: Metrics  # acknowledgement times
    executor: Executor  # runs Bolt's listeners (bot.services.LISTENER_THREADS)
    step_failures: StepFailures  # fails a Workflow Builder step run, durably


def deps_of(context: Mapping[str, Any]) -> SlackDeps:
    """The Slack edge's dependencies, from a handler's Bolt context."""
    deps = context.get(DEPS_KEY)
    if not isinstance(deps, SlackDeps):
        raise TypeError(f"No SlackDeps under {DEPS_KEY!r}: the app was not made by create_app")
    return deps
