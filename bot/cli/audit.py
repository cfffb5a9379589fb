"""``python -m bot audit``: the history of every request, from the store, as CSV or JSON.

One row per request: who asked, for which email and why; who approved or rejected it and when;
how it ended; the provider's requestId; how many provider calls it took; what it asked for
(confirm or resend) and the rule it was made under (name, and the hash of the policy file).
JSON adds each request's whole audit trail (every transition with actor, time and details).
New columns are added at the end: a spreadsheet or script reading the old ones by position
keeps working.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, Protocol, TextIO

from bot.domain.model import (
    PROVIDER_ACTIONS,
    Action,
    AuditEntry,
    VerificationRequest,
)
from bot.domain.outcomes import ProviderFailed
from bot.domain.views import DomainReading, ViewUnavailable

DESCRIPTION = (
    "Write the history of every request from the store (DATABASE_URL, from the environment or "
    ".env): who requested, who approved or rejected and when, the outcome and the provider's "
    "requestId. CSV (the default) has one row per request; JSON adds every transition."
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


def summarize(request: VerificationRequest, trail: list[AuditEntry]) -> dict[str, Any]:
    decision = next((e for e in reversed(trail) if e.action in DECISIONS), None)
    outcome = request.outcome
    message = outcome.message if outcome is not None else ""
    if isinstance(outcome, ProviderFailed) and outcome.status:
        message = f"HTTP {outcome.status} {outcome.code or ''}: {message}".strip()
    return {
        "request_id": request.id,
        "requested_at": request.created_at.isoformat(),
        "requester": request.requester,
        "email": request.email,
        "domain": request.domain,
        "reason": request.reason,
        "state": request.state.value,
        "decision": _decision(decision) if decision else "",
        "decided_by": decision.actor if decision else "",
        "decided_at": decision.at.isoformat() if decision else "",
        "provider_calls": sum(1 for e in trail if e.action in PROVIDER_ACTIONS),
        "provider_request_id": (outcome.provider_request_id if outcome else None) or "",
        "outcome": message,
        # Every approval counted towards APPROVALS_REQUIRED, in order.
        "approved_by": " ".join(request.approvers),
        # The provider's view of the domain when it was asked for, and read last after the call.
        "provider_view": _reading(request.view),
        "provider_readback": _reading(request.readback),
        "operation": request.operation.value,
        # The rule that decided it ("" for a request made before rules); its policy file's
        # hash ("" when no POLICY_FILE: the settings were the rule).
        "rule": request.rule.name if request.rule is not None else "",
        "policy_hash": request.rule.policy_hash if request.rule is not None else "",
    }


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


class History(Protocol):
    """What the export reads from the store."""

    def list_requests(
        self, *, created_since: datetime | None = None
    ) -> list[VerificationRequest]: ...

    def audit_log(self, request_id: str) -> list[AuditEntry]: ...


def export(store: History, out: TextIO, *, since: datetime | None = None, fmt: str = "csv") -> int:
    """Write the history; returns the number of requests written."""
    requests = store.list_requests(created_since=since)
    rows: Iterable[tuple[VerificationRequest, list[AuditEntry]]] = (
        (r, store.audit_log(r.id)) for r in requests
    )
    count = 0
    if fmt == "json":
        out.write("[")
        for request, trail in rows:
            record = summarize(request, trail) | {"history": [history(e) for e in trail]}
            out.write(("," if count else "") + "\n  " + json.dumps(record, ensure_ascii=False))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for request, trail in rows:
        writer.writerow({k: _safe_cell(v) for k, v in summarize(request, trail).items()})
        count += 1
    return count
