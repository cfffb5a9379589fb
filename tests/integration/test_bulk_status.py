"""A bulk request (issue 21) in the read-only surfaces, against a real SQLite store: created with
several items through ``store.create``, its items moved one by one as its run moves them. The
store finds it by any of its emails (open, or in history); /verify-email status answers with it
and the email's own item; the Home tab lists it with its progress; the history beside a later
request names it; ``python -m bot audit`` writes one row per email (``--request ID`` too)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from doubles import T0, Clock, Delivery, Roles, StubProvider
from stores import Told

from bot.cli.audit import COLUMNS, ITEM_COLUMNS, export, export_request
from bot.cli.main import main
from bot.domain.model import (
    HISTORY_DAYS,
    Action,
    History,
    Item,
    State,
    VerificationRequest,
)
from bot.domain.outcomes import Cleared, ProviderFailed
from bot.domain.ports import Hold, Transition
from bot.domain.service import ApprovalPolicy, Approvals
from bot.slack import blocks
from bot.store import SQLiteStore

EMAILS = ("ann@example.com", "bob@example.com", "cy@acme.io")
CLEARED = Cleared(("example.com",), ("3704",), "Verification caches cleared", "req-1")
BAD = ProviderFailed("rejected", "Email is not registered", status=400, code="BAD_EMAIL")
FAILED_WORDS = "failed (`HTTP 400 BAD_EMAIL: Email is not registered`)"


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "bulk.db", announce=Told())
    yield s
    s.close()


@pytest.fixture
def approvals(store) -> Approvals:
    return Approvals(
        store,
        StubProvider(),
        Roles(approvers={"U2"}, requesters={"U1"}),
        Delivery(),
        ApprovalPolicy(ttl=timedelta(hours=1)),
        clock=Clock(T0 + timedelta(minutes=5)),
    )


def move(store, request_id: str, position: int, action: Action, to: State, **kw) -> None:
    """One item's change, as the runner makes it (a provider answer names its email)."""
    src = State.PENDING if action is Action.APPROVE else State.EXECUTING
    details = {} if action is Action.APPROVE else {"email": EMAILS[position]}
    changed = store.transition(
        Transition(
            request_id,
            frozenset({src}),
            to,
            actor="U2" if action is Action.APPROVE else "bot",
            action=action,
            now=T0 + timedelta(minutes=1),
            item=position,
            details=details,
            **kw,
        )
    )
    assert changed is not None


@pytest.fixture
def running(store) -> VerificationRequest:
    """Three emails under one request: approved; the first cleared, the second failed, the
    third still being called."""
    items = tuple(
        Item(email=e, domain=e.rpartition("@")[2], position=i) for i, e in enumerate(EMAILS)
    )
    request = store.create(
        VerificationRequest(
            id="00aa00aa00aa00aa",
            reason="INC-7 provider mail outage",
            requester="U1",
            state=State.PENDING,
            created_at=T0,
            expires_at=T0 + timedelta(hours=1),
            updated_at=T0,
            items=items,
        ),
        "U1",
    )
    store.set_message(request.id, "C1", "1700000000.000100")
    for position in range(3):
        move(store, request.id, position, Action.APPROVE, State.EXECUTING, decided_by="U2")
    move(store, request.id, 0, Action.PROVIDER_SUCCESS, State.SUCCEEDED, outcome=CLEARED)
    move(store, request.id, 1, Action.PROVIDER_ERROR, State.FAILED, outcome=BAD)
    now = store.get(request.id)
    assert now is not None and now.state is State.EXECUTING
    return now


def test_the_store_finds_a_batch_by_any_of_its_emails(store, running):
    """find_open returns the running batch for its email still running, not for one done;
    requests_about finds it by each of its emails, and by the domain of one."""
    open_one = store.find_open("CY@acme.io")
    assert open_one is not None and open_one.id == running.id and len(open_one.items) == 3
    assert store.find_open(EMAILS[0]) is None
    for email in EMAILS:
        assert [r.id for r in store.requests_about(email, since=T0)] == [running.id]
    assert [r.id for r in store.requests_about("zed@nowhere.test", "acme.io", since=T0)] == [
        running.id
    ]


def test_status_finds_an_email_inside_a_batch(store, running, approvals):
    """/verify-email status for the email still running: its open request is the batch, one of
    its 3 emails, linked; for the one that failed: no open request, and the batch in the last
    outcomes with this email's failure."""
    report = approvals.status_of("U1", EMAILS[2])
    assert report.open is not None and report.open.id == running.id
    text = blocks.status_text(report, "https://slack.example/p1")
    assert "<https://slack.example/p1|the open request> is bulk request `00aa00aa00aa00aa`" in text
    assert "one of its 3 emails" in text
    assert "this email: running (the provider is being called)." in text
    failed = approvals.status_of("U2", EMAILS[1])
    assert failed.open is None and [r.id for r in failed.recent] == [running.id]
    text = blocks.status_text(failed, None)
    assert "No open request: a new one can be asked for." in text
    assert f"{FAILED_WORDS} in bulk request `00aa00aa00aa00aa` of 3 emails" in text


def test_the_home_tab_lists_batches_with_their_progress(store, running, approvals):
    """Read from the store: the requester's list shows the running batch with its progress;
    an approver sees it among the bulk requests running, and a second batch, waiting, in their
    queue with Approve and Reject; never one email."""
    waiting = store.create(
        VerificationRequest(
            id="33dd33dd33dd33dd",
            reason="INC-8",
            requester="U1",
            state=State.PENDING,
            created_at=T0 + timedelta(minutes=4),
            expires_at=T0 + timedelta(hours=1),
            updated_at=T0 + timedelta(minutes=4),
            items=tuple(
                Item(email=f"u{i}@example.org", domain="example.org", position=i) for i in range(4)
            ),
        ),
        "U1",
    )
    mine = approvals.home_for("U1")
    assert [r.id for r in mine.mine] == [waiting.id, running.id]
    text = json.dumps(blocks.home_view(mine, "C1"))
    assert "Bulk: confirm 3 emails" in text and "2 of 3 done: 1 cleared, 1 failed" in text
    assert "Bulk: confirm 4 emails" in text
    approver = approvals.home_for("U2")
    assert [r.id for r in approver.waiting] == [waiting.id]
    assert [r.id for r in approver.running] == [running.id]
    view = blocks.home_view(approver, "C1")
    text = json.dumps(view)
    assert "Bulk requests running (1)" in text and "2 of 3 done: 1 cleared, 1 failed" in text
    assert "Approve 4 emails?" in text
    assert not any(e in text for e in EMAILS)


def test_the_history_beside_a_later_request_names_the_batch(store, running):
    """A new single request for the email the batch cleared may be made (its item is done);
    the history beside it, read from the store, says it was in a bulk request of 3, cleared."""
    later = store.create(
        VerificationRequest(
            id="11bb11bb11bb11bb",
            reason="T-9",
            requester="U1",
            state=State.PENDING,
            created_at=T0 + timedelta(minutes=2),
            expires_at=T0 + timedelta(hours=1),
            updated_at=T0 + timedelta(minutes=2),
            items=(Item(email=EMAILS[0], domain="example.com"),),
        ),
        "U1",
    )
    found = store.requests_about(EMAILS[0], "example.com", since=T0)
    earlier = tuple(r for r in found if r.id != later.id)
    line = blocks.history_line(History(EMAILS[0], "example.com", HISTORY_DAYS, earlier))
    assert line.endswith(": in a bulk request of 3 (cleared) in the last 30 days.")


def test_the_audit_writes_a_row_per_email_of_the_batch(store, running):
    """The export of the batch alone and of the whole store: a row per email (the request's
    columns, the email's domain, calls, outcome and its own state), the single request beside it
    in its usual columns; JSON, one record with the items and the trail."""
    out = io.StringIO()
    assert export_request(store, out, running.id) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == [*COLUMNS, *ITEM_COLUMNS]
    assert [(r["email"], r["domain"], r["item_state"]) for r in rows] == [
        (EMAILS[0], "example.com", "succeeded"),
        (EMAILS[1], "example.com", "failed"),
        (EMAILS[2], "acme.io", "executing"),
    ]
    assert {(r["request_id"], r["state"], r["requester"]) for r in rows} == {
        (running.id, "executing", "U1")
    }
    assert [r["provider_calls"] for r in rows] == ["1", "1", "0"]
    assert [r["outcome_code"] for r in rows] == ["", "BAD_EMAIL", ""]
    assert rows[0]["provider_request_id"] == "req-1"
    assert rows[1]["outcome"] == "HTTP 400 BAD_EMAIL: Email is not registered"
    out = io.StringIO()
    export_request(store, out, running.id, fmt="json")
    [written] = json.loads(out.getvalue())
    assert [i["state"] for i in written["items"]] == ["succeeded", "failed", "executing"]
    assert written["history"][0]["action"] == "create"
    with pytest.raises(LookupError):
        export_request(store, io.StringIO(), "ffffffffffffffff")


def test_audit_request_from_the_command_line(tmp_path, monkeypatch, capsys, store, running):
    """``python -m bot audit --request ID`` writes that request's rows (one per email of a
    batch); an ID the store does not hold is refused on stderr with status 2."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/bulk.db")
    # In this process, main's logging set-up would keep this test's captured stderr for every
    # later test's log lines: left as the test session set it.
    monkeypatch.setattr("bot.cli.main.configure_logging", lambda *a, **k: None)
    assert main(["audit", "--request", running.id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join([*COLUMNS, *ITEM_COLUMNS])
    assert len(lines) == 4 and all(line.startswith(running.id) for line in lines[1:])
    assert main(["audit", "--request", "ffffffffffffffff"]) == 2
    assert "no request 'ffffffffffffffff'" in capsys.readouterr().err
    assert main(["audit"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # the whole store: the one batch


def test_all_requests_export_mixes_single_and_bulk(store, running):
    """The export of every request with a single one beside the batch: the single one's row
    keeps its values in COLUMNS, its one item counted in the item columns."""
    single = store.create(
        VerificationRequest(
            id="22cc22cc22cc22cc",
            reason="T-2",
            requester="U1",
            state=State.PENDING,
            created_at=T0 + timedelta(minutes=3),
            expires_at=T0 + timedelta(hours=1),
            updated_at=T0 + timedelta(minutes=3),
            items=(Item(email="dee@example.com", domain="example.com"),),
        ),
        "U1",
    )
    out = io.StringIO()
    assert export(store, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["request_id"] for r in rows] == [running.id] * 3 + [single.id]
    last = rows[-1]
    assert (last["email"], last["state"], last["item"], last["item_count"]) == (
        "dee@example.com",
        "pending",
        "1",
        "1",
    )


def test_a_batch_run_by_the_service_reads_back_per_email(store):
    """A real run: submit_bulk, two approvals, the runner calls each email once, one fails.
    The audit has one row per email with that email's one call, its state and the provider's
    code, decided "approved" by the second approver; status finds the failed email in it; the
    requester's Home tab reads it finished with its counts."""
    clock = Clock(T0)
    provider = StubProvider()
    provider.answers[EMAILS[1]] = [BAD]
    approvals = Approvals(
        store,
        provider,
        Roles(approvers={"U2", "U3"}, requesters={"U1"}),
        Delivery(),
        ApprovalPolicy(ttl=timedelta(hours=1), bulk_rate=100.0),
        clock=clock,
    )
    request = approvals.submit_bulk(list(EMAILS), "INC-9", "U1").request
    approvals.approve(request.id, "U2")
    approvals.approve(request.id, "U3")
    for _ in range(50):
        got = approvals.run_next()
        if isinstance(got, Hold):
            if got.idle:
                break
            clock.advance(seconds=got.seconds)
    assert sorted(provider.calls) == sorted(EMAILS)
    done = store.get(request.id)
    assert done is not None and done.bulk and done.state is State.FAILED
    out = io.StringIO()
    export_request(store, out, request.id)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["email"], r["item_state"], r["provider_calls"]) for r in rows] == [
        (EMAILS[0], "succeeded", "1"),
        (EMAILS[1], "failed", "1"),
        (EMAILS[2], "succeeded", "1"),
    ]
    assert {(r["state"], r["decision"], r["decided_by"]) for r in rows} == {
        ("failed", "approved", "U3")
    }
    assert [r["outcome_code"] for r in rows] == ["", "BAD_EMAIL", ""]
    text = blocks.status_text(approvals.status_of("U1", EMAILS[1]), None)
    assert f"{FAILED_WORDS} in bulk request `{request.id}` of 3 emails" in text
    home = json.dumps(blocks.home_view(approvals.home_for("U1"), "C1"))
    assert "*Done, some failed*" in home and "3 of 3 done: 2 cleared, 1 failed" in home
