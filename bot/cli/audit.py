"""``python -m bot audit``: the history of every request, from the store, as CSV or JSON.

One row per request: who asked, for which email and why; who approved or rejected it and when;
how it ended; the provider's requestId; how many provider calls it took; what it asked for
(confirm or resend) and the rule it was made under (name, and the hash of the policy file).
JSON adds each request's whole audit trail (every transition with actor, time and details).
New columns are added at the end: a spreadsheet or script reading the old ones by position
keeps working.

A bulk request (several emails under one approval) has one CSV row per email: the request's
columns, with the email, its domain, the provider's requestId, outcome, calls and views being
that email's, then ITEM_COLUMNS (its place, how many emails the request has, its own state and
the provider's outcome code). Those columns are written only when the export holds a bulk
request, so an export of single requests is as it always was. In JSON a bulk request is one
record with its emails under ``items``. ``--request ID`` writes one request only.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, Protocol, TextIO

from bot.domain.batch import is_batch
from bot.domain.model import (
    PROVIDER_ACTIONS,
    Action,
    AuditEntry,
    Item,
    VerificationRequest,
)
from bot.domain.outcomes import Interrupted, Outcome, ProviderFailed
from bot.domain.views import DomainReading, ViewUnavailable

DESCRIPTION = (
    "Write the history of every request from the store (DATABASE_URL, from the environment or "
    ".env): who requested, who approved or rejected and when, the outcome and the provider's "
    "requestId. CSV (the default) has one row per request (per email of a bulk request); JSON "
    "adds every transition."
)

COLUMNS = (
    "request_id",
    "requested_at",
    "requester",
    "email",
    "domain",
    "reason",
    "state",
    "decision",
    "decided_by",
    "decided_at",
    "provider_calls",
    "provider_request_id",
    "outcome",
    "approved_by",
    "provider_view",
    "provider_readback",
    "operation",
    "rule",
    "policy_hash",
)
# After COLUMNS, when the export holds a bulk request: the row's email's place in its request
# (1 for the first), how many emails the request has, that email's own state (the request's
# state is ``state``) and the provider's error code (or why there was no answer).
ITEM_COLUMNS = ("item", "item_count", "item_state", "outcome_code")
# The decision actions (DECISION_ACTIONS), as the export words them.
DECISIONS: dict[str, str] = {
    Action.APPROVE: "approved",
    Action.RETRY: "retried",
    Action.REJECT: "rejected",
    Action.EXPIRE: "expired",
    Action.POST_FAILED: "not posted",
    Action.CANCEL: "cancelled",
    Action.RESOLVE: "resolved",
    Action.NOT_RESENDABLE: "not resendable",
    Action.STOP: "stopped",  # a bulk request cancelled during its run
}
# Spreadsheets run cells starting with these as formulas; people type reasons (OWASP: CSV
# injection), so such cells are prefixed with a quote in CSV output.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def parse_since(value: str) -> datetime:
    """``2026-11-01`` (midnight UTC) or an ISO-8601 time (UTC unless it says otherwise)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date (YYYY-MM-DD) or ISO-8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=parse_since,
        metavar="DATE",
        help="only requests made on or after DATE (YYYY-MM-DD, UTC, or an ISO-8601 time)",
    )
    parser.add_argument(
        "--format",
        choices=("csv", "json"),
        default="csv",
        help="csv (default): one row per request; json: with every transition",
    )
    parser.add_argument(
        "--output", "-o", metavar="PATH", help="write to PATH instead of standard output"
    )
    parser.add_argument(
        "--request",
        metavar="ID",
        help="only request ID (a bulk request: one CSV row per email)",
    )


def summarize(request: VerificationRequest, trail: list[AuditEntry]) -> dict[str, Any]:
    """A single request's row (COLUMNS)."""
    return _row(request, trail, request.item, sum(1 for e in trail if e.action in PROVIDER_ACTIONS))


def summarize_items(request: VerificationRequest, trail: list[AuditEntry]) -> list[dict[str, Any]]:
    """A request's rows with ITEM_COLUMNS: one per email (a single request's one row, too)."""
    if not is_batch(request):
        return [summarize(request, trail) | _item_columns(request, request.item)]
    return [
        _row(request, trail, item, _calls(trail, item)) | _item_columns(request, item)
        for item in request.items
    ]


def record(request: VerificationRequest, trail: list[AuditEntry]) -> dict[str, Any]:
    """A request's JSON record: its row, for a bulk request its emails (``items``), and its
    audit trail (``history``)."""
    if not is_batch(request):
        return summarize(request, trail) | {"history": [history(e) for e in trail]}
    calls = sum(1 for e in trail if e.action in PROVIDER_ACTIONS)
    base = _row(request, trail, None, calls)
    items = [
        {
            "item": item.position + 1,
            "email": item.email,
            "domain": item.domain,
            "state": item.state.value,
            "provider_calls": _calls(trail, item),
            "provider_request_id": (item.outcome.provider_request_id if item.outcome else None)
            or "",
            "outcome_code": _code(item.outcome),
            "outcome": _message(item.outcome),
            "provider_view": _reading(item.view),
            "provider_readback": _reading(item.readback),
        }
        for item in request.items
    ]
    return (
        base | {"item_count": len(items), "items": items} | {"history": [history(e) for e in trail]}
    )


def _row(
    request: VerificationRequest, trail: list[AuditEntry], item: Item | None, calls: int
) -> dict[str, Any]:
    """COLUMNS for ``request``, the email's columns being ``item``'s (empty without one)."""
    decision = next((e for e in reversed(trail) if e.action in DECISIONS), None)
    outcome = item.outcome if item is not None else None
    return {
        "request_id": request.id,
        "requested_at": request.created_at.isoformat(),
        "requester": request.requester,
        "email": item.email if item is not None else "",
        "domain": item.domain if item is not None else "",
        "reason": request.reason,
        "state": request.state.value,
        "decision": _decision(decision) if decision else "",
        "decided_by": decision.actor if decision else "",
        "decided_at": decision.at.isoformat() if decision else "",
        "provider_calls": calls,
        "provider_request_id": (outcome.provider_request_id if outcome else None) or "",
        "outcome": _message(outcome),
        # Every approval counted towards APPROVALS_REQUIRED, in order.
        "approved_by": " ".join(request.approvers),
        # The provider's view of the domain when it was asked for, and read last after the call.
        "provider_view": _reading(item.view if item is not None else None),
        "provider_readback": _reading(item.readback if item is not None else None),
        "operation": request.operation.value,
        # The rule that decided it ("" for a request made before rules); its policy file's
        # hash ("" when no POLICY_FILE: the settings were the rule).
        "rule": request.rule.name if request.rule is not None else "",
        "policy_hash": request.rule.policy_hash if request.rule is not None else "",
    }


def _item_columns(request: VerificationRequest, item: Item) -> dict[str, Any]:
    return {
        "item": item.position + 1,
        "item_count": len(request.items),
        "item_state": item.state.value,
        "outcome_code": _code(item.outcome),
    }


def _calls(trail: list[AuditEntry], item: Item) -> int:
    """The provider calls of one email of a bulk request: the provider's answers (or their
    absence) the audit trail records for that email (the runner names it in each)."""
    email = item.email.lower()
    return sum(
        1
        for e in trail
        if e.action in PROVIDER_ACTIONS and str(e.details.get("email", "")).lower() == email
    )


def _message(outcome: Outcome | None) -> str:
    message = outcome.message if outcome is not None else ""
    if isinstance(outcome, ProviderFailed) and outcome.status:
        message = f"HTTP {outcome.status} {outcome.code or ''}: {message}".strip()
    return message


def _code(outcome: Outcome | None) -> str:
    """The provider's error code (its kind when it sent none); ``interrupted`` for a call the
    process did not see end; "" for an answer that was no error."""
    if isinstance(outcome, ProviderFailed):
        return outcome.code or outcome.kind
    if isinstance(outcome, Interrupted):
        return "interrupted"
    return ""


def _decision(entry: AuditEntry) -> str:
    """The decision in words: ``approved by rule`` when the request's rule approved it."""
    if entry.action == Action.APPROVE and entry.details.get("by_rule"):
        return "approved by rule"
    return DECISIONS[entry.action]


def _reading(reading: DomainReading | None) -> str:
    if reading is None:
        return ""
    if isinstance(reading, ViewUnavailable):
        return f"unavailable ({reading.kind})"
    return reading.status


def history(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "from": entry.from_state.value if entry.from_state else None,
        "to": entry.to_state.value,
        "details": entry.details,
    }


def _safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class Trails(Protocol):
    def audit_log(self, request_id: str) -> list[AuditEntry]: ...


class History(Trails, Protocol):
    """What the export reads from the store."""

    def list_requests(
        self, *, created_since: datetime | None = None
    ) -> list[VerificationRequest]: ...


class OneRequest(Trails, Protocol):
    """What the export of one request reads from the store."""

    def get(self, request_id: str) -> VerificationRequest | None: ...


def export(store: History, out: TextIO, *, since: datetime | None = None, fmt: str = "csv") -> int:
    """Write the history; returns the number of requests written."""
    return _write(store, store.list_requests(created_since=since), out, fmt)


def export_request(store: OneRequest, out: TextIO, request_id: str, *, fmt: str = "csv") -> int:
    """Write one request's history (1); raises LookupError when there is no such request."""
    request = store.get(request_id)
    if request is None:
        raise LookupError(f"no request {request_id!r} in the store")
    return _write(store, [request], out, fmt)


def _write(store: Trails, requests: list[VerificationRequest], out: TextIO, fmt: str) -> int:
    rows: Iterable[tuple[VerificationRequest, list[AuditEntry]]] = (
        (r, store.audit_log(r.id)) for r in requests
    )
    count = 0
    if fmt == "json":
        out.write("[")
        for request, trail in rows:
            line = json.dumps(record(request, trail), ensure_ascii=False)
            out.write(("," if count else "") + "\n  " + line)
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    # The item columns only when there is a bulk request: single requests' export as ever.
    by_item = any(is_batch(r) for r in requests)
    writer = csv.DictWriter(
        out, fieldnames=COLUMNS + ITEM_COLUMNS if by_item else COLUMNS, lineterminator="\n"
    )
    writer.writeheader()
    for request, trail in rows:
        for row in summarize_items(request, trail) if by_item else [summarize(request, trail)]:
            writer.writerow({k: _safe_cell(v) for k, v in row.items()})
        count += 1
    return count
