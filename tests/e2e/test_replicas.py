"""Two bot processes (replicas, `python -m bot` as the Procfile runs it) sharing one PostgreSQL
database, behind no load balancer: the tests send each click to the replica they choose.

A request made through one replica is approved through the other; and however many clicks
land on both replicas at once, each request reaches the provider exactly once. Runs on the
PostgreSQL server of tests/backends.py (a throwaway one unless TEST_DATABASE_URL_POSTGRES
names one).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from processes import BotProcess, Workspace, make_workspace, state_of

from bot.standins.driver import Delivered, Driver
from bot.standins.provider import Response
from bot.standins.world import APPROVER, REQUESTER, SECOND_APPROVER
from bot.store import open_store

EMAIL = "alice@example.com"


@dataclass
class Replicas:
    workspace: Workspace
    a: BotProcess
    b: BotProcess
    database_url: str

    def drivers(self) -> tuple[Driver, Driver]:
        return self.workspace.driver(self.a), self.workspace.driver(self.b)


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[Replicas]:
    """Two replicas started at the same moment on one new PostgreSQL database (so they also
    race to create its schema), against one FakeSlack and one FakeProvider."""
    with make_workspace(tmp_path) as ws:
        a = ws.start(ws.env(DATABASE_URL=postgres_url), healthy=False)
        b = ws.start(ws.env(DATABASE_URL=postgres_url), healthy=False)
        a.wait_healthy()
        b.wait_healthy()
        yield Replicas(ws, a, b, postgres_url)


def test_request_made_on_one_replica_is_approved_through_the_other(replicas: Replicas) -> None:
    """Asked through replica A, approved through replica B: B finds the request, calls the
    provider once, and the message ends succeeded with the result in its thread."""
    driver_a, driver_b = replicas.drivers()
    message = driver_a.ask(REQUESTER, EMAIL)
    assert state_of(message) == "pending"

    clicked = driver_b.approve(APPROVER, message)
    assert clicked.reply.status == 200
    final = driver_b.final_message(message)
    assert state_of(final) == "succeeded"
    assert not [b for b in final["blocks"] if b.get("type") == "actions"]
    assert "example.com" in str(driver_b.wait_thread_reply(message)["blocks"])
    assert [c["json"] for c in replicas.workspace.provider.calls] == [
        {"email": EMAIL, "approved": "yes"}
    ]
    with open_store(replicas.database_url) as store:
        found = store.find_open(EMAIL)
        assert found is None  # succeeded: nothing open any more
        [request] = store.list_requests()
        assert [e.action for e in store.audit_log(request.id)] == [
            "create",
            "lookup",
            "approve",
            "provider_success",
            "readback",  # read after the outcome, outside the claim
        ]


def test_clicks_spread_over_both_replicas_reach_the_provider_once_per_request(
    replicas: Replicas,
) -> None:
    """Ten requests (asked through both replicas), each clicked Approve four times at the same
    moment (twice on each replica, by two approvers; 40 clicks released by one barrier): every
    request reaches the provider exactly once, ends succeeded, and has one approval audited."""
    drivers = replicas.drivers()
    emails = [f"user{i}@example{i}.com" for i in range(10)]
    messages = [drivers[i % 2].ask(REQUESTER, email) for i, email in enumerate(emails)]
    assert all(state_of(m) == "pending" for m in messages)

    clicks: list[tuple[Driver, str, dict[str, Any]]] = [
        (drivers[n % 2], (APPROVER, SECOND_APPROVER)[n // 2], message)
        for message in messages
        for n in range(4)
    ]
    barrier = threading.Barrier(len(clicks))
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def click(driver: Driver, user: str, message: dict[str, Any]) -> None:
        try:
            barrier.wait(timeout=30)
            status = driver.approve(user, message).reply.status
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread below
            with lock:
                errors.append(e)
            return
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert statuses == [200] * len(clicks)

    for message in messages:
        assert state_of(drivers[0].final_message(message)) == "succeeded"
    calls = Counter(call["json"]["email"] for call in replicas.workspace.provider.calls)
    assert calls == Counter(dict.fromkeys(emails, 1))
    with open_store(replicas.database_url) as store:
        requests = store.list_requests()
        assert sorted(r.email for r in requests) == sorted(emails)
        for request in requests:
            actions = [e.action for e in store.audit_log(request.id)]
            assert actions.count("approve") == 1, actions
            assert actions[-2:] == ["provider_success", "readback"]


@pytest.fixture
def quorum_replicas(tmp_path: Path, postgres_url: str) -> Iterator[Replicas]:
    """Two replicas on one PostgreSQL database with APPROVALS_REQUIRED=2."""
    with make_workspace(tmp_path) as ws:
        env = ws.env(DATABASE_URL=postgres_url, APPROVALS_REQUIRED="2")
        a = ws.start(env, healthy=False)
        b = ws.start(env, healthy=False)
        a.wait_healthy()
        b.wait_healthy()
        yield Replicas(ws, a, b, postgres_url)


def test_two_approvers_racing_over_two_replicas_make_one_provider_call(
    quorum_replicas: Replicas,
) -> None:
    """APPROVALS_REQUIRED=2, two approvers each clicking Approve three times on each replica
    (12 clicks a request, on 5 requests: 60 clicks released together): each request counts
    both approvers once, reaches the provider exactly once, and its audit log has one approval
    and one claim."""
    drivers = quorum_replicas.drivers()
    emails = [f"quorum{i}@example{i}.com" for i in range(5)]
    messages = [drivers[i % 2].ask(REQUESTER, email) for i, email in enumerate(emails)]
    clicks = [
        (drivers[n % 2], (APPROVER, SECOND_APPROVER)[(n // 2) % 2], message)
        for message in messages
        for n in range(12)
    ]
    barrier = threading.Barrier(len(clicks))
    errors: list[BaseException] = []

    def click(driver: Driver, user: str, message: dict[str, Any]) -> None:
        try:
            barrier.wait(timeout=30)
            assert driver.approve(user, message).reply.status == 200
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread below
            errors.append(e)

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert errors == []
    for message in messages:
        assert state_of(drivers[0].final_message(message)) == "succeeded"
    calls = Counter(call["json"]["email"] for call in quorum_replicas.workspace.provider.calls)
    assert calls == Counter(dict.fromkeys(emails, 1))
    with open_store(quorum_replicas.database_url) as store:
        for request in store.list_requests():
            assert sorted(request.approvers) == sorted([APPROVER, SECOND_APPROVER])
            actions = [e.action for e in store.audit_log(request.id)]
            assert (actions.count("approval"), actions.count("approve")) == (1, 1), actions


def decided(replicas: Replicas, email: str) -> list[str]:
    """The cancel and approve entries of the one request for ``email``."""
    with open_store(replicas.database_url) as store:
        [request] = [r for r in store.list_requests() if r.email == email]
        return [e.action for e in store.audit_log(request.id) if e.action in ("cancel", "approve")]


def test_cancel_and_approve_in_either_order_over_two_replicas(replicas: Replicas) -> None:
    """On two replicas sharing PostgreSQL, both orders: Approve through A with the provider
    slow to answer (the call under way once it arrives), then Cancel through B: the Cancel is
    refused privately and the request succeeds with one provider call. Cancel through A, then
    Approve through B: the Approve is refused privately ("already cancelled") and the provider
    is never called."""
    driver_a, driver_b = replicas.drivers()
    provider = replicas.workspace.provider
    approved = driver_a.ask(REQUESTER, "first@example.com")
    provider.enqueue(Response.hang(2))  # answers normally, 2 s late (HOSTUP_TIMEOUT is 5)
    driver_a.approve(APPROVER, approved)
    provider.wait_for_calls(1)  # the approval claimed the request: the provider has the call
    refused = driver_b.answer(driver_b.cancel(REQUESTER, approved))
    assert "already executing" in refused or "already succeeded" in refused, refused
    assert state_of(driver_a.final_message(approved)) == "succeeded"
    assert decided(replicas, "first@example.com") == ["approve"]

    cancelled = driver_b.ask(REQUESTER, "second@example.com")
    answer = driver_a.answer(driver_a.cancel(REQUESTER, cancelled))
    assert "You cancelled your request" in answer
    refused = driver_b.answer(driver_b.approve(APPROVER, cancelled))
    assert f"already cancelled by <@{REQUESTER}>" in refused
    assert state_of(driver_b.final_message(cancelled)) == "cancelled"
    assert decided(replicas, "second@example.com") == ["cancel"]
    assert [c["json"]["email"] for c in provider.calls] == ["first@example.com"]


def test_cancel_racing_approve_over_two_replicas_exactly_one_wins(replicas: Replicas) -> None:
    """Five requests, each with the requester's Cancel on one replica and an Approve on the
    other, all ten clicks released together: each request ends either cancelled (no provider
    call) or succeeded (exactly one), with one decision audited, and the losing click is told
    privately that it is already decided."""
    drivers = replicas.drivers()
    emails = [f"race{i}@example{i}.com" for i in range(5)]
    messages = [drivers[i % 2].ask(REQUESTER, email) for i, email in enumerate(emails)]
    barrier = threading.Barrier(2 * len(emails))
    clicked: dict[tuple[str, str], Delivered] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def click(key: tuple[str, str], do: Any) -> None:
        try:
            barrier.wait(timeout=30)
            delivered = do()
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread below
            with lock:
                errors.append(e)
            return
        with lock:
            clicked[key] = delivered

    jobs: list[tuple[tuple[str, str], Any]] = []
    for i, (email, message) in enumerate(zip(emails, messages, strict=True)):
        canceller, approver = drivers[i % 2], drivers[(i + 1) % 2]
        jobs.append(((email, "cancel"), lambda d=canceller, m=message: d.cancel(REQUESTER, m)))
        jobs.append(((email, "approve"), lambda d=approver, m=message: d.approve(APPROVER, m)))
    threads = [threading.Thread(target=click, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []

    states = {
        e: state_of(drivers[0].final_message(m)) for e, m in zip(emails, messages, strict=True)
    }
    calls = Counter(call["json"]["email"] for call in replicas.workspace.provider.calls)
    for email in emails:
        state = states[email]
        assert state in ("succeeded", "cancelled"), (email, state)
        assert calls[email] == (1 if state == "succeeded" else 0), email
        assert len(decided(replicas, email)) == 1
        told = drivers[0].answer(clicked[(email, "cancel")])
        if state == "succeeded":
            assert "already" in told, told
        else:
            assert "You cancelled your request" in told
            approve_told = drivers[0].answer(clicked[(email, "approve")])
            assert f"already cancelled by <@{REQUESTER}>" in approve_told


def test_a_step_run_delivered_to_both_replicas_makes_one_request_completed_once(
    replicas: Replicas,
) -> None:
    """A Workflow Builder step's event delivered to both replicas at the same moment (Slack
    delivers an event again when the first ack is late, to whichever replica): one request;
    approved through one replica, the run is completed once, with its outputs."""
    slack = replicas.workspace.slack
    drivers = replicas.drivers()
    inputs = {"email": "step@example.com", "reason": "intake #7", "requested_by": REQUESTER}
    event = slack.run_function("verify_email", inputs)
    run = str(event["event"]["function_execution_id"])
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def deliver(driver: Driver) -> None:
        barrier.wait(timeout=30)
        statuses.append(driver.transport.event(event).status)

    threads = [threading.Thread(target=deliver, args=(d,)) for d in drivers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200, 200]
    message = drivers[0].request_message("step@example.com")
    assert state_of(message) == "pending"
    assert drivers[1].approve(APPROVER, message).reply.status == 200
    done = drivers[1].step_completion(run)
    assert done.ok and done.outputs["state"] == "succeeded"
    assert done.outputs["decided_by"] == APPROVER
    with open_store(replicas.database_url) as store:
        made = [r for r in store.list_requests() if r.workflow is not None]
        assert [r.workflow.execution_id for r in made if r.workflow] == [run]
    assert len(slack.completions(run)) == 1
    completions = [c for c in slack.calls_to("functions.completeSuccess") if c.ok]
    assert len(completions) == 1
