"""Roles: IDs and user groups, cached group lookups that fail closed (against FakeSlack)."""

from __future__ import annotations

import threading

import pytest
from slack_sdk import WebClient

from bot.roles import Roles
from bot.standins.slack import FakeSlack


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slack():
    with FakeSlack(bot_token="xoxb-test") as fake:
        fake.set_usergroup("S0APPROVERS", ["U0ANN", "U0BOB"])
        fake.set_usergroup("S0SUPPORT", ["U0SUE"])
        yield fake


@pytest.fixture
def client(slack):
    return WebClient(token="xoxb-test", base_url=slack.api_url)


def lookups(slack) -> int:
    return len(slack.calls_to("usergroups.users.list"))


def test_user_ids_and_groups(client, slack):
    """A user matches by ID directly or through a group's member list."""
    roles = Roles(client, ["U0DIRECT", "S0APPROVERS"], ["S0SUPPORT"])
    assert roles.is_approver("U0DIRECT")
    assert roles.is_approver("U0ANN")
    assert not roles.is_approver("U0SUE")
    assert roles.is_requester("U0SUE")
    assert not roles.is_requester("U0ANN")
    assert not roles.is_approver("")


def test_names_never_match(client):
    """A display name equal to an ID-like string in the group is not how anyone gets in."""
    roles = Roles(client, ["S0APPROVERS"], ["S0APPROVERS"])
    assert not roles.is_approver("ann")
    assert not roles.is_approver("S0APPROVERS")


def test_everyone(client):
    """`*` in REQUESTERS lets every workspace member ask, without any lookup."""
    roles = Roles(client, ["U0ANN"], ["*"])
    assert roles.is_requester("U0ANYONE")
    assert not roles.is_approver("U0ANYONE")


def test_group_lookups_are_cached_until_ttl(client, slack):
    """The second check uses the cache; after the TTL Slack is asked again."""
    timer = Timer()
    roles = Roles(client, ["S0APPROVERS"], ["S0APPROVERS"], ttl=300, timer=timer)
    assert roles.is_approver("U0ANN")
    assert roles.is_approver("U0BOB")
    assert roles.is_requester("U0ANN")
    assert lookups(slack) == 1
    timer.now += 301
    slack.set_usergroup("S0APPROVERS", ["U0BOB"])
    assert not roles.is_approver("U0ANN")
    assert lookups(slack) == 2


def test_concurrent_checks_share_one_lookup(client, slack):
    """Twenty threads asking at once about a cold group make one Slack call."""
    slack.set_delay("usergroups.users.list", 0.2)
    roles = Roles(client, ["S0APPROVERS"], [])
    barrier = threading.Barrier(20)
    results: list[bool] = []

    def check() -> None:
        barrier.wait()
        results.append(roles.is_approver("U0ANN"))

    threads = [threading.Thread(target=check) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 20
    assert lookups(slack) == 1


def test_lookup_failure_fails_closed_and_is_not_cached(client, slack):
    """When Slack cannot say, the user is not a member; the failure is not cached."""
    roles = Roles(client, ["S0APPROVERS"], [])
    slack.fail_next("usergroups.users.list", error="internal_error")
    assert not roles.is_approver("U0ANN")
    assert roles.is_approver("U0ANN")
    assert lookups(slack) == 2


def test_unknown_group_fails_closed(client):
    """A group Slack does not know gives nobody a role."""
    roles = Roles(client, ["S0NOSUCH"], [])
    assert not roles.is_approver("U0ANN")


def test_unreachable_slack_fails_closed():
    """Slack unreachable: nobody gets a role through a group."""
    dead = WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/", timeout=1)
    roles = Roles(dead, ["S0APPROVERS", "U0DIRECT"], [])
    assert not roles.is_approver("U0ANN")
    assert roles.is_approver("U0DIRECT")


def test_one_failing_group_does_not_hide_another(client, slack):
    """A failing group is skipped; membership of another listed group still counts."""
    roles = Roles(client, ["S0NOSUCH", "S0APPROVERS"], [])
    assert roles.is_approver("U0BOB")
