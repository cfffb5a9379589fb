"""End to end over real HTTP: ``/verify-email bulk`` opens the bulk form; a pasted list with
bad lines and duplicates, an attached .txt or .csv file (read through files.info and its
url_private_download with the bot token), a web page answered for the file and emails with
open requests elsewhere, each answered as the person would see it (field errors that count
and show the first reasons; the receipt DM naming what was left out). (No POLICY_FILE here:
the settings decide.)"""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain.model import Operation
from bot.slack import ids
from bot.slack.listeners.bulk import FILE_BUDGET
from bot.standins.driver import attached_files, radio_choice, request_id_of
from bot.standins.slack.files import DOWNLOAD, LOGIN_PAGE
from bot.standins.world import REQUESTER, World

REASON = "INC-42 provider mail outage"


def open_bulk_form(world: World) -> dict[str, Any]:
    sent = world.driver.command(REQUESTER, "bulk")
    assert sent.reply.status == 200 and sent.reply.text == ""
    return world.driver.modal(sent)


def submit_bulk(
    world: World,
    view: dict[str, Any],
    *,
    pasted: str | None = None,
    files: list[dict[str, Any]] | None = None,
    reason: str = REASON,
    operation: str = "confirm",
) -> Any:
    """Submit the bulk form as a person fills it in; the bot's answer (its ack's body)."""
    values: dict[str, dict[str, Any]] = {
        ids.BULK_LIST_BLOCK: {ids.BULK_LIST_INPUT: pasted},
        ids.REASON_BLOCK: {ids.REASON_INPUT: reason},
        ids.OPERATION_BLOCK: {ids.OPERATION_INPUT: radio_choice(view, operation)},
    }
    if files is not None:
        values |= attached_files(view, files)
    return world.driver.submit(REQUESTER, view, values).body


def errors_of(body: Any) -> dict[str, str]:
    assert isinstance(body, dict) and body.get("response_action") == "errors", body
    return dict(body["errors"])


def nothing_asked(world: World) -> None:
    assert world.services.store.list_requests() == []
    assert world.slack.calls_to("chat.postMessage") == []


def test_bulk_opens_the_form_with_a_paste_field_and_a_file_input(world):
    """/verify-email bulk acks empty and opens the bulk form: a multiline paste field (3,000
    characters, its hint sending longer lists to a file), one .txt/.csv file_input, the
    operations and the reason; the help names the command."""
    view = open_bulk_form(world)
    assert view["callback_id"] == ids.BULK_VIEW
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    pasted = by_id[ids.BULK_LIST_BLOCK]
    assert pasted["element"]["multiline"] and pasted["element"]["max_length"] == 3000
    assert "file" in pasted["hint"]["text"]
    attach = by_id[ids.BULK_FILE_BLOCK]["element"]
    assert (attach["type"], attach["filetypes"], attach["max_files"]) == (
        "file_input",
        ["txt", "csv"],
        1,
    )
    options = by_id[ids.OPERATION_BLOCK]["element"]["options"]
    assert [o["value"] for o in options] == ["confirm", "resend"]
    assert ids.REASON_BLOCK in by_id
    helped = world.driver.command(REQUESTER, "help")
    assert "/verify-email bulk" in helped.reply.text


def test_a_pasted_list_with_bad_lines_and_duplicates_is_a_field_error(world):
    """Pasted lines that are not addresses keep the form open with an error under the list
    that counts them and shows the first with their line numbers; duplicates (another case,
    Slack's mailto markup) are not counted as refused; nothing is stored or posted."""
    view = open_bulk_form(world)
    pasted = "\n".join(
        [
            "alice@example.com",
            "not an email",
            "<mailto:ALICE@example.com|ALICE@example.com>",
            "bob@@example.com",
            "carol@example.com, dave@example",
            "erin@example.com",
        ]
    )
    errors = errors_of(submit_bulk(world, view, pasted=pasted))
    assert set(errors) == {ids.BULK_LIST_BLOCK}
    said = errors[ids.BULK_LIST_BLOCK]
    assert said.startswith("3 of 7 entries refused: line 2 `not an email`")
    assert "line 4 `bob@@example.com`" in said and "line 5 `dave@example`" in said
    nothing_asked(world)


def test_an_attached_csv_with_a_bad_row_is_a_field_error_under_the_file(world):
    """An attached .csv is read through files.info and its url_private_download with the bot
    token: its header is skipped, and a row that is not an address is a field error under the
    file naming the file, the row's line and why; nothing is stored."""
    view = open_bulk_form(world)
    csv = "email,name\nalice@example.com,Alice\nbob(at)example.com,Bob\n"
    file = world.driver.upload(REQUESTER, "stuck.csv", csv)
    errors = errors_of(submit_bulk(world, view, files=[file]))
    assert set(errors) == {ids.BULK_FILE_BLOCK}
    assert errors[ids.BULK_FILE_BLOCK].startswith("stuck.csv: 1 of 2 lines refused: line 3")
    assert [c.params.get("file") for c in world.slack.calls_to("files.info")] == [file["id"]]
    assert [(d.status, d.token) for d in world.slack.downloads] == [
        (200, world.settings.SLACK_BOT_TOKEN.get_secret_value())
    ]
    nothing_asked(world)


def test_a_web_page_answered_for_the_file_is_refused(world):
    """When the file's URL answers an HTML page (Slack's sign-in page) instead of the list,
    the form says so under the file, and nothing of the page is read as emails."""
    view = open_bulk_form(world)
    # Its URL answers 200 text/html: Slack's sign-in page, with an address in it.
    page = LOGIN_PAGE + b"\nalice@example.com\n"
    file = world.slack.add_file(
        "list.txt", page, filetype="text", user=REQUESTER, mimetype="text/html"
    )
    errors = errors_of(submit_bulk(world, view, files=[file]))
    assert set(errors) == {ids.BULK_FILE_BLOCK}
    assert "web page" in errors[ids.BULK_FILE_BLOCK]
    assert [d.status for d in world.slack.downloads] == [200]
    nothing_asked(world)


def test_a_download_slower_than_its_budget_is_a_field_error(world):
    """A file URL slower than the form's budget for the file (FILE_BUDGET): the form answers
    "took too long" under the file, in time for Slack to show it, instead of waiting."""
    world.slack.set_delay(DOWNLOAD, FILE_BUDGET + 0.8)
    view = open_bulk_form(world)
    file = world.driver.upload(REQUESTER, "list.txt", "alice@example.com\n")
    errors = errors_of(submit_bulk(world, view, files=[file]))
    assert "took too long" in errors[ids.BULK_FILE_BLOCK]
    nothing_asked(world)


def test_without_files_read_the_form_says_to_paste(world):
    """A bot token without files:read: files.info is refused, so the error under the file
    names the permission and asks for the list pasted; nothing is downloaded or stored."""
    world.slack.set_scopes([s for s in world.slack.scopes or () if s != "files:read"])
    view = open_bulk_form(world)
    file = world.driver.upload(REQUESTER, "list.txt", "alice@example.com\n")
    errors = errors_of(submit_bulk(world, view, files=[file]))
    assert "files:read" in errors[ids.BULK_FILE_BLOCK]
    assert "paste the list" in errors[ids.BULK_FILE_BLOCK]
    assert world.slack.downloads == []
    nothing_asked(world)


def test_every_email_with_an_open_request_is_a_field_error_naming_them(world):
    """A list whose every email already has an open request keeps the form open, naming the
    first of them with their requests' ids; no second request is stored."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    first = request_id_of(message)
    view = open_bulk_form(world)
    errors = errors_of(submit_bulk(world, view, pasted="Alice@example.com\nalice@example.com"))
    said = errors[ids.BULK_LIST_BLOCK]
    assert said.startswith("The email already has an open request: Alice@example.com")
    assert f"(request {first})" in said
    assert [r.id for r in world.services.store.list_requests()] == [first]


def test_an_attached_txt_file_whose_emails_are_all_open_names_them_under_the_file(world):
    """An attached .txt (CRLF lines, a blank line) is read whole and asked for: when each of
    its emails already has an open request, the error under the file names them with their
    requests' ids (so every line of the file reached the service), and nothing is stored."""
    one = request_id_of(world.driver.ask(REQUESTER, "alice@example.com"))
    two = request_id_of(world.driver.ask(REQUESTER, "bob@example.org"))
    view = open_bulk_form(world)
    file = world.driver.upload(REQUESTER, "stuck.txt", "alice@example.com\r\n\r\nbob@example.org")
    errors = errors_of(submit_bulk(world, view, files=[file]))
    assert set(errors) == {ids.BULK_FILE_BLOCK}
    said = errors[ids.BULK_FILE_BLOCK]
    assert said.startswith(
        f"Every email already has an open request: alice@example.com (request {one}), "
        f"bob@example.org (request {two})."
    )
    assert sorted(r.id for r in world.services.store.list_requests()) == sorted([one, two])


def test_an_attached_txt_file_is_asked_for(world):
    """An attached .txt list of three emails (one twice) closes the form and stores one
    pending bulk request of two items, for the operation chosen, by the requester; the
    receipt DM counts them and the duplicate."""
    view = open_bulk_form(world)
    file = world.driver.upload(
        REQUESTER, "stuck.txt", "alice@example.com\nbob@example.org\nALICE@example.com\n"
    )
    body = submit_bulk(world, view, files=[file], operation="resend")
    if body not in ("", None, {}):
        pytest.fail(f"the form was not closed: {body}")
    [stored] = world.services.store.list_requests()
    assert [i.email for i in stored.items] == ["alice@example.com", "bob@example.org"]
    assert (stored.operation, stored.requester) == (Operation.RESEND, REQUESTER)
    told = world.driver.dm_with(REQUESTER, "Your bulk request")
    assert "*2 emails*" in told["text"] and "1 duplicate was left out" in told["text"]


def test_emails_with_open_requests_are_left_out_and_named(world):
    """Pasted and attached together: the emails with an open request elsewhere are left out
    of the bulk request, which holds the rest; the receipt DM names each left out with its
    request's id."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    first = request_id_of(message)
    view = open_bulk_form(world)
    file = world.driver.upload(REQUESTER, "more.csv", "email\ncarol@example.com\n")
    body = submit_bulk(world, view, pasted="alice@example.com bob@example.org", files=[file])
    assert body in ("", None, {})
    bulk = [r for r in world.services.store.list_requests() if r.id != first]
    assert [[i.email for i in r.items] for r in bulk] == [["bob@example.org", "carol@example.com"]]
    told = world.driver.dm_with(REQUESTER, "Left out")
    assert f"`alice@example.com` (request `{first}`)" in told["text"]
