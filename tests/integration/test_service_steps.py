"""Requests made by a Workflow Builder step run, at the service with a real SQLite store: a
run's event handled twice makes one request, even when both copies race (the second finds the
first's request only as the open request for the email); durably failing a run whose request
could not be made (bot/slack/step_failures.py) against a stand-in for Slack's answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from doubles import Clock, Delivery, Roles, StubProvider

from bot.domain.model import VerificationRequest, WorkflowRun
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack.notifier import DeliveryError
from bot.slack.step_failures import StepFailures
from bot.store import open_store

RUN = WorkflowRun("Fx0001", "Wx0001")


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/steps.db")
    yield s
    s.close()


class LateStore:
    """The store, but its first look for the run's request misses: as when the other copy of
    the event had not committed its request yet."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.misses = 1

    def find_by_step(self, execution_id: str) -> VerificationRequest | None:
        if self.misses:
            self.misses -= 1
            return None
        return self.store.find_by_step(execution_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_run_handled_twice_in_a_race_makes_one_request_and_no_refusal(store):
    """The second copy of a run's event misses the first copy's request by its run (not
    committed when it looked) and finds it as the email's open request: it gets that request
    back, is not refused, and makes no second one."""
    clock = Clock()
    policy = ApprovalPolicy(ttl=timedelta(hours=1))
    roles = Roles(approvers={"U2"}, requesters={"U1"})
    first = Approvals(store, StubProvider(), roles, Delivery(), policy, clock=clock)
    made = first.submit("ann@example.com", "intake", "U1", workflow=RUN)
    racing = Approvals(LateStore(store), StubProvider(), roles, Delivery(), policy, clock=clock)
    again = racing.submit("ann@example.com", "intake", "U1", workflow=RUN)
    assert again.id == made.id
    assert [r.id for r in store.list_requests()] == [made.id]
    assert made.workflow == RUN


class Slack:
    """functions.completeError as the step failures see it: down ``down`` times, then up."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.failed: list[tuple[str, str]] = []

    def fail_step(self, execution_id: str, error: str) -> bool:
        if self.down:
            self.down -= 1
            raise DeliveryError("fail step run", "service_unavailable", permanent=False)
        self.failed.append((execution_id, error))
        return True


def test_a_run_slack_would_not_fail_is_failed_later_once(store):
    """Slack down when a run is refused: the words are kept and sent by a later round (after
    the backoff), once; a second refusal of the same run (its event again) sends nothing more."""
    clock = Clock()
    slack = Slack(down=2)
    failures = StepFailures(store, slack, clock=clock)
    failures.fail("Fx0002", "Not an email address.")
    assert slack.failed == []
    assert failures.deliver_due() == 0  # its next attempt is not due yet
    clock.advance(seconds=3)
    assert failures.deliver_due() == 0  # Slack still down
    clock.advance(seconds=600)
    assert failures.deliver_due() == 1
    assert slack.failed == [("Fx0002", "Not an email address.")]
    failures.fail("Fx0002", "Not an email address.")
    clock.advance(seconds=600)
    assert failures.deliver_due() == 0
    assert slack.failed == [("Fx0002", "Not an email address.")]
