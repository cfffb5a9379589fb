"""End to end, who really holds a role: "everyone" (``*``) and the members of a user group mean
the full members of the installing workspace (looked up with users.info, cached, failing
closed), and an approval counts towards the quorum only while its approver still is one; over
real HTTP against the stand-ins, on both store backends."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from worlds import confirm_calls, request_of

from bot.domain.model import Action, State
from bot.standins.driver import rendered
from bot.standins.world import (
    APPROVER,
    APPROVER_GROUP,
    REQUESTER,
    SECOND_APPROVER,
    World,
)

THIRD_APPROVER = "U0APPROVER3"

# The people users.info describes as not full members, and how Slack describes each.
NOT_MEMBERS: dict[str, dict[str, Any]] = {
    "U0GUEST": {"is_restricted": True},  # a multi-channel guest
    "U0SINGLE": {"is_restricted": True, "is_ultra_restricted": True},  # a single-channel guest
    "U0GONE": {"deleted": True},  # deactivated
    "U0SOMEBOT": {"is_bot": True},
    # Slack Connect: a user of another organisation, seen through a shared channel.
    "U0EXTERNAL": {"team_id": "T0OTHER", "is_stranger": True},
}


def member_lookups(world: World) -> int:
    return len(world.slack.calls_to("users.info")) + len(world.slack.calls_to("auth.test"))


@pytest.fixture
def everyone_world(database_url, tmp_path):
    """REQUESTERS=*, with users.info describing a guest, a single-channel guest, a deactivated
    account, a bot and a Slack Connect user; everyone else is a full member."""
    settings = {"DATABASE_URL": database_url, "REQUESTERS": "*"}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        for user_id, fields in NOT_MEMBERS.items():
            world.slack.set_user(user_id, **fields)
        yield world


# ------------------------------------------------------------------- 1. Everyone = members


@pytest.mark.parametrize("user_id", sorted(NOT_MEMBERS))
def test_everyone_does_not_admit_who_is_not_a_full_member(everyone_world, user_id):
    """With REQUESTERS=*, a guest, a deactivated account, a bot and a Slack Connect user are
    each refused with an answer saying only full members may ask; no form opens."""
    world = everyone_world
    sent = world.driver.command(user_id, "alice@example.com")
    assert sent.reply.status == 200
    answer = world.driver.answer(sent)
    assert "Only full members of this workspace" in answer
    assert "Slack Connect" in answer
    assert world.slack.calls_to("views.open") == []


def test_everyone_admits_a_full_member_and_a_warm_flow_asks_slack_no_more(everyone_world):
    """With REQUESTERS=* a full member gets the form and the request goes through; the
    lookup is cached, so a second request and approval in the same minutes make no further
    users.info or auth.test call."""
    world = everyone_world
    message = world.driver.ask("U0MEMBER", "alice@example.com")
    world.driver.approve(APPROVER, message)
    assert "state: succeeded" in rendered(world.driver.final_message(message))
    lookups = member_lookups(world)
    assert [c.params["user"] for c in world.slack.calls_to("users.info")] == [
        "U0MEMBER",
        APPROVER,
    ]
    second = world.driver.ask("U0MEMBER", "bob@example.com")
    world.driver.approve(APPROVER, second)
    world.driver.final_message(second)
    assert member_lookups(world) == lookups


def test_a_failing_users_info_refuses_with_one_warning(everyone_world, caplog):
    """users.info failing: the caller is refused (fail closed) with the members' answer and
    one WARNING naming the error; the failure is not cached, so the next try is admitted."""
    world = everyone_world
    world.slack.fail_next("users.info", error="internal_error")
    with caplog.at_level(logging.WARNING, logger="bot.slack.roles"):
        sent = world.driver.command("U0MEMBER", "alice@example.com")
        assert "Only full members of this workspace" in world.driver.answer(sent)
    warnings = [r for r in caplog.records if r.name == "bot.slack.roles"]
    assert len(warnings) == 1 and "internal_error" in warnings[0].getMessage()
    assert world.slack.calls_to("views.open") == []
    assert world.driver.modal(world.driver.command("U0MEMBER", "alice@example.com"))


def test_a_guest_in_the_approvers_group_cannot_approve(world):
    """A guest put into the approvers' user group gets no approver's role through it: their
    Approve is refused with the members' answer and the provider is not called; a full
    member of the same group approves."""
    world.slack.set_usergroup(APPROVER_GROUP, [APPROVER, "U0GUEST"])
    world.slack.set_user("U0GUEST", is_restricted=True)
    world.services.roles.forget()
    message = world.driver.ask(REQUESTER, "alice@example.com")
    refused = world.driver.answer(world.driver.approve("U0GUEST", message))
    assert "Only full members of this workspace" in refused
    assert confirm_calls(world) == 0
    assert request_of(world, message).state is State.PENDING
    world.driver.approve(APPROVER, message)
    world.driver.final_message(message)
    assert confirm_calls(world) == 1


# ----------------------------------------------------------- 2. Every approval still counts


@pytest.fixture
def quorum_world(database_url, tmp_path):
    settings = {"DATABASE_URL": database_url, "APPROVALS_REQUIRED": 2}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        yield world


def test_an_approval_by_someone_no_longer_an_approver_does_not_complete_the_quorum(
    quorum_world,
):
    """APPROVALS_REQUIRED=2: A approves; A is then removed from the approvers' group (the
    cached member list expired); B's approval does not complete the quorum: the request stays
    pending, the provider is not called, B is told and the message shows that A's approval no
    longer counts (audited). A third approver then completes it with B: one provider call."""
    world = quorum_world
    message = world.driver.ask(REQUESTER, "alice@example.com")
    assert "recorded: 1 of 2" in world.driver.answer(world.driver.approve(APPROVER, message))
    world.slack.set_usergroup(APPROVER_GROUP, [SECOND_APPROVER, THIRD_APPROVER])
    world.services.roles.forget()  # the 5 minutes of the group cache are over
    answer = world.driver.answer(world.driver.approve(SECOND_APPROVER, message))
    assert f"1 of 2 approvals: <@{SECOND_APPROVER}>" in answer
    assert f"<@{APPROVER}>: approval no longer counts" in answer
    assert confirm_calls(world) == 0
    request = request_of(world, message)
    assert request.state is State.PENDING
    assert request.approvers == (SECOND_APPROVER,)
    assert [w.approver for w in request.withdrawn] == [APPROVER]
    shown = world.slack.wait_for(
        lambda: (
            world.driver.current(message)
            if "no longer counts" in rendered(world.driver.current(message))
            else None
        ),
        what="the message saying whose approval no longer counts",
    )
    assert f"<@{APPROVER}>: approval no longer counts" in rendered(shown)
    trail = world.services.store.audit_log(request.id)
    assert trail[-1].action == Action.APPROVAL
    assert trail[-1].details["no_longer_counted"] == [APPROVER]
    world.driver.approve(THIRD_APPROVER, message)
    final = world.driver.final_message(message)
    assert "state: succeeded" in rendered(final)
    assert confirm_calls(world) == 1
    done = world.services.store.get(request.id)
    assert done.approvers == (SECOND_APPROVER, THIRD_APPROVER)
