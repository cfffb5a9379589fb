"""A bulk request (issue 21) where it is listed beside single requests, built in memory: the
Home tab lists it as a batch (``Bulk: confirm 300 emails``) with its progress while it runs and
its own buttons; /verify-email status names the bulk request an email is in and that email's
own state; the history beside a request says "in a bulk request of N"; the audit export writes
one CSV row per email (and a JSON record with its items), single requests' rows as ever."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from doubles import make_request

from bot.cli.audit import COLUMNS, ITEM_COLUMNS, export, record, summarize, summarize_items
from bot.domain.model import (
    Action,
    Approval,
    AuditEntry,
    History,
    Item,
    Operation,
    State,
    VerificationRequest,
)
from bot.domain.outcomes import Cleared, ProviderFailed
from bot.domain.service import HomeData, StatusReport
from bot.slack import blocks, ids
from bot.slack.blocks.batch_words import batch_state_line, progress_words

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CLEARED = Cleared(("example.com",), ("3704",), "Verification caches cleared", "req-ok")
BAD = ProviderFailed("rejected", "Email is not registered", status=400, code="BAD_EMAIL")


def email(i: int) -> str:
    return f"user{i}@{'acme.io' if i % 3 == 2 else 'example.com'}"


def batch(
    states: list[State],
    *,
    state: State = State.EXECUTING,
    operation: Operation = Operation.CONFIRM,
    **changes: Any,
) -> VerificationRequest:
    """A bulk request of ``len(states)`` emails, its items in ``states`` (a failed one with
    BAD, a succeeded one with CLEARED), as the store reads it back."""
    items = tuple(
        Item(
            email=email(i),
            domain=email(i).rpartition("@")[2],
            state=s,
            outcome=BAD if s is State.FAILED else CLEARED if s is State.SUCCEEDED else None,
            position=i,
        )
        for i, s in enumerate(states)
    )
    fields: dict[str, Any] = {
        "id": "00bb00bb00bb00bb",
        "reason": "INC-7 provider mail outage",
        "requester": "U0REQ",
        "state": state,
        "created_at": NOW - timedelta(hours=1),
        "expires_at": NOW + timedelta(hours=1),
        "updated_at": NOW,
        "items": items,
        "operation": operation,
        "bulk": True,
        "approvals": (Approval("U0APP", NOW - timedelta(minutes=10)),),
        "decided_by": "U0APP",
    }
    return VerificationRequest(**(fields | changes))


def running() -> VerificationRequest:
    """300 emails, 212 done (205 cleared, 4 failed, 3 unknown), 4 running, 84 queued; started
    106 s ago: 88 left at 2 a second."""
    states = (
        [State.SUCCEEDED] * 205
        + [State.FAILED] * 4
        + [State.UNKNOWN] * 3
        + [State.EXECUTING] * 4
        + [State.PENDING] * 84
    )
    return batch(states, started_at=NOW - timedelta(seconds=106))


def all_text(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def test_a_running_batch_is_listed_with_its_progress_on_the_home_tab():
    """The requester's list and the last decisions show a running bulk request as
    ``Bulk: confirm 300 emails`` with its domains and ``212 of 300 done: 205 cleared, 4 failed,
    3 unknown; about 44 s left``, never one email; without a time, no estimate."""
    request = running()
    home = blocks.home_view(
        HomeData("U0REQ", True, (), (request,), (request,), 1, now=NOW), channel="C1"
    )
    text = all_text(home)
    assert text.count("Bulk: confirm 300 emails") == 2
    assert text.count("212 of 300 done: 205 cleared, 4 failed, 3 unknown; about 44 s left") == 2
    assert "`example.com` (200), `acme.io` (100)" in text
    assert "user0@example.com" not in text
    assert progress_words(request) == "212 of 300 done: 205 cleared, 4 failed, 3 unknown"


def test_a_waiting_batch_has_its_own_approve_reject_and_cancel_rows():
    """A pending bulk request waiting for an approver gets Approve (its confirmation counting
    the emails) and Reject, with the single request's actions and the request's id as value;
    in its requester's list, Cancel; each row with its own block_id."""
    waiting = batch([State.PENDING] * 3, state=State.PENDING, approvals=(), decided_by=None)
    home = blocks.home_view(HomeData("U0REQ", True, (waiting,), (waiting,), (), 1), "C1")
    rows = [b for b in home["blocks"] if b["type"] == "actions"]
    assert [b["block_id"] for b in rows] == [
        ids.for_request(ids.ACTIONS_BLOCK, waiting.id),
        ids.for_request(ids.CANCEL_BLOCK, waiting.id),
    ]
    decide, cancel = rows
    assert [(e["action_id"], e["value"]) for e in decide["elements"]] == [
        (ids.APPROVE_ACTION, waiting.id),
        (ids.REJECT_ACTION, waiting.id),
    ]
    assert "each of 3 emails" in decide["elements"][0]["confirm"]["text"]["text"]
    assert [(e["action_id"], e["value"]) for e in cancel["elements"]] == [
        (ids.CANCEL_ACTION, waiting.id)
    ]
    # Without a policy a bulk request needs two approvals whatever APPROVALS_REQUIRED says.
    assert "*Waiting for approval*: 0 of 2 approvals: none yet" in all_text(home)


def test_a_finished_batch_says_how_its_emails_ended():
    """Finished bulk requests read by their counts: some failed, a run stopped by Cancel
    (``Stopped``), one cancelled before it ran, all done."""
    failed = batch([State.SUCCEEDED, State.FAILED], state=State.FAILED)
    assert batch_state_line(failed, 1) == (
        ":x: *Done, some failed*, approved by <@U0APP>: 2 of 2 done: 1 cleared, 1 failed"
    )
    stopped = batch([State.SUCCEEDED, State.CANCELLED], state=State.CANCELLED, decided_by="U0REQ")
    assert "*Stopped by <@U0REQ>* during its run: 2 of 2 done: 1 cleared, 1 cancelled" in (
        batch_state_line(stopped, 1)
    )
    withdrawn = batch([State.CANCELLED] * 2, state=State.CANCELLED, decided_by="U0REQ")
    assert "*Cancelled by <@U0REQ>*, who asked for it" in batch_state_line(withdrawn, 1)
    resent = batch([State.SUCCEEDED] * 2, state=State.SUCCEEDED, operation=Operation.RESEND)
    assert batch_state_line(resent, 1).endswith("2 of 2 done: 2 resent")


def test_status_names_the_batch_an_email_is_in_and_its_own_state():
    """/verify-email status for an email queued in a running batch: the open request is bulk
    request <id>, linked, one of its 300 emails, the email queued; an email that failed in a
    batch lists it in the last outcomes with the provider's code."""
    request = running()
    queued = request.items[-1].email
    text = blocks.status_text(StatusReport(queued, request, (request,)), "https://slack/x")
    assert "<https://slack/x|the open request> is bulk request `00bb00bb00bb00bb`" in text
    assert "one of its 300 emails" in text and "this email: queued." in text
    assert "Last outcomes" not in text  # the open one is not listed again
    failed = request.items[205].email
    text = blocks.status_text(StatusReport(failed, None, (request,)), None)
    assert "No open request" in text
    assert "failed (`HTTP 400 BAD_EMAIL: Email is not registered`) in bulk request" in text
    assert "`00bb00bb00bb00bb` of 300 emails" in text


def test_an_open_batch_refusing_a_new_request_is_named_by_its_count():
    """The answer to a new request for an email held by an open bulk request names the batch
    (its count, state, requester), not one email."""
    text = blocks.open_request_text(running(), None)
    assert text.startswith("This address is in an open bulk request of 300 emails")
    assert "executing, asked by <@U0REQ>" in text


def test_history_counts_single_requests_and_names_batches():
    """Beside a request, earlier single requests are counted as before, and a bulk request is
    "in a bulk request of N", with this email's own state when it was one of its emails."""
    single = make_request(email=email(0), state=State.SUCCEEDED, decided_by="U2")
    done = batch([State.SUCCEEDED, State.FAILED, State.SUCCEEDED], state=State.FAILED)
    five = batch([State.SUCCEEDED] * 5, state=State.SUCCEEDED, id="11cc11cc11cc11cc")
    # Found by the domain only: none of its emails is this one.
    other = replace(five, items=tuple(replace(i, email=f"x{i.position}@a.io") for i in five.items))
    line = blocks.history_line(History(email(1), "example.com", 30, (single, done, other)))
    assert "cleared once in the last 30 days, last by <@U2>" in line
    assert "in a bulk request of 3 (failed (`HTTP 400 BAD_EMAIL" in line
    assert line.endswith("in a bulk request of 5.")
    only = blocks.history_line(History(email(0), "example.com", 30, (done,)))
    assert only.endswith(": in a bulk request of 3 (cleared) in the last 30 days.")


def trail_of(request: VerificationRequest) -> list[AuditEntry]:
    """A run's trail: approved, one provider answer per email that ran (naming it), stopped."""
    at = NOW - timedelta(minutes=5)
    entries = [
        AuditEntry(request.id, at, "U0APP", Action.APPROVE.value, State.PENDING, State.EXECUTING)
    ]
    for item in request.items:
        if item.state in (State.SUCCEEDED, State.FAILED):
            action = (
                Action.PROVIDER_SUCCESS if item.state is State.SUCCEEDED else Action.PROVIDER_ERROR
            )
            entries.append(
                AuditEntry(
                    request.id,
                    at,
                    "bot",
                    action.value,
                    State.EXECUTING,
                    State.EXECUTING,
                    {"email": item.email},
                )
            )
    entries.append(
        AuditEntry(request.id, at, "U0REQ", Action.STOP.value, State.EXECUTING, State.EXECUTING)
    )
    return entries


class Store:
    def __init__(self, *requests: VerificationRequest) -> None:
        self.requests = requests

    def list_requests(self, *, created_since: datetime | None = None) -> list[VerificationRequest]:
        return list(self.requests)

    def audit_log(self, request_id: str) -> list[AuditEntry]:
        found = next(r for r in self.requests if r.id == request_id)
        return trail_of(found) if len(found.items) > 1 else []


def test_the_audit_writes_one_row_per_email_of_a_batch():
    """A bulk request's CSV rows: one per email, in order, with the request's columns (its
    state, decision, approvers, reason) and the email's (domain, provider calls, requestId,
    outcome), then its place, the count, its own state and the provider's code; the single
    request beside it keeps its row, the item columns filled for its one email."""
    request = batch([State.SUCCEEDED, State.FAILED, State.CANCELLED], state=State.CANCELLED)
    single = make_request(created_at=NOW, state=State.SUCCEEDED, outcome=CLEARED)
    rows = summarize_items(request, trail_of(request))
    assert [r["email"] for r in rows] == [email(0), email(1), email(2)]
    assert [r["domain"] for r in rows] == ["example.com", "example.com", "acme.io"]
    assert {r["state"] for r in rows} == {"cancelled"}
    assert {r["decision"] for r in rows} == {"stopped"}
    assert [r["item_state"] for r in rows] == ["succeeded", "failed", "cancelled"]
    assert [r["provider_calls"] for r in rows] == [1, 1, 0]
    assert [r["provider_request_id"] for r in rows] == ["req-ok", "", ""]
    assert [r["outcome_code"] for r in rows] == ["", "BAD_EMAIL", ""]
    assert rows[1]["outcome"] == "HTTP 400 BAD_EMAIL: Email is not registered"
    assert [(r["item"], r["item_count"]) for r in rows] == [(1, 3), (2, 3), (3, 3)]
    # Several items make it a batch, whether or not the store keeps the bulk flag yet.
    assert summarize_items(replace(request, bulk=False), trail_of(request)) == rows
    out = io.StringIO()
    assert export(Store(single, request), out) == 2
    written = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(written[0]) == [*COLUMNS, *ITEM_COLUMNS]
    assert len(written) == 4
    old = {k: str(v) for k, v in summarize(single, []).items()}
    assert {k: written[0][k] for k in COLUMNS} == old
    assert (written[0]["item_count"], written[0]["item_state"]) == ("1", "succeeded")


def test_an_export_of_single_requests_is_as_it_was():
    """Without a bulk request the CSV has exactly COLUMNS, and a single request's JSON record
    has no item keys."""
    single = make_request(created_at=NOW)
    out = io.StringIO()
    export(Store(single), out)
    assert out.getvalue().splitlines()[0] == ",".join(COLUMNS)
    assert set(record(single, [])) == {*COLUMNS, "history"}


def test_the_json_record_of_a_batch_holds_its_emails_and_its_trail():
    """A bulk request is one JSON record: the request's columns (no one email), its emails
    under ``items`` with their state, calls and outcome, and its whole audit trail."""
    request = batch([State.SUCCEEDED, State.FAILED], state=State.FAILED)
    out = io.StringIO()
    export(Store(request), out, fmt="json")
    [written] = json.loads(out.getvalue())
    assert (written["email"], written["state"], written["item_count"]) == ("", "failed", 2)
    assert written["provider_calls"] == 2
    assert [(i["email"], i["state"], i["outcome_code"]) for i in written["items"]] == [
        (email(0), "succeeded", ""),
        (email(1), "failed", "BAD_EMAIL"),
    ]
    assert [h["action"] for h in written["history"]] == [
        "approve",
        "provider_success",
        "provider_error",
        "stop",
    ]
