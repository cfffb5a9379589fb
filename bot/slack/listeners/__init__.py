"""Thin Bolt handlers: parse, ack, call one service method, hand the answer back.

Each handler is a module-level function, registered by the table in ``bot.slack.app.ROUTES``; it
takes Bolt's usual arguments and finds the services in ``context`` (a middleware of
``bot.slack.app`` puts them there), so a test can call it with its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.services import Services

SERVICES_KEY = "verify_email_services"


def services_of(context: Mapping[str, Any]) -> Services:
    """The services the app was built with, from a handler's Bolt context."""
    return context[SERVICES_KEY]  # type: ignore[no-any-return]  # put there by bot.slack.app
