"""The Workflow Builder step "Verify email with approval" end to end (issue 22): a workflow runs
the step (Slack sends function_executed), the bot makes the request as the command and form do,
people decide it in the approval channel, and the run completes once, with outputs the
workflow can branch on; a run whose request cannot be made fails with the command's words.
Over HTTP and Socket Mode, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.slack import ids
from bot.standins.driver import buttons
from bot.standins.world import APPROVER, REQUESTER, World

EMAIL = "alice@example.com"


@pytest.fixture(params=["http", "socket"])
def world(request: pytest.FixtureRequest, database_url: str) -> Iterator[World]:
    with World(socket_mode=request.param == "socket", settings={"DATABASE_URL": database_url}) as w:
        yield w


def step_inputs(email: str = EMAIL, **more: Any) -> dict[str, Any]:
    return {"email": email, "reason": "Customer intake #42", "requested_by": REQUESTER} | more


def request_of(world: World, execution_id: str) -> Any:
    def made() -> Any:
        return world.services.store.find_by_step(execution_id)

    return world.slack.wait_for(made, 10, what=f"the request of step run {execution_id}")


def test_a_step_makes_a_request_and_completes_when_it_succeeds(world):
    """The step's run makes one request for the person it runs for, posted in the approval
    channel saying it came from a workflow; nothing completes while it waits; once approved
    and cleared, the run completes once with the state, who decided, what the provider
    cleared and notified, its requestId and a link to the message."""
    run = world.driver.run_step(step_inputs())
    request = request_of(world, run)
    assert (request.requester, request.email) == (REQUESTER, EMAIL)
    message = world.driver.request_message(EMAIL)
    assert "through a Workflow Builder step" in json.dumps(message)
    assert world.slack.completions(run) == []

    world.driver.approve(APPROVER, message)
    done = world.driver.step_completion(run)
    assert done.ok
    outputs = done.outputs
    assert outputs["state"] == "succeeded"
    assert outputs["decided_by"] == APPROVER
    assert outputs["cleared_domains"] and outputs["provider_request_id"]
    assert outputs["request_link"].startswith("https://")
    assert outputs["retries"] == 0
    world.services.maintenance.run_once()
    assert len(world.slack.completions(run)) == 1


def test_a_rejected_request_completes_its_step_rejected_with_the_reason(world):
    """Reject (with a reason) completes the run: state rejected, by whom, the reason."""
    run = world.driver.run_step(step_inputs())
    request_of(world, run)
    message = world.driver.request_message(EMAIL)
    world.driver.reject(APPROVER, message, "not this customer")
    done = world.driver.step_completion(run)
    assert done.outputs["state"] == "rejected"
    assert done.outputs["decided_by"] == APPROVER
    assert done.outputs["note"] == "not this customer"


def test_an_unknown_outcome_completes_only_once_it_is_retried(world):
    """A call whose outcome nobody knows leaves the run running; an approver's Retry calls the
    provider again and the run completes with that outcome, saying it was retried."""
    run = world.driver.run_step(step_inputs())
    request_of(world, run)
    message = world.driver.request_message(EMAIL)
    world.provider.script("close_after_read")
    world.driver.approve(APPROVER, message)
    reply = world.driver.wait_thread_reply(message)
    assert ids.RETRY_ACTION in buttons(reply)
    world.services.maintenance.run_once()
    assert world.slack.completions(run) == []
    world.driver.click("U0APPROVER2", reply, ids.RETRY_ACTION)
    done = world.driver.step_completion(run)
    assert done.outputs["state"] == "succeeded"
    assert done.outputs["retries"] == 1


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        (step_inputs("not-an-email"), "email"),
        (step_inputs(requested_by="U0NOBODY"), "request"),
        (step_inputs(operation="delete"), "confirm or resend"),
    ],
)
def test_a_run_whose_request_cannot_be_made_fails_with_the_commands_words(world, inputs, words):
    """A bad address, someone who may not ask, an operation the step does not know: no
    request, and the run fails at once with words saying why."""
    run = world.driver.run_step(inputs)
    done = world.driver.step_completion(run)
    assert not done.ok and words in done.error.lower()
    assert world.services.store.list_requests() == []


def test_an_open_request_for_the_email_fails_the_run_and_a_repeated_event_makes_none(world):
    """The email has an open request (made by the command): the step's run fails naming it.
    Slack delivering a run's event twice makes one request, and one completion."""
    world.driver.ask(REQUESTER, EMAIL)
    run = world.driver.run_step(step_inputs())
    done = world.driver.step_completion(run)
    assert not done.ok and "open request" in done.error.lower()

    second = world.driver.run_step(step_inputs("bob@example.com"))
    first = request_of(world, second)
    execution = world.slack.execution(second)
    again = world.slack.run_function("verify_email", step_inputs("bob@example.com"))
    again["event"]["function_execution_id"] = execution.execution_id
    assert world.driver.transport.event(again).status == 200
    mine = [r for r in world.services.store.list_requests() if r.workflow is not None]
    assert [r.id for r in mine] == [first.id]
