"""Roles: IDs and user groups, cached group lookups that fail closed (against FakeSlack)."""

from __future__ import annotations

import threading

import pytest
from doubles import Monotonic
from slack_sdk import WebClient

from bot.slack.roles import Roles
from bot.standins.slack import FakeSlack


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
    timer = Monotonic()
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


# ------------------------------------------------------------- full members of the workspace


def user_lookups(slack) -> int:
    return len(slack.calls_to("users.info"))


@pytest.mark.parametrize(
    "fields",
    [
        {"is_restricted": True},
        {"is_restricted": True, "is_ultra_restricted": True},
        {"deleted": True},
        {"is_bot": True},
        {"is_workflow_bot": True},
        {"team_id": "T0OTHER"},
        {"is_stranger": True},
        {"team_id": "T0OTHER", "enterprise_user": {"enterprise_id": "E0OTHER"}},
    ],
)
def test_everyone_and_groups_admit_only_full_members(client, slack, fields):
    """Guests, deactivated accounts, bots and other organisations' users get no role through
    `*` or a user group; `excluded` then says membership was the reason."""
    slack.set_usergroup("S0APPROVERS", ["U0ANN", "U0ODD"])
    slack.set_user("U0ODD", **fields)
    roles = Roles(client, ["S0APPROVERS"], ["*"])
    assert not roles.is_requester("U0ODD")
    assert not roles.is_approver("U0ODD")
    assert roles.excluded("U0ODD")
    assert roles.is_requester("U0ANN") and roles.is_approver("U0ANN")
    assert not roles.excluded("U0ANN")


def test_an_org_wide_install_admits_the_organisations_other_workspaces(client, slack):
    """On an Enterprise Grid org-wide install (auth.test names the enterprise), a member of
    another workspace of the same organisation is a member; another organisation's is not."""
    slack.set_user("U0ORG", team_id="T0SISTER", enterprise_user={"enterprise_id": "E0ACME"})
    slack.set_user("U0EXT", team_id="T0EXT", enterprise_user={"enterprise_id": "E0OTHER"})
    roles = Roles(client, [], ["*"])
    roles._home = (slack.team_id, "E0ACME")  # what auth.test answers on an org-wide install
    assert roles.is_requester("U0ORG")
    assert not roles.is_requester("U0EXT")


def test_a_user_listed_by_id_is_not_looked_up(client, slack):
    """A user ID listed in the settings is the admin's deliberate choice: no users.info call,
    even for a guest."""
    slack.set_user("U0DIRECT", is_restricted=True)
    roles = Roles(client, ["U0DIRECT"], ["U0DIRECT"])
    assert roles.is_approver("U0DIRECT") and roles.is_requester("U0DIRECT")
    assert user_lookups(slack) == 0


def test_member_lookups_are_cached_until_ttl(client, slack):
    """One users.info per user per TTL (and one auth.test ever), whichever role asks; after
    the TTL Slack is asked again and a change (deactivated meanwhile) is seen."""
    timer = Monotonic()
    roles = Roles(client, ["S0APPROVERS"], ["*"], ttl=300, timer=timer)
    for _ in range(3):
        assert roles.is_approver("U0ANN") and roles.is_requester("U0ANN")
    assert user_lookups(slack) == 1 and len(slack.calls_to("auth.test")) == 1
    slack.set_user("U0ANN", deleted=True)
    timer.now += 301
    assert not roles.is_requester("U0ANN")
    assert user_lookups(slack) == 2 and len(slack.calls_to("auth.test")) == 1


def test_a_failing_member_lookup_fails_closed_and_is_not_cached(client, slack, caplog):
    """users.info failing (or the user unknown, or auth.test failing): no role, one WARNING
    each; the next check asks again."""
    roles = Roles(client, [], ["*"])
    slack.fail_next("users.info", error="ratelimited")
    with caplog.at_level("WARNING", logger="bot.slack.roles"):
        assert not roles.is_requester("U0ANN")
    assert [r.levelname for r in caplog.records if r.name == "bot.slack.roles"] == ["WARNING"]
    assert roles.excluded("U0ANN")
    assert roles.is_requester("U0ANN")
    assert not roles.excluded("U0ANN")
    slack.set_user("U0GONE", missing=True)
    assert not roles.is_requester("U0GONE")
    fresh = Roles(client, [], ["*"])
    slack.fail_next("auth.test", error="internal_error")
    assert not fresh.is_requester("U0BOB")
    assert fresh.is_requester("U0BOB")
