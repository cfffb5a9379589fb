"""The bulk form: its blocks within Slack's limits, ``/verify-email bulk`` parsed, and its
submission (the handler ROUTES registers for BULK_VIEW, called as Bolt would) with a fake
service: the list read (pasted, attached, both), each problem a field error under the right
field, the service's refusals (NotAllowed, NothingToAsk, InvalidInput, Refused) worded, the
receipt DM, and the form closed in time when the service is slow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pytest
from doubles import make_request
from slack_bolt import Ack, BoltContext, BoltResponse

from bot.domain.bulk import BulkSubmitted, NotAllowed, NothingToAsk
from bot.domain.inputs import InvalidInput
from bot.domain.model import Item, Operation
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks, ids
from bot.slack.app import ROUTES
from bot.slack.blocks.bulk import FIELD_ERROR_LIMIT, RECEIPT_SHOWN, bulk_modal
from bot.slack.blocks.modals import HINT_LIMIT
from bot.slack.deps import DEPS_KEY, SlackDeps
from bot.slack.list_file import ListFile, ListFileError
from bot.slack.listeners import bulk as listener
from bot.slack.listeners.parsing import parse_command_text
from bot.standins import payloads
from bot.standins.slack.limits import MAX_VIEW_BLOCKS, block_problem

USER = "U0REQUESTER"
REASON = "INC-7 outage"


# ---------------------------------------------------------------------- the form


def test_the_bulk_form_keeps_within_slacks_limits():
    """The modal: under 100 blocks with unique block_ids (the stand-in's check), titles of at
    most 24 characters, hints of at most 2000, a placeholder of at most 150, the paste field
    at Slack's cap of 3000 characters, one .txt/.csv file_input; every input's ids the
    constants the handler reads."""
    view = bulk_modal(max_emails=1000)
    assert block_problem(view["blocks"], MAX_VIEW_BLOCKS) is None
    assert all(len(view[k]["text"]) <= 24 for k in ("title", "submit", "close"))
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert list(inputs) == [
        ids.BULK_LIST_BLOCK,
        ids.BULK_FILE_BLOCK,
        ids.OPERATION_BLOCK,
        ids.REASON_BLOCK,
    ]
    assert [b["element"]["action_id"] for b in inputs.values()] == [
        ids.BULK_LIST_INPUT,
        ids.BULK_FILE_INPUT,
        ids.OPERATION_INPUT,
        ids.REASON_INPUT,
    ]
    assert all(len(b.get("hint", {}).get("text", "")) <= HINT_LIMIT for b in inputs.values())
    assert all(len(b["label"]["text"]) <= 2000 for b in inputs.values())
    pasted = inputs[ids.BULK_LIST_BLOCK]
    assert pasted["optional"] and pasted["element"]["max_length"] == 3000
    assert len(pasted["element"]["placeholder"]["text"]) <= 150
    assert "3,000 characters" in pasted["hint"]["text"] and "file" in pasted["hint"]["text"]
    attach = inputs[ids.BULK_FILE_BLOCK]
    assert attach["optional"]
    assert attach["element"] == {
        "type": "file_input",
        "action_id": ids.BULK_FILE_INPUT,
        "filetypes": ["txt", "csv"],
        "max_files": 1,
    }
    assert "1,000" in view["blocks"][0]["text"]["text"]


def test_the_bulk_form_offers_the_operations_as_the_request_form_does():
    """Both operations, clear chosen, by default; only those offered when told, the chosen one
    kept if offered."""
    options = bulk_modal(max_emails=10)["blocks"][3]["element"]
    assert [o["value"] for o in options["options"]] == ["confirm", "resend"]
    assert options["initial_option"]["value"] == "confirm"
    resend = bulk_modal(max_emails=10, offered=(Operation.RESEND,))["blocks"][3]["element"]
    assert [o["value"] for o in resend["options"]] == ["resend"]
    assert resend["initial_option"]["value"] == "resend"


def test_help_names_bulk_and_the_command_parses_it():
    """The help lists /verify-email bulk; ``bulk`` (any case) opens the bulk form; anything
    after it is an error, never taken as an address."""
    assert "`/verify-email bulk`" in blocks.HELP_TEXT
    assert parse_command_text("bulk").bulk
    assert parse_command_text(" BULK ").bulk and not parse_command_text("BULK").error
    after = parse_command_text("bulk alice@example.com")
    assert after.bulk and after.email is None and "takes nothing after it" in str(after.error)


# ---------------------------------------------------------------------- the submission


class AckLog(Ack):
    """Bolt's ack, recording each call's keyword arguments (and when)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []
        self.called = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        self.calls.append(kwargs)
        self.called.set()
        return BoltResponse(status=200, body="")


@dataclass
class FakeBulkService:
    """submit_bulk answers with ``answer`` (a BulkSubmitted, or an exception to raise), after
    ``release`` is set; the calls are recorded."""

    answer: BulkSubmitted | Exception | None = None
    bulk_max: int = 1000
    release: threading.Event = field(default_factory=threading.Event)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.policy = SimpleNamespace(bulk_max=self.bulk_max)
        self.release.set()

    def submit_bulk(
        self, emails: list[str], reason: str, requester: str, operation: Operation
    ) -> BulkSubmitted:
        self.calls.append((emails, reason, requester, operation))
        self.release.wait(10)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is None:
            return submitted(emails)
        return self.answer


def submitted(emails: list[str], left_out: tuple[tuple[str, str], ...] = ()) -> BulkSubmitted:
    items = tuple(Item(email=e, domain=e.split("@")[1], position=n) for n, e in enumerate(emails))
    request = replace(make_request(id="bulk0123456789ab"), items=items, bulk=True)
    return BulkSubmitted(request, left_out)


class Notifier:
    def __init__(self) -> None:
        self.dms: list[tuple[str, str]] = []
        self.sent = threading.Event()

    def dm(self, user_id: str, text: str) -> None:
        self.dms.append((user_id, text))
        self.sent.set()

    def permalink(self, request: Any) -> str:
        return "https://slack.invalid/archives/C1/p1"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


@dataclass
class Form:
    """One bulk form submitted: what the ack and the DMs said."""

    ack: AckLog
    notifier: Notifier
    service: FakeBulkService

    @property
    def errors(self) -> dict[str, str]:
        [call] = self.ack.calls
        assert call.get("response_action") == "errors", call
        return dict(call["errors"])

    @property
    def closed(self) -> bool:
        return self.ack.calls == [{}]


Fetch = Callable[..., ListFile]


@pytest.fixture
def submit(executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Form]:
    def run(
        service: FakeBulkService,
        *,
        pasted: str | None = None,
        files: Any = None,
        reason: str = REASON,
        operation: str | None = "confirm",
        fetch: Fetch | None = None,
    ) -> Form:
        if fetch is not None:
            monkeypatch.setattr(listener, "fetch_list_file", fetch)
        view = bulk_modal(max_emails=service.bulk_max)
        values: dict[str, dict[str, Any]] = {
            ids.BULK_LIST_BLOCK: {ids.BULK_LIST_INPUT: pasted},
            ids.REASON_BLOCK: {ids.REASON_INPUT: reason},
        }
        if operation is not None:
            chosen = {"type": "radio_buttons", "selected_option": {"value": operation}}
            values[ids.OPERATION_BLOCK] = {ids.OPERATION_INPUT: chosen}
        if files is not None:
            values[ids.BULK_FILE_BLOCK] = {
                ids.BULK_FILE_INPUT: {"type": "file_input", "files": files}
            }
        body = payloads.view_submission_payload(user_id=USER, view=view, values=values)
        notifier = Notifier()
        unused: Any = None
        client: Any = SimpleNamespace(token="xoxb-1", base_url="https://slack.com/api/")
        deps = SlackDeps(
            approvals=service,  # type: ignore[arg-type]
            notifier=notifier,  # type: ignore[arg-type]
            home=unused,
            client=client,
            metrics=unused,
            executor=executor,
            step_failures=unused,
        )
        [route] = [r for r in ROUTES if (r.kind, r.id) == ("view", ids.BULK_VIEW)]
        ack = AckLog()
        route.handler(ack=ack, body=body, view=body["view"], context=BoltContext({DEPS_KEY: deps}))
        return Form(ack, notifier, service)

    return run


def a_file(name: str, data: bytes) -> Fetch:
    """fetch_list_file, standing in: the attached file is ``name`` with ``data``."""

    def fetch(attached: Any, **_: Any) -> ListFile:
        return ListFile(name, data)

    return fetch


def no_fetch(*_: Any, **__: Any) -> ListFile:
    raise AssertionError("no file should be fetched")


def test_refused_lines_are_counted_under_the_list_and_nothing_is_asked(submit):
    """A pasted list with lines that are not addresses: one field error under the list that
    counts them and shows the first three with their lines; the service is not asked."""
    pasted = "a@example.com\nnope\nb@example.com\nc@\n@d\nx y z\ne@example.com"
    form = submit(FakeBulkService(), pasted=pasted)
    [said] = form.errors.values()
    assert set(form.errors) == {ids.BULK_LIST_BLOCK}
    assert said.startswith("4 of 7 lines refused: line 2 `nope`")
    assert "line 4 `c@`" in said and "and 1 more" in said
    assert form.service.calls == []


def test_an_empty_form_asks_for_a_list(submit):
    """Neither pasted nor attached (files missing, null or []): a field error under the list
    asking for one."""
    empty: list[Any] = [None, [], {"not": "a list"}]
    for files in empty:
        form = submit(FakeBulkService(), pasted="  \n ", files=files, fetch=no_fetch)
        assert form.errors == {ids.BULK_LIST_BLOCK: listener.NOTHING_GIVEN}


def test_reason_operation_and_list_errors_come_together(submit):
    """No reason, an operation the form does not offer and a bad list: all three field errors
    at once."""
    form = submit(FakeBulkService(), pasted="nope", reason=" ", operation="delete")
    assert set(form.errors) == {ids.BULK_LIST_BLOCK, ids.REASON_BLOCK, ids.OPERATION_BLOCK}
    assert form.service.calls == []


def test_a_list_over_the_limit_says_by_how_much(submit):
    """More distinct emails than BULK_MAX: the field error counts them and the excess."""
    pasted = ",".join(f"user{n}@example.com" for n in range(5))
    form = submit(FakeBulkService(bulk_max=3), pasted=pasted)
    assert form.errors[ids.BULK_LIST_BLOCK].startswith("5 emails, 2 over the limit of 3")


def test_pasted_and_attached_lists_are_combined(submit):
    """Pasted emails and an attached CSV's are asked for together, in order, a duplicate
    across them once; the form closes and the receipt counts the duplicates of both."""
    csv = b"email,name\nb@example.com,B\nA@example.com,A\nb@example.com,B again\n"
    service = FakeBulkService()
    form = submit(
        service,
        pasted="a@example.com, a@example.com",
        files=[{"id": "F1"}],
        fetch=a_file("list.csv", csv),
    )
    assert form.closed
    [(emails, reason, user, operation)] = service.calls
    assert (emails, reason, user, operation) == (
        ["a@example.com", "b@example.com"],
        REASON,
        USER,
        Operation.CONFIRM,
    )
    [(to, text)] = form.notifier.dms
    assert to == USER and "*2 emails*" in text and "3 duplicates were left out" in text


def test_the_combined_list_is_held_to_the_limit(submit):
    """Each list within BULK_MAX but both together over it: a field error saying so."""
    form = submit(
        FakeBulkService(bulk_max=2),
        pasted="a@example.com b@example.com",
        files=[{"id": "F1"}],
        fetch=a_file("l.txt", b"c@example.com\n"),
    )
    said = form.errors[ids.BULK_LIST_BLOCK]
    assert said.startswith("The pasted emails and the file's together: 3 emails, 1 over")


def test_a_file_that_cannot_be_read_is_an_error_under_the_file(submit):
    """What the download refused, a file that is not UTF-8, or a file with a bad line: each a
    field error under the file (naming it), the service not asked."""

    def refused(*_: Any, **__: Any) -> ListFile:
        raise ListFileError("Slack answered with a web page")

    cases = [
        (refused, "Slack answered with a web page"),
        (a_file("l.txt", b"\xff\xfe a\x00"), "UTF-16"),
        (a_file("l.txt", b"caf\xe9@example.com"), "not UTF-8"),
        (a_file("l.txt", b"a@example.com\nnope\n"), "l.txt: 1 of 2 lines refused: line 2"),
    ]
    for fetch, words in cases:
        form = submit(FakeBulkService(), files=[{"id": "F1"}], fetch=fetch)
        assert set(form.errors) == {ids.BULK_FILE_BLOCK}
        assert words in form.errors[ids.BULK_FILE_BLOCK]
        assert form.service.calls == []


def test_more_than_one_file_is_refused(submit):
    """Two files in the state (Slack's max_files 1 would not send them): a field error."""
    form = submit(FakeBulkService(), files=[{"id": "F1"}, {"id": "F2"}], fetch=no_fetch)
    assert form.errors == {ids.BULK_FILE_BLOCK: listener.ONE_FILE}


def test_the_file_is_fetched_within_its_budget(submit):
    """The download is given a deadline FILE_BUDGET from the submission at most."""
    deadlines: list[float] = []

    def fetch(attached: Any, *, deadline: float, **_: Any) -> ListFile:
        deadlines.append(deadline - time.monotonic())
        return ListFile("l.txt", b"a@example.com")

    form = submit(FakeBulkService(), files=[{"id": "F1"}], fetch=fetch)
    assert form.closed
    assert 0 < deadlines[0] <= listener.FILE_BUDGET


def test_not_allowed_names_the_first_emails_the_rules_refuse(submit):
    """NotAllowed: a field error under the list counting the emails the rules refuse of all,
    naming the first three."""
    refused = [f"u{n}@locked.example" for n in range(5)]
    pasted = " ".join([*refused, "ok@example.com"])
    form = submit(FakeBulkService(answer=NotAllowed(refused)), pasted=pasted, operation="resend")
    said = form.errors[ids.BULK_LIST_BLOCK]
    assert said.startswith(
        "The approval rules do not allow you to resend the verification email for 5 of the 6 "
        "emails: u0@locked.example, u1@locked.example, u2@locked.example and 2 more."
    )


def test_nothing_to_ask_names_the_open_requests(submit):
    """NothingToAsk: a field error saying every email has an open request, the first three
    with their requests' ids, and how many more."""
    left_out = tuple((f"u{n}@example.com", f"r{n:015d}") for n in range(4))
    pasted = " ".join(e for e, _ in left_out)
    form = submit(FakeBulkService(answer=NothingToAsk(left_out)), pasted=pasted)
    said = form.errors[ids.BULK_LIST_BLOCK]
    assert said.startswith(
        "Every email already has an open request: u0@example.com (request r000000000000000), "
    )
    assert "and 1 more." in said and "u3@" not in said
    assert len(said) <= FIELD_ERROR_LIMIT


def test_invalid_input_goes_under_its_field(submit):
    """InvalidInput about the reason (a rule's reason_pattern) goes under the reason; any
    other under the list (under the file, when only a file was given)."""
    pattern = InvalidInput("The reason must match the pattern ^INC- (the rule x asks for it).")
    form = submit(FakeBulkService(answer=pattern), pasted="a@example.com")
    assert set(form.errors) == {ids.REASON_BLOCK}
    other = InvalidInput("1,001 emails is more than one bulk request may ask for (1000).")
    form = submit(FakeBulkService(answer=other), pasted="a@example.com")
    assert set(form.errors) == {ids.BULK_LIST_BLOCK}
    form = submit(
        FakeBulkService(answer=other), files=[{"id": "F"}], fetch=a_file("l.txt", b"a@x.com")
    )
    assert set(form.errors) == {ids.BULK_FILE_BLOCK}


def test_a_refusal_is_worded_as_the_request_forms(submit):
    """Refused (not a requester): a field error under the list, in the request form's words."""
    no = Refused(Refusal.NOT_A_REQUESTER)
    form = submit(FakeBulkService(answer=no), pasted="a@example.com")
    assert form.errors == {ids.BULK_LIST_BLOCK: blocks.NOT_A_REQUESTER_TEXT}
    assert form.notifier.dms == []


def test_the_receipt_names_what_was_left_out(submit):
    """Success: the form closes with no errors, then the requester's DM says how many emails
    were asked for and names those left out (the first ten, with their requests' ids, then how
    many more), every address escaped."""
    left_out = tuple((f"u{n}<b>@example.com", f"r{n:015d}") for n in range(12))
    answer = submitted(["a@example.com", "b@example.com"], left_out)
    form = submit(FakeBulkService(answer=answer), pasted="a@example.com b@example.com")
    assert form.closed
    [(_, text)] = form.notifier.dms
    assert "for *2 emails* is asked for (request `bulk0123456789ab`)" in text
    assert "Left out, as each has an open request already (12): `u0&lt;b&gt;@example.com`" in text
    assert text.count("(request `r0") == RECEIPT_SHOWN and text.endswith("and 2 more.")
    assert "<b>" not in text


def test_a_slow_service_closes_the_form_in_time_and_tells_by_dm(submit, monkeypatch):
    """submit_bulk still busy at ACK_BUDGET: the form is closed (no errors) while it runs, and
    its receipt comes by DM once it answers."""
    monkeypatch.setattr(listener, "ACK_BUDGET", 0.05)
    service = FakeBulkService()
    service.release.clear()
    form = submit(service, pasted="a@example.com")
    assert form.closed and form.notifier.dms == []
    service.release.set()
    assert form.notifier.sent.wait(10)
    [(_, text)] = form.notifier.dms
    assert "*1 email*" in text


def test_a_slow_refusal_is_told_by_dm(submit, monkeypatch):
    """submit_bulk refusing after the form closed: the requester is told by DM that nothing
    was asked, and why."""
    monkeypatch.setattr(listener, "ACK_BUDGET", 0.05)
    service = FakeBulkService(answer=NothingToAsk([("a@example.com", "r000000000000001")]))
    service.release.clear()
    form = submit(service, pasted="a@example.com")
    assert form.closed
    service.release.set()
    assert form.notifier.sent.wait(10)
    [(_, text)] = form.notifier.dms
    assert text.startswith(":warning: Your bulk request was not made: The email already has")
    assert "a@example.com (request r000000000000001)" in text
