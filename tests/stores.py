"""Helpers of the store's tests (tests/integration/test_store_*.py), written once: the
request factory with their own reason, requester and clock, the scripted table of what each
change queues in the outbox (Told, told, says), an approval, and a runner of spawned processes.

The fixtures over these (``store`` on each backend, ``sqlite_store``, ``db_path``) are in
tests/conftest.py. Test modules import what they need from here by name (``from stores import
...``; pytest puts tests/ on the path); no test module imports another.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import doubles

from bot.domain.model import Action, State, VerificationRequest, new_request_id
from bot.domain.ports import Transition
from bot.slack.notices import Notice
from bot.store import BaseSQLStore

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
PENDING = frozenset({State.PENDING})
EXECUTING = frozenset({State.EXECUTING})


def make_request(
    *,
    email: str = "alice@example.com",
    reason: str = "ticket #42",
    requester: str = "U_REQ",
    created_at: datetime = T0,
    ttl: timedelta = timedelta(days=1),
    request_id: str | None = None,
) -> VerificationRequest:
    """The factory's pending request, with the store tests' own reason, requester and clock."""
    changes = {"id": request_id} if request_id else {}
    return doubles.make_request(
        email=email, reason=reason, requester=requester, created_at=created_at, ttl=ttl, **changes
    )


def unique_email() -> str:
    return f"user-{new_request_id()}@example.com"


def told(*notices: Notice) -> list[tuple[str, str]]:
    """Outbox entries for ``notices``, each in its lane (as the edge's table queues them)."""
    return [(n.value, n.lane.value) for n in notices]


class Told:
    """The edge's table (bot/slack/notices.py) as a store test scripts it: what a change of
    each action queues, nothing unless said. The store's promise is to queue exactly that, in
    the change's transaction; which notices an action really gets is bot/slack's."""

    def __init__(self) -> None:
        self.table: dict[Action, list[tuple[str, str]]] = {}

    def says(self, action: Action, *notices: Notice) -> None:
        self.table[action] = told(*notices)

    def __call__(self, action: Action, bulk: bool = False) -> list[tuple[str, str]]:
        return self.table.get(action, [])


def says(store: BaseSQLStore, action: Action, *notices: Notice) -> None:
    """Script what a change of ``action`` queues in ``store`` (opened with a Told)."""
    assert isinstance(store.announce, Told)
    store.announce.says(action, *notices)


def approve(store: BaseSQLStore, request_id: str, actor: str = "U_APP", **kw: Any) -> Any:
    """An approval of ``request_id``'s item 0 at T0 (pending to executing), as the store's
    transition returns it: the request, or None when it lost."""
    return store.transition(
        Transition(
            request_id,
            PENDING,
            State.EXECUTING,
            actor=actor,
            action=Action.APPROVE,
            item=0,
            now=T0,
            **kw,
        )
    )


def run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``target(*a, results)`` in one spawned process per ``a``; what each put on the
    results queue, in the order they finished."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, results)) for a in args]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=90) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        for p in procs:
            p.close()
        results.close()
        results.join_thread()
    return outcomes
