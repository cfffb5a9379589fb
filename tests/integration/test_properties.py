"""Properties, checked by hypothesis over many generated cases.

* The service over a real store: any sequence of submits, approvals, retries, rejections,
  cancels, expiries, crashes mid-call and sweeps keeps exactly one provider call per claim, a
  legal audit chain for every request (matching its stored state), at most one open request
  per email, a claim only after a quorum of people other than the requester (one, and two),
  and a cancel only by the requester before any claim.
* The parsers of what people and other systems send (command text, HTTP bodies, button values,
  modal values and metadata, provider answers) never fail in a way that is not theirs to say,
  and what they accept is what they were given.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from doubles import Delivery, Roles
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.domain.inputs import InvalidInput, validate_email
from bot.domain.model import (
    OPEN_STATES,
    STAYING_ACTIONS,
    TRANSITIONS,
    VIEW_ACTIONS,
    Action,
    Operation,
    State,
    is_request_id,
    request_state,
    utcnow,
)
from bot.domain.outcomes import Cleared, ProviderFailed, ProviderFailure, Resent
from bot.domain.refusals import Refusal, Refused
from bot.domain.service import ApprovalPolicy, Approvals
from bot.domain.views import ProviderView
from bot.provider.client import HostupClient
from bot.provider.failures import ProviderError
from bot.provider.reading import status_domain_name
from bot.slack.http_request import parse_slack_body
from bot.slack.listeners.parsing import (
    input_value,
    parse_command_text,
    request_id_from_metadata,
    request_id_of,
)
from bot.slack.notices import notices_for
from bot.store import open_store

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
EMAILS = ("a@example.com", "A@Example.com", "b@example.net", "c@example.org")
PEOPLE = ("U1", "U2", "U3")
CLAIMS = frozenset({Action.APPROVE, Action.RETRY})
# json-ish values, as anything Slack or the provider might send.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


class Crash(BaseException):
    """The process dies during the provider call (the call reached the provider)."""


class ScriptedProvider:
    """Answers as the test says next; counts every call, by operation and what it names (the
    email for confirm, the domain for resend)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.next = "cleared"

    def confirm(self, email: str, *, renew: object = None) -> Cleared:
        self.calls[f"confirm:{email.lower()}"] += 1
        self._answer()
        return Cleared((email.rpartition("@")[2],), ("1",), "cleared")

    def resend(
        self, domain: str, *, language: str, domain_id: str | None = None, renew: object = None
    ) -> Resent:
        self.calls[f"resend:{domain.lower()}"] += 1
        self._answer()
        return Resent(recipient=f"owner@{domain}", sent_at="2026-11-30T09:00:00Z", domain=domain)

    def _answer(self) -> None:
        if self.next == "crash":
            raise Crash
        if self.next == "failed":
            raise ProviderFailure(ProviderFailed(kind="rejected", message="no", status=400))
        if self.next == "unknown":
            raise ProviderFailure(
                ProviderFailed(kind="timeout", message="no answer", outcome_unknown=True)
            )

    def view(self, domain: str, domain_id: str | None = None) -> ProviderView:
        """The provider's view reads pending (the service reads it; no test here counts it)."""
        return ProviderView(domain=domain, status="pending", read_at=utcnow(), domain_id="dom_1")


class ServiceMachine(RuleBasedStateMachine):
    """People and the clock acting on the real service and store, in any order."""

    # APPROVALS_REQUIRED: distinct approvers before the provider is called.
    required = 1

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="vet-props-")
        self.store = open_store(f"sqlite:///{Path(self.tmp.name) / 'p.db'}", announce=notices_for)
        self.now = T0
        self.provider = ScriptedProvider()
        self.approvals = Approvals(
            self.store,
            self.provider,
            Roles(),
            Delivery(),
            ApprovalPolicy(ttl=TTL, approvals_required=self.required),
            clock=lambda: self.now,
        )
        self.ids: list[str] = []
        self.crashes = 0

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()

    def _pick(self, index: int) -> str:
        return self.ids[index % len(self.ids)]

    @rule(
        email=st.sampled_from(EMAILS),
        who=st.sampled_from(PEOPLE),
        operation=st.sampled_from(Operation),
    )
    def submit(self, email: str, who: str, operation: Operation) -> None:
        try:
            self.ids.append(self.approvals.submit(email, "T", who, operation).id)
        except Refused as refused:  # one open request per email, a refusal like the others
            assert refused.code is Refusal.OPEN_REQUEST and refused.request is not None
            assert refused.request.email.casefold() == email.casefold()

    @precondition(lambda self: self.ids)
    @rule(
        index=st.integers(0, 50),
        who=st.sampled_from(PEOPLE),
        answer=st.sampled_from(["cleared", "failed", "unknown", "crash"]),
        retry=st.booleans(),
    )
    def click(self, index: int, who: str, answer: str, retry: bool) -> None:
        self.provider.next = answer
        decide = self.approvals.retry if retry else self.approvals.approve
        try:
            decide(self._pick(index), who)
        except Refused:
            pass
        except Crash:
            self.crashes += 1

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), who=st.sampled_from(PEOPLE))
    def reject(self, index: int, who: str) -> None:
        with contextlib.suppress(Refused):
            self.approvals.reject(self._pick(index), who, "no")

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50))
    def look_up(self, index: int) -> None:
        self.approvals.look_up(self._pick(index))

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), who=st.sampled_from(PEOPLE))
    def check_provider(self, index: int, who: str) -> None:
        with contextlib.suppress(Refused):
            self.approvals.check_provider(self._pick(index), who)

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), who=st.sampled_from(PEOPLE), note=st.sampled_from(["", "ok"]))
    def resolve(self, index: int, who: str, note: str) -> None:
        with contextlib.suppress(Refused):
            self.approvals.resolve(self._pick(index), who, note)

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), who=st.sampled_from(PEOPLE))
    def cancel(self, index: int, who: str) -> None:
        with contextlib.suppress(Refused):
            self.approvals.cancel(self._pick(index), who)

    @rule(minutes=st.integers(1, 90))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def maintenance(self) -> None:
        self.approvals.expire_due()
        self.approvals.recover_interrupted(max_call_seconds=60)

    @invariant()
    def one_provider_call_per_claim(self) -> None:
        claims: Counter[str] = Counter()
        for request in self.store.list_requests():
            trail = self.store.audit_log(request.id)
            called = request.domain if request.operation is Operation.RESEND else request.email
            key = f"{request.operation.value}:{called.lower()}"
            claims[key] += sum(1 for e in trail if e.action in CLAIMS)
        assert self.provider.calls == claims

    @invariant()
    def legal_audit_chains(self) -> None:
        for request in self.store.list_requests():
            trail = self.store.audit_log(request.id)
            assert trail[0].action == Action.CREATE and trail[0].from_state is None
            for before, after in zip(trail, trail[1:], strict=False):
                assert after.from_state is before.to_state
                if after.action in VIEW_ACTIONS:  # a reading, in whatever state it was
                    assert after.from_state is after.to_state
                elif after.action in STAYING_ACTIONS:
                    assert after.from_state is after.to_state is State.PENDING
                else:
                    assert after.to_state in TRANSITIONS[before.to_state]
            assert trail[-1].to_state is request.state

    @invariant()
    def one_open_request_per_email(self) -> None:
        open_emails = [r.email.lower() for r in self.store.list_requests(OPEN_STATES)]
        assert len(open_emails) == len(set(open_emails))

    @invariant()
    def items_make_their_request_and_hold_their_email(self) -> None:
        """Each request is in the state its items make of it (its approval's while it waits
        or was closed without a call), an item is claimed only under a claim of its own, and
        no email has two open items: what the store's unique index holds across items."""
        open_items: list[str] = []
        for request in self.store.list_requests():
            assert request.items and request.state is request_state(i.state for i in request.items)
            for item in request.items:
                if item.state is State.EXECUTING:
                    assert item.claim_id is not None and item.lease_until is not None
                if item.state in OPEN_STATES and request.is_open(self.now):
                    open_items.append(item.email.casefold())
        assert len(open_items) == len(set(open_items))

    @invariant()
    def only_a_crash_leaves_a_claim_behind(self) -> None:
        executing = self.store.list_requests(frozenset({State.EXECUTING}))
        assert len(executing) <= self.crashes

    @invariant()
    def a_claim_follows_a_quorum_of_others(self) -> None:
        """The provider is called only for a request approved by ``required`` distinct
        people, none of them its requester."""
        for request in self.store.list_requests():
            trail = self.store.audit_log(request.id)
            if any(e.action in CLAIMS for e in trail):
                assert len(set(request.approvers)) == len(request.approvers) >= self.required
                assert request.requester not in request.approvers

    @invariant()
    def only_the_requester_cancels_and_never_after_a_call(self) -> None:
        """A cancelled request was cancelled by its requester, and never claimed."""
        for request in self.store.list_requests(frozenset({State.CANCELLED})):
            trail = self.store.audit_log(request.id)
            assert trail[-1].action == Action.CANCEL and trail[-1].actor == request.requester
            assert not any(e.action in CLAIMS for e in trail)


class QuorumMachine(ServiceMachine):
    """The same, with a quorum of two (APPROVALS_REQUIRED=2)."""

    required = 2


ServiceMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_service_properties = ServiceMachine.TestCase
QuorumMachine.TestCase.settings = ServiceMachine.TestCase.settings
test_service_properties_with_a_quorum_of_two = QuorumMachine.TestCase


# ---------------------------------------------------------------------------------------------
# Parsers of untrusted input


@given(st.text())
def test_command_text_parses_to_help_an_address_or_a_reason_to_refuse(text: str) -> None:
    """Whatever follows /verify-email: help, or an address that validates as itself, or an
    error to show; never an exception."""
    parsed = parse_command_text(text)
    assert sum([parsed.help, parsed.email is not None, parsed.error is not None]) <= 1
    if parsed.email is not None:
        assert validate_email(parsed.email) == parsed.email
    if parsed.error is not None:
        try:
            validate_email(parsed.raw_email)
        except InvalidInput:
            pass
        else:
            raise AssertionError("an address that validates was refused")


@given(st.text(), st.text())
def test_a_slash_command_body_comes_back_as_its_fields(text: str, user: str) -> None:
    """A form-encoded command, whatever its text and fields hold, parses to exactly its fields."""
    fields = {"command": "/verify-email", "text": text, "user_id": user, "token": "t"}
    assert parse_slack_body(urlencode(fields), "application/x-www-form-urlencoded") == fields


@given(JSON)
def test_an_interaction_body_comes_back_as_its_payload(payload: Any) -> None:
    """payload=<JSON>: its object, or {} for JSON that is not an object."""
    body = urlencode({"payload": json.dumps(payload)})
    expected = payload if isinstance(payload, dict) else {}
    assert parse_slack_body(body, "application/x-www-form-urlencoded") == expected


@given(st.text(), st.sampled_from([None, "application/json", "application/x-www-form-urlencoded"]))
def test_any_body_parses_to_a_dict(body: str, content_type: str | None) -> None:
    """Garbage in any content type gives a dict (Bolt then verifies the signature as usual)."""
    assert isinstance(parse_slack_body(body, content_type), dict)


REQUEST_IDS = st.one_of(JSON, st.text(alphabet="0123456789abcdefABCDEF", min_size=15, max_size=17))


@given(REQUEST_IDS, JSON, st.text())
def test_button_values_and_modal_values_never_raise(value: Any, anything: Any, text: str) -> None:
    """A button value or modal metadata gives the request id it carries, if it is shaped as
    one, else None; a modal field gives a string; whatever they hold, nothing raises."""
    expected = value if is_request_id(value) else None
    assert request_id_of({"value": value}) == expected
    assert request_id_from_metadata(json.dumps({"request_id": value})) == expected
    for found in (request_id_of(anything), request_id_from_metadata(text)):
        assert found is None or is_request_id(found)
    assert isinstance(input_value(anything, "b", "a"), str)
    assert input_value({"state": {"values": {"b": {"a": {"value": text}}}}}, "b", "a") == text


@given(JSON)
def test_status_items_of_any_shape_give_a_name_or_none(item: Any) -> None:
    """An item of the status endpoint's data.domains, whatever it is: a name or None."""
    name = status_domain_name(item)
    assert name is None or (isinstance(name, str) and name.strip() == name and name)


ANSWERS = st.one_of(
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.builds(
        lambda data, rid: json.dumps({"success": True, "requestId": rid, "data": data}).encode(),
        JSON,
        JSON,
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503]),
    body=ANSWERS,
    content_type=st.sampled_from(["application/json", "application/problem+json", "text/html"]),
)
def test_any_provider_answer_is_a_result_or_a_provider_error(
    status: int, body: bytes, content_type: str
) -> None:
    """Whatever the provider answers, confirm() returns the documented result or raises
    ProviderError (with a sentence for a person), and status() likewise: nothing else."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": content_type, "Retry-After": "0"}
        return httpx.Response(status, content=body, headers=headers)

    client = HostupClient(
        "https://provider.invalid/api",
        "key",
        1.0,
        max_attempts=1,
        sleep=lambda _: None,
        transport=httpx.MockTransport(answer),
    )
    with client:
        for call in (lambda: client.confirm("a@example.com"), client.status):
            try:
                result = call()
            except ProviderError as error:
                assert error.message and error.kind == error.outcome.kind
            else:
                assert 200 <= status < 300
                assert result is not None
