"""End to end over Socket Mode, against the local websocket stand-in."""

from __future__ import annotations

import json

from bot import ids
from bot.domain.model import State
from bot.standins.world import APPROVER, OUTSIDER, REQUESTER, World


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
