"""Bulk requests at the service (bot/domain/bulk.py through ``Approvals``) with the doubles and
a real SQLite store: asking (left out, duplicates, the bulk quorum), the run (each email
called once, at the pace, within the concurrency), the provider's 429 (queued again, every
runner held off), an unknown item and Retry of it only, Cancel during the run, a claim whose
lease ran out, and the one ``finish`` entry with what Slack is told of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from doubles import T0, Clock, Delivery, Roles, Rules, StubProvider, rule

from bot.domain.bulk import NotAllowed, NothingToAsk, strictest
from bot.domain.model import Operation, State
from bot.domain.outcomes import ProviderFailed
from bot.domain.pace import Pace
from bot.domain.ports import Claimed, Hold
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack.notices import notices_for
from bot.store import open_store

REQUESTER = "U1"
EMAILS = [f"user{n}@d{n % 3}.example" for n in range(6)]


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/bulk.db", announce=notices_for)
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider() -> StubProvider:
    return StubProvider()


@pytest.fixture
def roles() -> Roles:
    return Roles(approvers={"U2", "U3", "U4"}, requesters={REQUESTER})


def service(store, clock, provider, roles, rules=None, **policy) -> Approvals:
    terms: dict[str, Any] = {"ttl": timedelta(hours=1), "bulk_rate": 10.0, "bulk_concurrency": 2}
    terms |= policy
    return Approvals(
        store,
        provider,
        roles,
        Delivery(),
        ApprovalPolicy(**terms),
        clock=clock,
        rules=rules,
    )


def run_all(approvals: Approvals, clock: Clock, *, steps: int = 200) -> list[Claimed]:
    """Run the batch runner until nothing is queued, moving the clock through each hold."""
    done: list[Claimed] = []
    for _ in range(steps):
        got = approvals.run_next()
        if isinstance(got, Claimed):
            done.append(got)
            continue
        if got.idle:
            return done
        clock.advance(seconds=got.seconds)
    raise AssertionError("the run never ended")


def approved(approvals: Approvals, request_id: str):
    approvals.approve(request_id, "U2")
    return approvals.approve(request_id, "U3")


def actions(store, request_id: str) -> list[str]:
    return [e.action for e in store.audit_log(request_id)]


def test_a_bulk_request_needs_two_approvals_and_runs_each_email_once(store, clock, provider, roles):
    """Without a policy, a bulk request needs two approvals even when single requests need
    one; the second queues every item (nobody calls the provider on the click) and the runner
    calls each email once; the run ends succeeded with one finish entry and one final reply."""
    approvals = service(store, clock, provider, roles)
    asked = approvals.submit_bulk(EMAILS + [EMAILS[0].upper()], "incident 42", REQUESTER)
    request = asked.request
    assert request.bulk and request.state is State.PENDING
    assert [i.email for i in request.items] == EMAILS  # the duplicate collapsed

    after_one = approvals.approve(request.id, "U2")
    assert after_one.state is State.PENDING
    started = approvals.approve(request.id, "U3")
    assert started.state is State.EXECUTING
    assert started.started_at == clock.now
    assert all(i.state is State.PENDING for i in started.items)
    assert provider.calls == []

    run_all(approvals, clock)
    assert sorted(provider.calls) == sorted(EMAILS)
    final = store.get(request.id)
    assert final.state is State.SUCCEEDED
    assert all(i.state is State.SUCCEEDED for i in final.items)
    log = actions(store, request.id)
    assert log.count("run") == len(EMAILS)
    assert log.count("finish") == 1 and log[-1] == "finish"
    kinds = [e.kind for e in store.outbox_entries(request.id)]
    assert kinds.count("reply_result") == 1


def test_the_pace_spaces_claims_and_the_concurrency_caps_them(store, clock, provider, roles):
    """Claims are BULK_RATE apart: one right after another waits the interval; with every
    slot of BULK_CONCURRENCY running, a claim waits even when the pace allows it."""
    approvals = service(store, clock, provider, roles, bulk_rate=4.0, bulk_concurrency=2)
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    first = store.claim_next_item(
        now=clock.now,
        claim_id="c1",
        lease_until=clock.now + timedelta(minutes=1),
        interval=0.25,
        concurrency=2,
    )
    assert isinstance(first, Claimed)
    too_soon = store.claim_next_item(
        now=clock.now,
        claim_id="c2",
        lease_until=clock.now + timedelta(minutes=1),
        interval=0.25,
        concurrency=2,
    )
    assert isinstance(too_soon, Hold) and too_soon.seconds == pytest.approx(0.25)
    clock.advance(seconds=0.25)
    second = store.claim_next_item(
        now=clock.now,
        claim_id="c2",
        lease_until=clock.now + timedelta(minutes=1),
        interval=0.25,
        concurrency=2,
    )
    assert isinstance(second, Claimed) and second.position != first.position
    clock.advance(seconds=1)
    busy = store.claim_next_item(
        now=clock.now,
        claim_id="c3",
        lease_until=clock.now + timedelta(minutes=1),
        interval=0.25,
        concurrency=2,
    )
    assert isinstance(busy, Hold) and not busy.idle
    assert sum(i.state is State.EXECUTING for i in store.get(request.id).items) == 2


def test_a_429_queues_the_item_again_and_holds_every_runner(store, clock, provider, roles):
    """The provider's rate limit (429 after the client's own waits) did nothing: the item goes
    back to the queue (audited ``throttled``, no outcome), no runner claims before its
    Retry-After, and the email is called again later and cleared."""
    approvals = service(store, clock, provider, roles)
    limited = ProviderFailed(
        kind="rate_limited",
        message="The provider's rate limit",
        status=429,
        code="rate_limited",
        pace=Pace(read_at=T0, retry_after=30.0, remaining=0),
    )
    provider.answers[EMAILS[0]] = [limited, provider.answer]
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    first = approvals.run_next()
    assert isinstance(first, Claimed)
    item = store.get(request.id).items[0]
    assert item.state is State.PENDING and item.outcome is None
    held = approvals.run_next()
    assert isinstance(held, Hold) and held.seconds == pytest.approx(30.0, abs=0.01)

    run_all(approvals, clock)
    assert provider.calls.count(EMAILS[0]) == 2
    assert store.get(request.id).state is State.SUCCEEDED
    assert "throttled" in actions(store, request.id)


def test_a_call_waiting_out_a_429_holds_every_other_runner(store, clock, provider, roles):
    """While one item's call waits out a 429's Retry-After before trying again (the client
    asks to keep its claim that long), every other runner holds off as long: the next claim
    waits, though the pace and the concurrency would allow it."""
    approvals = service(store, clock, provider, roles)
    provider.waits = [12.0]
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    assert isinstance(approvals.run_next(), Claimed)
    clock.advance(seconds=1)
    held = approvals.run_next()
    assert isinstance(held, Hold) and held.seconds == pytest.approx(11.0, abs=0.01)


def test_no_calls_left_in_the_window_holds_every_runner_until_it_resets(
    store, clock, provider, roles
):
    """An answer saying no calls are left (X-RateLimit-Remaining: 0) until its window resets
    (X-RateLimit-Reset, an ISO time) holds every runner until then, though it succeeded."""
    approvals = service(store, clock, provider, roles)
    spent = Pace(read_at=T0, remaining=0, limit=20, reset_at=T0 + timedelta(seconds=8))
    provider.answers[EMAILS[0]] = [replace(provider.answer, pace=spent)]
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    assert isinstance(approvals.run_next(), Claimed)
    clock.advance(seconds=1)
    held = approvals.run_next()
    assert isinstance(held, Hold) and held.seconds == pytest.approx(7.0, abs=0.01)


def test_retry_of_a_batch_calls_its_unknown_items_only(store, clock, provider, roles):
    """An email whose outcome nobody knows leaves the batch unknown; Retry queues that item
    only (four eyes as ever), and the next run calls that email alone."""
    approvals = service(store, clock, provider, roles)
    unknown = ProviderFailed(kind="timeout", message="No answer in time", outcome_unknown=True)
    provider.answers[EMAILS[2]] = [unknown, provider.answer]
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    run_all(approvals, clock)
    assert store.get(request.id).state is State.UNKNOWN
    with pytest.raises(Refused) as self_retry:
        approvals.retry(request.id, REQUESTER)
    assert self_retry.value.code in {Refusal.SELF_APPROVAL, Refusal.NOT_AN_APPROVER}

    calls_before = len(provider.calls)
    retried = approvals.retry(request.id, "U4").after
    assert retried.state is State.EXECUTING
    assert [i.state for i in retried.items].count(State.PENDING) == 1
    run_all(approvals, clock)
    assert provider.calls[calls_before:] == [EMAILS[2]]
    assert store.get(request.id).state is State.SUCCEEDED
    assert actions(store, request.id).count("finish") == 2


def test_cancel_during_the_run_stops_the_items_not_started(store, clock, provider, roles):
    """The requester's Cancel during a run cancels what is queued; the item already running
    ends as its call does; the request ends cancelled, with one finish entry."""
    approvals = service(store, clock, provider, roles)
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    running = store.claim_next_item(
        now=clock.now,
        claim_id="c1",
        lease_until=clock.now + timedelta(minutes=1),
        interval=0.1,
        concurrency=2,
    )
    assert isinstance(running, Claimed)
    stopped = approvals.cancel(request.id, REQUESTER)
    assert stopped.state is State.EXECUTING  # one item still running
    states = [i.state for i in stopped.items]
    assert states.count(State.CANCELLED) == len(EMAILS) - 1
    clock.advance(seconds=1)  # past the pace's next slot
    nothing_queued = approvals.run_next()
    assert isinstance(nothing_queued, Hold) and nothing_queued.idle
    # The running item's call ends: the run is over.
    approvals._run_item(running.request, running.position)
    final = store.get(request.id)
    assert final.state is State.CANCELLED
    assert provider.calls == [EMAILS[running.position]]
    assert actions(store, request.id).count("finish") == 1


def test_a_claim_whose_lease_ran_out_is_unknown_and_the_rest_run(store, clock, provider, roles):
    """A runner that stopped mid-call (its lease ran out): the sweep makes that item unknown,
    never calls it again, and the other items are run by whoever asks next."""
    approvals = service(store, clock, provider, roles)
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    lost = store.claim_next_item(
        now=clock.now,
        claim_id="lost",
        lease_until=clock.now + timedelta(seconds=30),
        interval=0.1,
        concurrency=2,
    )
    assert isinstance(lost, Claimed)
    clock.advance(seconds=31)
    recovered = approvals.recover_interrupted(max_call_seconds=60)
    assert [r.id for r in recovered] == [request.id]
    run_all(approvals, clock)
    final = store.get(request.id)
    assert final.state is State.UNKNOWN
    assert final.items[lost.position].state is State.UNKNOWN
    assert EMAILS[lost.position] not in provider.calls
    assert len(provider.calls) == len(EMAILS) - 1


def test_emails_with_open_requests_are_left_out_and_named(store, clock, provider, roles):
    """An email with an open request elsewhere is left out of the batch and named with that
    request; when every email has one, nothing is asked."""
    approvals = service(store, clock, provider, roles)
    single = approvals.submit(EMAILS[1], "a single one", REQUESTER)
    asked = approvals.submit_bulk(EMAILS, "incident", REQUESTER)
    assert asked.left_out == ((EMAILS[1], single.id),)
    assert EMAILS[1] not in [i.email for i in asked.request.items]
    with pytest.raises(NothingToAsk) as nothing:
        approvals.submit_bulk([EMAILS[0], EMAILS[1]], "again", REQUESTER)
    assert {email for email, _ in nothing.value.left_out} == {EMAILS[0], EMAILS[1]}


def test_the_rules_apply_per_email_and_the_strictest_terms_win(store, clock, provider, roles):
    """With rules, a bulk request needs at least the policy's [bulk] approvals, and an
    operation the rules refuse for its emails asks nothing."""
    rules = Rules({Operation.CONFIRM: rule("support", approvers=("U2", "U3", "U4"))}, 3)
    approvals = service(store, clock, provider, roles, rules=rules)
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    assert request.rule is not None and request.rule.approvals_required == 3
    with pytest.raises(NotAllowed) as refused:
        approvals.submit_bulk(EMAILS[:2], "incident", REQUESTER, Operation.RESEND)
    assert set(refused.value.emails) == set(EMAILS[:2])


def test_strictest_terms_take_the_most_approvals_and_every_rules_approvers():
    """Combining rules: the most approvals (at least the bulk minimum), the first rule's
    approvers who must also be among each other rule's, the shortest reminder, no escalation."""
    a = rule("a", approvers=("U2", "S1"), approvals_required=1, remind_every=600)
    b = rule("b", approvers=("U3",), approvals_required=3, remind_every=300)
    terms = strictest([a, b, a], bulk_minimum=2)
    assert terms.approvals_required == 3
    assert terms.approvers == ("U2", "S1") and terms.also_approvers == (("U3",),)
    assert terms.remind_every == 300 and terms.escalate_after is None
    assert terms.name == "strictest of a, b"
    assert strictest([a], bulk_minimum=2).approvals_required == 2


def test_a_single_call_is_made_at_once_and_the_batch_makes_room(store, clock, provider, roles):
    """A single request approved while a batch runs is called on the click, unpaced; the
    batch's next slot moves on by one interval, so together they keep the pace."""
    approvals = service(store, clock, provider, roles, bulk_rate=4.0)
    request = approvals.submit_bulk(EMAILS, "incident", REQUESTER).request
    approved(approvals, request.id)
    assert isinstance(approvals.run_next(), Claimed)
    single = approvals.submit("solo@single.example", "one", REQUESTER)
    approvals.look_up(single.id)
    done = approvals.approve(single.id, "U2")
    assert done.state is State.SUCCEEDED and "solo@single.example" in provider.calls
    held = approvals.run_next()
    assert isinstance(held, Hold) and held.seconds == pytest.approx(0.5)
