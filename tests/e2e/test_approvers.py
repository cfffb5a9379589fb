"""End to end, the approver's side: a quorum of distinct approvers, the requester's Cancel,
and reminders while a request waits; over real HTTP (and Socket Mode), on both store backends.
"""

from __future__ import annotations

import csv
import io
import threading
from typing import Any

import pytest
from worlds import confirm_calls, later, request_of

from bot.cli.audit import export
from bot.domain.model import Action, State
from bot.services import build_services
from bot.slack import ids
from bot.standins.driver import buttons, rendered
from bot.standins.world import APPROVER, OUTSIDER, REQUESTER, SECOND_APPROVER, World


@pytest.fixture
def quorum_world(database_url, tmp_path):
    """APPROVALS_REQUIRED=2; anyone may ask (so an approver can be a requester too)."""
    settings = {"DATABASE_URL": database_url, "APPROVALS_REQUIRED": 2, "REQUESTERS": "*"}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        yield world


# ------------------------------------------------------------------------------ 1. Quorum


def test_two_distinct_approvers_are_needed_and_the_provider_is_called_once(quorum_world):
    """The first approval is recorded and shown ("1 of 2 approvals: @ana"), buttons stay; the
    same approver again is told privately and not counted; the second distinct approver's
    click calls the provider once. Both approvals are in the audit log and the export."""
    world = quorum_world
    message = world.driver.ask(REQUESTER, "alice@example.com")
    first = world.driver.answer(world.driver.approve(APPROVER, message))
    assert "Your approval is recorded: 1 of 2 approvals" in first
    shown = world.slack.wait_for(
        lambda: (
            world.driver.current(message)
            if "1 of 2 approvals" in rendered(world.driver.current(message))
            else None
        ),
        what="the message showing one approval",
    )
    assert f"1 of 2 approvals: <@{APPROVER}>" in rendered(shown)
    assert ids.APPROVE_ACTION in buttons(shown) and ids.REJECT_ACTION in buttons(shown)
    again = world.driver.answer(world.driver.approve(APPROVER, message))
    assert "approved this request already" in again
    assert confirm_calls(world) == 0
    world.driver.approve(SECOND_APPROVER, message)
    final = world.driver.final_message(message)
    assert buttons(final) == []
    assert confirm_calls(world) == 1
    request = request_of(world, shown)
    stored = world.services.store.get(request.id)
    assert stored.state is State.SUCCEEDED and stored.approvers == (APPROVER, SECOND_APPROVER)
    trail = world.services.store.audit_log(request.id)
    assert [(e.action, e.actor) for e in trail] == [
        (Action.CREATE, REQUESTER),
        (Action.LOOKUP, "bot"),
        (Action.APPROVAL, APPROVER),
        (Action.APPROVE, SECOND_APPROVER),
        (Action.PROVIDER_SUCCESS, SECOND_APPROVER),
        (Action.READBACK, "bot"),  # read after the outcome, outside the claim
    ]
    out = io.StringIO()
    export(world.services.store, out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["approved_by"] == f"{APPROVER} {SECOND_APPROVER}"
    assert row["decided_by"] == SECOND_APPROVER


def test_the_requester_never_counts_twice_even_with_self_approval(database_url, tmp_path):
    """With ALLOW_SELF_APPROVAL an approver who asked may give the first approval, but not a
    later one: a second person is always needed."""
    settings = {
        "DATABASE_URL": database_url,
        "APPROVALS_REQUIRED": 2,
        "REQUESTERS": "*",
        "ALLOW_SELF_APPROVAL": True,
    }
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        own = world.driver.ask(APPROVER, "own@example.com")
        assert "recorded: 1 of 2" in world.driver.answer(world.driver.approve(APPROVER, own))
        assert "already" in world.driver.answer(world.driver.approve(APPROVER, own))
        other = world.driver.ask(APPROVER, "other@example.com")
        world.driver.answer(world.driver.approve(SECOND_APPROVER, other))
        refused = world.driver.answer(world.driver.approve(APPROVER, other))
        assert "someone else has to approve it" in refused
        assert confirm_calls(world) == 0
        world.driver.approve(SECOND_APPROVER, own)
        world.driver.final_message(own)
        assert confirm_calls(world) == 1


def test_racing_approvers_clicking_repeatedly_make_one_provider_call(quorum_world):
    """Two approvers clicking Approve five times each, all at once: exactly one provider call,
    exactly two approvals counted."""
    world = quorum_world
    message = world.driver.ask(REQUESTER, "alice@example.com")
    barrier = threading.Barrier(10)

    def click(user: str) -> None:
        barrier.wait(timeout=30)
        world.driver.approve(user, message)

    threads = [threading.Thread(target=click, args=(u,)) for u in [APPROVER, SECOND_APPROVER] * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    world.driver.final_message(message)
    assert confirm_calls(world) == 1
    stored = world.services.store.get(request_of(world, message).id)
    assert sorted(stored.approvers) == sorted([APPROVER, SECOND_APPROVER])


def test_a_reject_by_any_approver_ends_a_half_approved_request(quorum_world):
    """One approval in, a second approver rejects: it is over, the provider never called."""
    world = quorum_world
    message = world.driver.ask(REQUESTER, "alice@example.com")
    world.driver.answer(world.driver.approve(APPROVER, message))
    world.driver.reject(SECOND_APPROVER, message, reason="wrong customer")
    final = world.driver.final_message(message)
    assert "Rejected by" in rendered(final) and buttons(final) == []
    assert confirm_calls(world) == 0


def test_quorum_over_socket_mode(tmp_path):
    """The same quorum over Socket Mode: one approval recorded, the second calls once."""
    settings = {"APPROVALS_REQUIRED": 2}
    with World(socket_mode=True, database_path=tmp_path / "s.db", settings=settings) as world:
        message = world.driver.ask(REQUESTER, "alice@example.com")
        assert "recorded" in world.driver.answer(world.driver.approve(APPROVER, message))
        world.driver.approve(SECOND_APPROVER, message)
        world.driver.final_message(message)
        assert confirm_calls(world) == 1


# ------------------------------------------------------------------------------ 2. Cancel


def test_the_requester_cancels_from_the_request_message(world):
    """Cancel on the request message: the request is cancelled, the channel message loses its
    buttons and says who cancelled, the requester is told so privately (the message is not
    replaced by that answer); the provider is never called."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    clicked = world.driver.cancel(REQUESTER, message)
    response = world.slack.wait_for(
        lambda: next((r for r in world.slack.responses if r.url == clicked.response_url), None),
        what="the answer to Cancel",
    )
    assert response.body["replace_original"] is False
    assert response.body["response_type"] == "ephemeral"
    assert "You cancelled your request" in response.body["text"]
    final = world.driver.final_message(message)
    assert f"Cancelled by <@{REQUESTER}>" in rendered(final) and buttons(final) == []
    assert request_of(world, message).state is State.CANCELLED
    assert confirm_calls(world) == 0
    # Cancelled is final: a stale Approve is refused.
    assert "already cancelled" in world.driver.answer(world.driver.approve(APPROVER, message))


def test_only_the_requester_can_cancel_and_only_while_pending(world):
    """Someone else's Cancel is refused; after an approval, Cancel says it is decided."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    assert "Only the person who asked" in world.driver.answer(
        world.driver.cancel(OUTSIDER, message)
    )
    assert "Only the person who asked" in world.driver.answer(
        world.driver.cancel(APPROVER, message)
    )
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    assert "already succeeded" in world.driver.answer(world.driver.cancel(REQUESTER, message))
    assert request_of(world, message).state is State.SUCCEEDED


class HeldProvider:
    """The bot's provider client, held at ``confirm`` until the test releases it: the
    approval that claimed the request is executing for as long as the test needs, on any
    machine (no sleep decides the order)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def confirm(self, email: str, *, renew: object = None) -> Any:
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise AssertionError("the test never released the provider")
        return self.inner.confirm(email)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def decisions(world: World, message: dict) -> list[str]:
    trail = world.services.store.audit_log(request_of(world, message).id)
    return [e.action for e in trail if e.action in (Action.CANCEL, Action.APPROVE)]


def test_cancel_while_the_approval_is_executing_is_refused(world):
    """Approve first: while its provider call is under way (the provider held), the
    requester's Cancel is refused privately ("already executing", naming the approver) and
    changes nothing; the approval goes on to one provider call and succeeds."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    held = HeldProvider(world.services.approvals.provider)
    world.services.approvals.provider = held
    try:
        world.driver.approve(APPROVER, message)
        assert held.entered.wait(timeout=15), "the approval never reached the provider"
        assert request_of(world, message).state is State.EXECUTING
        refused = world.driver.answer(world.driver.cancel(REQUESTER, message))
        assert f"already executing by <@{APPROVER}>" in refused
        assert request_of(world, message).state is State.EXECUTING
    finally:
        held.release.set()
    final = world.driver.final_message(message)
    assert "state: succeeded" in rendered(final)
    assert confirm_calls(world) == 1
    assert decisions(world, message) == [Action.APPROVE]


def test_approve_after_a_cancel_is_refused(world):
    """Cancel first: the requester is told it is cancelled; a later Approve is refused
    privately ("already cancelled", naming the requester) and never reaches the provider."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    assert "You cancelled your request" in world.driver.answer(
        world.driver.cancel(REQUESTER, message)
    )
    refused = world.driver.answer(world.driver.approve(APPROVER, message))
    assert f"already cancelled by <@{REQUESTER}>" in refused
    assert "Cancelled by" in rendered(world.driver.final_message(message))
    assert confirm_calls(world) == 0
    assert decisions(world, message) == [Action.CANCEL]


def test_cancel_racing_an_approval_exactly_one_wins(world):
    """Cancel and Approve released at the same moment (two clicks, one barrier): exactly one
    of them changes the request, and the other is told privately that it is already decided;
    the provider is called once if Approve won, never if Cancel did. (The two orders, forced,
    are the two tests above.)"""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    barrier = threading.Barrier(2)
    clicked: dict[str, Any] = {}

    def do(name: str, click: Any) -> None:
        barrier.wait(timeout=30)
        clicked[name] = click()

    threads = [
        threading.Thread(
            target=do, args=("cancel", lambda: world.driver.cancel(REQUESTER, message))
        ),
        threading.Thread(
            target=do, args=("approve", lambda: world.driver.approve(APPROVER, message))
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    world.driver.final_message(message)
    state = request_of(world, message).state
    assert state in (State.CANCELLED, State.SUCCEEDED)
    assert confirm_calls(world) == (1 if state is State.SUCCEEDED else 0)
    assert len(decisions(world, message)) == 1
    if state is State.SUCCEEDED:
        assert "already" in world.driver.answer(clicked["cancel"])  # executing or succeeded
    else:
        assert "You cancelled your request" in world.driver.answer(clicked["cancel"])
        assert f"already cancelled by <@{REQUESTER}>" in world.driver.answer(clicked["approve"])


# --------------------------------------------------------------------------- 3. Reminders


@pytest.fixture
def reminding_world(database_url, tmp_path):
    settings = {"DATABASE_URL": database_url, "REMIND_EVERY": 60}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        yield world


def test_approvers_are_reminded_once_per_interval_and_never_after_a_decision(reminding_world):
    """While a request waits, a maintenance round past REMIND_EVERY posts one reminder in its
    thread mentioning the approvers' group; another round in the same interval posts none;
    after a decision there are no more."""
    world = reminding_world
    message = world.driver.ask(REQUESTER, "alice@example.com")
    maintenance = world.services.maintenance
    assert maintenance.run_once()["reminded"] == 0
    later(world, 61)
    assert maintenance.run_once()["reminded"] == 1
    # Sent by this round, or by the listener still finishing the request's earlier delivery
    # (the outbox's lanes are FIFO): either way at once.
    [reminder] = world.slack.wait_for(
        lambda: world.driver.reminders(message) or None, what="reminder"
    )
    assert "<!subteam^S0APPROVERS>" in reminder["text"] and "still waiting" in reminder["text"]
    assert maintenance.run_once()["reminded"] == 0
    later(world, 122)
    assert maintenance.run_once()["reminded"] == 1
    world.slack.wait_for(
        lambda: len(world.driver.reminders(message)) >= 2 or None, what="reminder 2"
    )
    assert len(world.driver.reminders(message)) == 2
    world.driver.reject(APPROVER, message)
    world.driver.final_message(message)
    later(world, 600)
    assert maintenance.run_once()["reminded"] == 0
    assert len(world.driver.reminders(message)) == 2


def test_two_replicas_send_one_reminder(reminding_world):
    """Two replicas' rounds at the same moment: exactly one of them reminds."""
    world = reminding_world
    message = world.driver.ask(REQUESTER, "alice@example.com")
    later(world, 61)
    other = build_services(world.settings)
    try:
        other.approvals.clock = world.services.approvals.clock
        barrier = threading.Barrier(2)
        rounds: list[dict[str, int]] = []

        def round_on(services: Any) -> None:
            barrier.wait(timeout=30)
            rounds.append(services.maintenance.run_once())

        threads = [threading.Thread(target=round_on, args=(s,)) for s in (world.services, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        other.close()
    assert sorted(r["reminded"] for r in rounds) == [0, 1]
    assert len(world.driver.reminders(message)) == 1


def test_reminders_can_be_turned_off(database_url, tmp_path):
    """REMIND_EVERY=0: no reminder, however long a request waits."""
    settings = {"DATABASE_URL": database_url, "REMIND_EVERY": 0}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        message = world.driver.ask(REQUESTER, "alice@example.com")
        later(world, 86000)
        assert world.services.maintenance.run_once()["reminded"] == 0
        assert world.driver.reminders(message) == []
