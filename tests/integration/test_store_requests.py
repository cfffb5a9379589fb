"""The durable store's requests, on every backend (SQLite, and PostgreSQL: see
tests/backends.py): round trips of untrusted text, create and its audit entry, one open
request per email (across threads and processes), list_requests, and the approvals
service working through the store. Transitions are in test_store_transitions.py, the
outbox in test_store_outbox.py, the schema in test_store_schema.py, URLs and errors in
test_store_errors.py; their shared helpers are in tests/stores.py."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from doubles import Delivery, Roles, StubProvider
from stores import EXECUTING, PENDING, T0, Told, approve, make_request, run_processes, says

from bot.domain.model import OPEN_STATES, Action, OpenRequestExists, State
from bot.domain.outcomes import NotPosted
from bot.domain.ports import Transition
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack.notices import Notice
from bot.store import BaseSQLStore, StoreError, open_store

# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize(
    "reason",
    [
        "'; DROP TABLE requests; --",
        "He said \"hi\" and 'bye' \\ back",
        "Ünïcödé ✓ 漢字 עברית 🙂👩🏽‍💻 \u200b zero-width, tab\tand\nnewline",
        "Robert'); DELETE FROM audit_log WHERE ('1'='1",
        "100% sure? %s %(x)s {0} ?",
    ],
)
def test_create_get_round_trip_keeps_untrusted_text_exactly(
    store: BaseSQLStore, reason: str
) -> None:
    """Whatever a person typed comes back byte for byte, and SQL (or a placeholder) in it is
    never executed."""
    request = make_request(email="o'brien+ünï@bücher.example", reason=reason, requester="U'1")
    created = store.create(request, actor="U'1")
    assert created == request
    assert store.get(request.id) == request
    # The tables are still there and hold exactly this one request.
    assert store.list_requests() == [request]
    assert len(store.audit_log(request.id)) == 1


def test_get_returns_aware_utc_datetimes_and_none_for_unknown_id(store: BaseSQLStore) -> None:
    """Timestamps come back timezone-aware in UTC, whatever zone they went in with; an
    unknown (or hostile) id is simply not found."""
    cet = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    request = make_request(created_at=cet)
    got = store.create(request, actor="U_REQ")
    assert got.created_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.expires_at.tzinfo is not None and got.updated_at.tzinfo is not None
    assert store.get("nope") is None
    assert store.get("' OR '1'='1") is None
    assert store.get("\ud800") is None
    assert store.get("a\x00b") is None


def test_create_appends_create_audit_entry_in_same_transaction(store: BaseSQLStore) -> None:
    """create writes one audit entry: action "create", None -> pending, by the actor, at
    created_at, with the email, domain and reason as details."""
    request = make_request(reason="ticket 🙂")
    store.create(request, actor="U_REQ")
    [entry] = store.audit_log(request.id)
    assert entry.request_id == request.id
    assert entry.action == "create"
    assert entry.actor == "U_REQ"
    assert entry.from_state is None
    assert entry.to_state is State.PENDING
    assert entry.at == request.created_at
    assert entry.details == {
        "email": "alice@example.com",
        "domain": "example.com",
        "operation": "confirm",
        "reason": "ticket 🙂",
    }


def test_create_refuses_a_request_that_is_not_pending(store: BaseSQLStore) -> None:
    """Only pending requests may be created; anything else is a programming error."""
    request = make_request()
    executing = replace(request, state=State.EXECUTING)
    with pytest.raises(ValueError, match="pending"):
        store.create(executing, actor="U_REQ")
    assert store.get(request.id) is None


def test_create_refuses_a_duplicate_id_and_writes_nothing(store: BaseSQLStore) -> None:
    """A second create with the same id (even for another email) raises StoreError and leaves
    one audit entry."""
    request = make_request()
    store.create(request, actor="U_REQ")
    with pytest.raises(StoreError, match="already exists"):
        store.create(
            make_request(request_id=request.id, email="other@example.com", reason="other"),
            actor="U_X",
        )
    assert store.get(request.id) == request
    assert len(store.audit_log(request.id)) == 1
    assert store.find_open("other@example.com") is None


def test_create_rejects_naive_datetimes(store: BaseSQLStore) -> None:
    """A naive datetime would be ambiguous in storage: refused as a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.create(make_request(created_at=datetime(2025, 1, 1)), actor="U_REQ")


def test_lone_surrogates_are_stored_as_replacement_characters(store: BaseSQLStore) -> None:
    """JSON from Slack can carry a lone surrogate, which is not encodable text: it is stored as
    U+FFFD instead of failing the request, in columns and JSON alike."""
    request = make_request(reason="bad \ud800 half")
    created = store.create(request, actor="U_REQ")
    assert created.reason == "bad \ufffd half"
    [entry] = store.audit_log(request.id)
    assert entry.details["reason"] == "bad \ufffd half"


def test_nul_characters_are_stored_as_replacement_characters(store: BaseSQLStore) -> None:
    """PostgreSQL text cannot hold NUL: in a column it is stored as U+FFFD (on every backend,
    so they behave alike), while inside JSON it is escaped and comes back exactly."""
    request = make_request(email="nul\x00@example.com", reason="a\x00b")
    says(store, Action.CREATE, Notice.POST_REQUEST)
    created = store.create(request, actor="U\x00REQ")
    assert created.reason == "a\ufffdb"
    assert created.email == "nul\ufffd@example.com"
    assert store.find_open("NUL\x00@example.com") == created
    [entry] = store.audit_log(request.id)
    assert entry.actor == "U\ufffdREQ"
    assert entry.details["reason"] == "a\x00b"  # JSON keeps it, escaped as \u0000
    store.set_message(request.id, "C\x001", "1.0\x00")
    done = approve(
        store, request.id, actor="U\x00", details={"x": "\x00"}, outcome=NotPosted("m\x00")
    )
    assert done is not None and done.outcome == NotPosted("m\x00")
    assert (done.channel, done.message_ts) == ("C\ufffd1", "1.0\ufffd")
    assert store.audit_log(request.id)[-1].details == {
        "type": "not_posted",
        "slack_error": "m\x00",
        "x": "\x00",
    }
    [queued] = store.outbox_entries(request.id)
    assert queued.kind == "post_request"
    [claimed] = store.claim_outbox(now=T0, owner="o\x00", lease_seconds=60)
    store.retry_outbox(claimed.id, "o\x00", error="bad\x00error", next_attempt_at=T0)
    assert store.outbox_entries(request.id)[0].last_error == "bad\ufffderror"


def test_set_message_records_channel_and_ts(store: BaseSQLStore) -> None:
    """set_message stores where the request was posted, without touching state or audit;
    an unknown id raises KeyError."""
    request = store.create(make_request(), actor="U_REQ")
    store.set_message(request.id, "C123", "1712345678.000100")
    got = store.get(request.id)
    assert got is not None
    assert (got.channel, got.message_ts) == ("C123", "1712345678.000100")
    assert got.state is State.PENDING and got.updated_at == request.updated_at
    assert len(store.audit_log(request.id)) == 1
    with pytest.raises(KeyError):
        store.set_message("missing", "C1", "1.0")


# ---------------------------------------------------------------------------------------------
# One open request per email


@pytest.mark.parametrize("state", [State.PENDING, State.EXECUTING, State.UNKNOWN])
def test_second_open_request_for_same_email_is_refused_case_insensitively(
    store: BaseSQLStore, state: State
) -> None:
    """While a request for an email is pending, executing or unknown, creating another for the
    same address, in any letter case, raises OpenRequestExists carrying the open one, and
    writes nothing at all (no request, audit entry or outbox entry)."""
    first = store.create(make_request(email="Alice@Example.com"), actor="U_REQ")
    if state is not State.PENDING:
        approve(store, first.id)
    if state is State.UNKNOWN:
        store.transition(
            Transition(
                first.id,
                EXECUTING,
                State.UNKNOWN,
                actor="bot",
                action=Action.PROVIDER_ERROR,
                item=0,
                now=T0,
            )
        )
    for email in ("alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.com"):
        second = make_request(email=email)
        with pytest.raises(OpenRequestExists) as info:
            says(store, Action.CREATE, Notice.POST_REQUEST)
            store.create(second, actor="U_OTHER")
        assert info.value.existing.id == first.id
        assert info.value.existing.state is state
        assert store.get(second.id) is None
        assert store.audit_log(second.id) == []
    assert [e.request_id for e in store.outbox_entries()] == []
    assert [r.id for r in store.list_requests()] == [first.id]
    # Another address is not affected.
    assert store.create(make_request(email="alice2@example.com"), actor="U").state is State.PENDING


@pytest.mark.parametrize(
    ("to_state", "via"),
    [
        (State.REJECTED, None),
        (State.EXPIRED, None),
        (State.SUCCEEDED, State.EXECUTING),
        (State.FAILED, State.EXECUTING),
    ],
)
def test_a_new_request_is_allowed_once_the_open_one_is_done(
    store: BaseSQLStore, to_state: State, via: State | None
) -> None:
    """Once the open request is succeeded, failed, rejected or expired, a new request for the
    same email (in another case, even) is created, and find_open finds the new one."""
    first = store.create(make_request(email="bob@example.com"), actor="U_REQ")
    src = PENDING
    if via is not None:
        approve(store, first.id)
        src = EXECUTING
    assert (
        store.transition(
            Transition(
                first.id, src, to_state, actor="U", action=Action.PROVIDER_ERROR, item=0, now=T0
            )
        )
        is not None
    )
    second = store.create(make_request(email="BOB@example.com"), actor="U_REQ")
    assert second.state is State.PENDING
    found = store.find_open("bob@EXAMPLE.com")
    assert found is not None and found.id == second.id


def test_find_open_returns_the_open_request_for_that_email(store: BaseSQLStore) -> None:
    """find_open ignores other emails and final states, compares case-insensitively, and
    treats hostile text as data."""
    assert store.find_open("alice@example.com") is None
    old = store.create(make_request(created_at=T0), actor="U")
    store.transition(
        Transition(old.id, PENDING, State.REJECTED, actor="U", action=Action.REJECT, now=T0)
    )
    store.create(make_request(email="bob@example.com"), actor="U")
    assert store.find_open("alice@example.com") is None

    current = store.create(make_request(created_at=T0 + timedelta(hours=1)), actor="U")
    approve(store, current.id)
    assert (found := store.find_open("alice@example.com")) is not None
    assert found.id == current.id and found.state is State.EXECUTING
    assert store.find_open("ALICE@example.COM") == found
    assert store.find_open("' OR 1=1 --") is None
    assert store.find_open("%") is None


def _create_race_worker(
    url: str, emails: list[str], barrier: Any, worker: str, threads: int, results: Any
) -> None:
    """Runs in a spawned process: `threads` threads each try to create a request per email."""
    store = open_store(url, announce=Told())
    won: list[str] = []
    refused: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        for i, email in enumerate(emails):
            # Every racer spells the address its own way: one open request per email, any case.
            spelled = email.upper() if (t + i) % 2 else email
            try:
                barrier.wait(timeout=60)
                store.create(make_request(email=spelled), actor=f"{worker}-{t}")
            except OpenRequestExists as e:
                with lock:
                    refused.append(e.existing.email.lower())
                continue
            except BaseException as e:  # noqa: BLE001 -- sent back to the test to report
                with lock:
                    errors.append(repr(e))
                barrier.abort()
                return
            with lock:
                won.append(email)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.close()
    results.put((worker, won, refused, errors))


def test_two_processes_creating_requests_for_the_same_emails_open_exactly_one_each(
    database_url: str,
) -> None:
    """Two processes (3 threads each) released together 15 times, once per email, each
    spelling it in its own case: exactly one request per email is created, every other
    attempt gets OpenRequestExists, and the store holds one open request per email."""
    open_store(database_url, announce=Told()).close()  # the schema exists before the race starts
    emails = [f"race-{i}@example.com" for i in range(15)]
    procs_n, threads_n = 2, 3
    barrier = multiprocessing.get_context("spawn").Barrier(procs_n * threads_n)
    outcomes = run_processes(
        _create_race_worker,
        [(database_url, emails, barrier, f"P{i}", threads_n) for i in range(procs_n)],
    )
    assert [errors for *_, errors in outcomes] == [[], []]
    wins = Counter(email for _, won, _, _ in outcomes for email in won)
    assert wins == Counter(dict.fromkeys(emails, 1))
    refusals = Counter(email for _, _, refused, _ in outcomes for email in refused)
    assert refusals == Counter(dict.fromkeys(emails, procs_n * threads_n - 1))
    with open_store(database_url, announce=Told()) as store:
        requests = store.list_requests()
        assert sorted(r.email.lower() for r in requests) == sorted(emails)
        for email in emails:
            found = store.find_open(email)
            assert found is not None and len(store.audit_log(found.id)) == 1


# ---------------------------------------------------------------------------------------------
# list_requests


def test_list_requests_filters_by_state_and_times_oldest_first(store: BaseSQLStore) -> None:
    """list_requests returns requests oldest first: all, or those in the given states, expiring
    strictly before a time (the expiry sweep), updated strictly before a time (the sweep for
    interrupted calls) and created at or after a time (the audit export)."""
    a = store.create(make_request(email="a@x.io", created_at=T0, ttl=timedelta(hours=1)), "U")
    b = store.create(make_request(email="b@x.io", created_at=T0 + timedelta(minutes=1)), "U")
    c = store.create(
        make_request(
            email="c@x.io", created_at=T0 + timedelta(minutes=2), ttl=timedelta(minutes=30)
        ),
        actor="U",
    )
    claimed = store.transition(
        Transition(
            b.id,
            PENDING,
            State.EXECUTING,
            actor="U",
            action=Action.APPROVE,
            item=0,
            now=T0 + timedelta(minutes=10),
        )
    )
    assert claimed is not None
    b = claimed
    assert [r.id for r in store.list_requests()] == [a.id, b.id, c.id]
    assert store.list_requests(frozenset({State.EXECUTING})) == [b]
    assert [r.id for r in store.list_requests(OPEN_STATES)] == [a.id, b.id, c.id]
    assert store.list_requests(frozenset()) == []
    due = store.list_requests(PENDING, expires_before=T0 + timedelta(minutes=45))
    assert [r.id for r in due] == [c.id]
    # Strictly before: a request expiring exactly then is not yet due.
    assert store.list_requests(PENDING, expires_before=a.expires_at) == [c]
    assert [r.id for r in store.list_requests(expires_before=T0 + timedelta(days=2))] == [
        a.id,
        b.id,
        c.id,
    ]
    # updated_before is strict too.
    assert store.list_requests(EXECUTING, updated_before=b.updated_at) == []
    stale = store.list_requests(EXECUTING, updated_before=b.updated_at + timedelta(microseconds=1))
    assert stale == [b]
    assert [r.id for r in store.list_requests(updated_before=T0 + timedelta(minutes=3))] == [
        a.id,
        c.id,
    ]
    # created_since includes that very moment.
    assert [r.id for r in store.list_requests(created_since=b.created_at)] == [b.id, c.id]
    assert store.list_requests(created_since=T0 + timedelta(days=1)) == []
    assert store.list_requests(
        PENDING, created_since=T0, expires_before=T0 + timedelta(hours=2)
    ) == [a, c]


# ---------------------------------------------------------------------------------------------
# With the domain


def test_approvals_service_approves_and_rejects_through_the_store(store: BaseSQLStore) -> None:
    """The store is the service's RequestRepository: submit, approve once (the second approval
    is refused), reject another, and a late one is expired when someone tries to approve it."""
    clock = [T0]
    approvals = Approvals(
        store, StubProvider(), Roles(), Delivery(), ApprovalPolicy(), clock=lambda: clock[0]
    )
    request = approvals.submit("carol@Example.COM", "ticket 7", requester="U_REQ")
    assert request.email == "carol@example.com"
    done = approvals.approve(request.id, approver="U_APP")
    assert done.state is State.SUCCEEDED and done.decided_by == "U_APP"
    with pytest.raises(Refused) as refused:
        approvals.approve(request.id, approver="U_APP2")
    assert refused.value.code is Refusal.ALREADY_DECIDED
    other = approvals.submit("dave@example.com", "ticket 8", requester="U_REQ")
    rejected = approvals.reject(other.id, actor="U_APP", note="no")
    assert rejected.state is State.REJECTED and rejected.decision_note == "no"
    late = approvals.submit("erin@example.com", "ticket 9", requester="U_REQ")
    clock[0] = T0 + timedelta(days=2)
    with pytest.raises(Refused) as refused:
        approvals.approve(late.id, approver="U_APP")
    assert refused.value.code is Refusal.EXPIRED
    got = store.get(late.id)
    assert got is not None and got.state is State.EXPIRED
