"""The audit export's columns: the old ones in their places, then what a request asked for
(confirm or resend) and the rule it was made under (name, policy hash)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from doubles import make_request

from bot.cli.audit import COLUMNS, export, summarize
from bot.domain.model import Action, AuditEntry, Operation, RuleTerms, State, VerificationRequest
from bot.domain.outcomes import NotResendable, Resent

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ROUTINE = RuleTerms(
    name="resend-is-routine", policy_hash="0123456789ab", approvers=(), approvals_required=0
)
# The columns before issue 20, in their order: a script reading them by position still works.
BEFORE = (
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
)


def entry(
    request: VerificationRequest, action: Action, actor: str, **details: object
) -> AuditEntry:
    return AuditEntry(request.id, T0, actor, action.value, State.PENDING, request.state, details)


class Store:
    def __init__(self, *pairs: tuple[VerificationRequest, list[AuditEntry]]) -> None:
        self.pairs = pairs

    def list_requests(self, *, created_since: datetime | None = None) -> list[VerificationRequest]:
        return [r for r, _ in self.pairs]

    def audit_log(self, request_id: str) -> list[AuditEntry]:
        return next(trail for r, trail in self.pairs if r.id == request_id)


def test_old_columns_keep_their_places_and_the_new_ones_follow() -> None:
    """operation, rule and policy_hash are added after every earlier column."""
    assert COLUMNS[: len(BEFORE)] == BEFORE
    assert COLUMNS[len(BEFORE) :] == ("operation", "rule", "policy_hash")


def test_a_rule_approved_resend_names_its_operation_rule_and_policy() -> None:
    """A resend its rule approved: operation resend, the rule's name and hash, the decision
    "approved by rule" by "bot", the provider's requestId; a confirm without a rule has
    empty rule columns."""
    resent = Resent(
        "a@example.com", "2026-11-30T09:01:00Z", "example.com", provider_request_id="r-1"
    )
    done = make_request(
        created_at=T0,
        operation=Operation.RESEND,
        rule=ROUTINE,
        state=State.SUCCEEDED,
        outcome=resent,
    )
    row = summarize(done, [entry(done, Action.APPROVE, "bot", by_rule="resend-is-routine")])
    assert (row["operation"], row["rule"], row["policy_hash"]) == (
        "resend",
        "resend-is-routine",
        "0123456789ab",
    )
    assert (row["decision"], row["decided_by"], row["provider_request_id"]) == (
        "approved by rule",
        "bot",
        "r-1",
    )
    plain = make_request(created_at=T0)
    assert (summarize(plain, [])["operation"], summarize(plain, [])["rule"]) == ("confirm", "")
    out = io.StringIO()
    assert export(Store((done, []), (plain, [])), out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["operation"] for r in rows] == ["resend", "confirm"]


def test_a_refused_resend_is_decided_not_resendable() -> None:
    """A resend the provider refused before approval reads "not resendable", with the reason."""
    closed = make_request(
        created_at=T0,
        operation=Operation.RESEND,
        state=State.REJECTED,
        outcome=NotResendable("The provider does not list example.com on this account.", False),
    )
    row = summarize(closed, [entry(closed, Action.NOT_RESENDABLE, "bot")])
    assert row["decision"] == "not resendable"
    assert "does not list" in row["outcome"]
