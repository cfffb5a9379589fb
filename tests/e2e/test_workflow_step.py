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
from worlds import later

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


def test_a_refused_call_completes_the_step_failed_with_the_providers_request_id(world):
    """The provider refuses the call (400): the run completes with state failed."""
    run = world.driver.run_step(step_inputs())
    request_of(world, run)
    world.provider.script("bad_request")
    world.driver.approve(APPROVER, world.driver.request_message(EMAIL))
    done = world.driver.step_completion(run)
    assert done.outputs["state"] == "failed" and done.outputs["decided_by"] == APPROVER


def test_an_unknown_outcome_closed_as_resolved_completes_the_step_resolved(world):
    """Unknown, then Resolved with a note by an approver: the run completes resolved, by
    whom, with the note, and no retry."""
    run = world.driver.run_step(step_inputs())
    request = request_of(world, run)
    world.provider.script("close_after_read")
    world.driver.approve(APPROVER, world.driver.request_message(EMAIL))
    world.slack.wait_for(
        lambda: world.services.store.get(request.id).state.value == "unknown" or None,
        10,
        what="the unknown outcome",
    )
    world.services.approvals.resolve(request.id, "U0APPROVER2", "checked: it was cleared")
    done = world.driver.step_completion(run)
    assert done.outputs["state"] == "resolved"
    assert done.outputs["decided_by"] == "U0APPROVER2"
    assert done.outputs["note"] == "checked: it was cleared" and done.outputs["retries"] == 0


def test_cancelled_and_expired_requests_complete_their_steps(world):
    """The requester's Cancel completes the run cancelled (decided by them); a request nobody
    decided before REQUEST_TTL completes expired (decided by nobody)."""
    cancelled = world.driver.run_step(step_inputs())
    request_of(world, cancelled)
    world.driver.cancel(REQUESTER, world.driver.request_message(EMAIL))
    done = world.driver.step_completion(cancelled)
    assert done.outputs["state"] == "cancelled" and done.outputs["decided_by"] == REQUESTER

    expired = world.driver.run_step(step_inputs("bob@example.com"))
    request_of(world, expired)
    world.driver.request_message("bob@example.com")
    later(world, 2 * 86400)
    world.services.maintenance.run_once()
    done = world.driver.step_completion(expired)
    assert done.outputs["state"] == "expired" and "decided_by" not in done.outputs


def test_a_completion_that_meets_a_slack_outage_and_a_restart_is_sent_once_later(
    database_url, tmp_path
):
    """Slack is down when the request is decided, and the bot restarts meanwhile: the run's
    completion waits in the outbox and is sent once Slack is back, once."""
    with World(database_path=tmp_path / "b.db", settings={"DATABASE_URL": database_url}) as w:
        run = w.driver.run_step(step_inputs())
        request = request_of(w, run)
        message = w.driver.request_message(EMAIL)
        assert w.services.roles.is_approver(APPROVER)  # the group read before Slack goes down
        w.slack.outage(3600)
        w.services.approvals.approve(request.id, APPROVER)
        assert w.slack.completions(run) == []
        w.services.maintenance.run_once()  # a retry meets the outage too
        assert w.slack.completions(run) == []
        w.slack.outage(0)  # Slack is back; the bot restarts before it tries again
        w.restart_bot()
        later(w, 3600)
        w.services.maintenance.run_once()
        done = w.driver.step_completion(run)
        assert done.outputs["state"] == "succeeded"
        w.services.maintenance.run_once()
        assert len(w.slack.completions(run)) == 1
        stored = w.services.store.get(request.id)
        assert stored is not None and stored.message_ts == message["ts"]
