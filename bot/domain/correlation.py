"""What a log line is about: the bot's request id, the Slack team, user and action, and the
provider's requestId, carried in context variables of the thread doing the work.

Listeners bind the Slack fields around each handler, the service binds the request id once it
knows it, the provider client the provider's requestId once it has one, the outbox the request
it delivers for. The log formatter (bot/logs.py) adds whatever is bound to each line. Standard
library only, so the domain can use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Final

FIELDS: Final = ("request_id", "team", "user", "action", "provider_request_id")

_VARS: Final[dict[str, ContextVar[str | None]]] = {
    name: ContextVar(f"verify_email_{name}", default=None) for name in FIELDS
}
# True inside ``bound``: only there may ``set_field`` bind (outside, nothing would unbind it).
_SCOPED: Final[ContextVar[bool]] = ContextVar("verify_email_correlation_scope", default=False)


def current() -> dict[str, str]:
    """The fields bound now (those that are set)."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


def set_field(name: str, value: str | None) -> None:
    """Bind one field for the rest of the enclosing ``bound`` block; outside any, nothing (a
    thread that is not handling one request has no request to name)."""
    if _SCOPED.get():
        _VARS[name].set(value)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Bind ``fields`` inside the block; on leaving it every field is as it was before, also
    those set meanwhile with ``set_field`` (pool threads are reused: nothing may leak)."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
        (var, var.set(fields.get(name, var.get()))) for name, var in _VARS.items()
    ]
    scope = _SCOPED.set(True)
    try:
        yield
    finally:
        _SCOPED.reset(scope)
        for var, token in reversed(tokens):
            var.reset(token)
