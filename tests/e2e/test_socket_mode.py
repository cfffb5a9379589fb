"""End to end over Socket Mode, against the local websocket stand-in."""

from __future__ import annotations

import json

from worlds import confirm_calls, later, request_of

from bot.domain.model import State
from bot.slack import ids
from bot.standins.driver import button_values, buttons, rendered
from bot.standins.world import (
    APPROVER,
    APPROVER_GROUP,
    OUTSIDER,
    REQUESTER,
    SECOND_APPROVER,
    World,
)


def test_whole_flow_over_socket_mode(tmp_path):
    """With SLACK_APP_TOKEN set, the bot connects over Socket Mode and the whole flow works:
    command, modal, submit, approve, thread reply, final message."""
    with World(socket_mode=True, database_path=tmp_path / "b.db") as world:
        assert world.settings.socket_mode
        assert world.slack.calls_to("apps.connections.open")
        sent = world.driver.command(REQUESTER, "<mailto:alice@example.com|alice@example.com>")
        view = world.driver.modal(sent)
        assert view["callback_id"] == ids.REQUEST_VIEW
        world.driver.submit_request(REQUESTER, view, reason="TICKET-1")
        message = world.driver.request_message("alice@example.com")
        world.driver.approve(APPROVER, message)
        final = world.driver.final_message(message)
        reply = world.driver.wait_thread_reply(message)
        assert "state: succeeded" in json.dumps(final["blocks"])
        assert "example.com" in json.dumps(reply["blocks"])
        assert len(world.provider.calls) == 1
        requests = world.services.store.list_requests()
        assert [r.state for r in requests] == [State.SUCCEEDED]


def test_socket_mode_field_errors_and_refusals(tmp_path):
    """Over Socket Mode, modal errors come back in the ack and refusals are private."""
    with World(socket_mode=True, database_path=tmp_path / "b.db") as world:
        view = world.driver.modal(world.driver.command(REQUESTER, ""))
        reply = world.driver.submit_request(REQUESTER, view, email="nope", reason="x")
        assert reply.body["response_action"] == "errors"
        refused = world.driver.command(OUTSIDER, "a@example.com")
        assert "REQUESTERS" in world.driver.answer(refused)


# ------------------------------------------------------------- the approver's side (issue 10)


def socket_world(tmp_path, **settings: object) -> World:
    return World(socket_mode=True, database_path=tmp_path / "s.db", settings=settings)


def test_cancel_from_the_request_message_over_socket_mode(tmp_path):
    """Over Socket Mode the requester's Cancel on the request message works as over HTTP: the
    requester is answered privately through the click's response_url, the channel message
    says who cancelled and loses its buttons, and the provider is never called."""
    with socket_world(tmp_path) as world:
        message = world.driver.ask(REQUESTER, "alice@example.com")
        clicked = world.driver.cancel(REQUESTER, message)
        assert clicked.reply.status == 200
        response = world.slack.wait_for(
            lambda: next((r for r in world.slack.responses if r.url == clicked.response_url), None),
            what="the answer to Cancel",
        )
        assert response.body["replace_original"] is False
        assert "You cancelled your request" in response.body["text"]
        final = world.driver.final_message(message)
        assert f"Cancelled by <@{REQUESTER}>" in rendered(final) and buttons(final) == []
        assert request_of(world, message).state is State.CANCELLED
        assert confirm_calls(world) == 0


def test_a_reminder_over_socket_mode(tmp_path):
    """Over Socket Mode a maintenance round past REMIND_EVERY reminds the approvers in the
    request's thread, once in the interval."""
    with socket_world(tmp_path, REMIND_EVERY=60) as world:
        message = world.driver.ask(REQUESTER, "alice@example.com")
        later(world, 61)
        assert world.services.maintenance.run_once()["reminded"] == 1
        [reminder] = world.slack.wait_for(
            lambda: world.driver.reminders(message) or None, what="it"
        )
        assert f"<!subteam^{APPROVER_GROUP}>" in reminder["text"]
        assert world.services.maintenance.run_once()["reminded"] == 0


def test_history_beside_a_request_over_socket_mode(tmp_path):
    """Over Socket Mode a repeat request shows the earlier one beside it: cleared once, by
    whom."""
    with socket_world(tmp_path) as world:
        first = world.driver.ask(REQUESTER, "alice@example.com")
        world.driver.approve(APPROVER, first)
        world.driver.final_message(first)
        again = world.driver.ask(REQUESTER, "alice@example.com")
        assert f"cleared once in the last 30 days, last by <@{APPROVER}>" in rendered(again)


def test_status_over_socket_mode(tmp_path):
    """Over Socket Mode `/verify-email status EMAIL` is acked empty and answered privately
    through the response_url: the open request with its link, no form opened."""
    with socket_world(tmp_path) as world:
        world.driver.ask(REQUESTER, "alice@example.com")
        opened = len(world.slack.calls_to("views.open"))
        sent = world.driver.command(REQUESTER, "status alice@example.com")
        assert sent.reply.status == 200 and sent.reply.text == ""
        answer = world.driver.answer(sent)
        assert "Requests for `alice@example.com`" in answer
        assert "|the open request> is pending" in answer
        assert len(world.slack.calls_to("views.open")) == opened


def test_home_tab_clicks_over_socket_mode(tmp_path):
    """Over Socket Mode, clicks on the Home tab (no response_url): the first approver's
    Approve is answered by DM ("recorded: 1 of 2"), the second's calls the provider once; a
    requester's Cancel on another request is answered by DM too."""
    with socket_world(tmp_path, APPROVALS_REQUIRED=2) as world:
        message = world.driver.ask(REQUESTER, "alice@example.com")
        other = world.driver.ask(REQUESTER, "bob@example.org")
        home = world.driver.open_home(APPROVER)
        waiting = [world.services.store.get(r) for r in button_values(home, ids.APPROVE_ACTION)]
        by_email = {r.email: r.id for r in waiting if r is not None}
        responses = len(world.slack.responses)
        clicked = world.driver.click_home(
            APPROVER, ids.APPROVE_ACTION, by_email["alice@example.com"]
        )
        assert clicked.status == 200
        world.slack.wait_for(
            lambda: any("recorded: 1 of 2" in t for t in world.driver.dm_texts(APPROVER)) or None,
            what="the approver's private answer by DM",
        )
        world.driver.open_home(SECOND_APPROVER)
        world.driver.click_home(SECOND_APPROVER, ids.APPROVE_ACTION, by_email["alice@example.com"])
        assert "state: succeeded" in rendered(world.driver.final_message(message))
        assert confirm_calls(world) == 1
        world.driver.open_home(REQUESTER)
        world.driver.click_home(REQUESTER, ids.CANCEL_ACTION, by_email["bob@example.org"])
        world.slack.wait_for(
            lambda: (
                any("You cancelled your request" in t for t in world.driver.dm_texts(REQUESTER))
                or None
            ),
            what="the requester's private answer by DM",
        )
        assert "Cancelled by" in rendered(world.driver.final_message(other))
        # Every private answer went by DM: the Home clicks had no response_url to post to.
        assert len(world.slack.responses) == responses
