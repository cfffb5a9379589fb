"""Events: the app's Home tab being opened."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.slack.deps import deps_of


def home_opened(event: dict[str, Any], context: BoltContext) -> None:
    """Publish the person's queue when they open the Home tab (not the Messages tab)."""
    user_id = event.get("user")
    if event.get("tab") != "home" or not isinstance(user_id, str):
        return
    deps_of(context).home.opened(user_id)
