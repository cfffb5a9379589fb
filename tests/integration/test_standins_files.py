"""The Slack stand-in's files behave like Slack's for what the bulk form relies on: a file a
person attached to a modal's file_input, described by files.info, downloaded from its
url_private with the bot token only, and carried in view_submission as Slack sends it.

Each test drives the stand-in with the real client the bot uses (slack_sdk's WebClient) and
plain HTTP (httpx, as a download is). The ``fake`` fixture (a running FakeSlack) is in
tests/conftest.py, the tokens in tests/slack_payloads.py.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from slack_payloads import APP_TOKEN, BOT_TOKEN
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.standins import payloads
from bot.standins.driver import FILE_INPUT_MAX_BYTES, Driver, Reply, attached_files
from bot.standins.slack import DEFAULT_SCOPES, DOWNLOAD, FakeSlack

LIST = b"a@example.com\nb@example.com\n"

BULK_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "bulk_view",
    "title": {"type": "plain_text", "text": "Bulk request"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [
        {
            "type": "input",
            "block_id": "emails_block",
            "optional": True,
            "label": {"type": "plain_text", "text": "Emails"},
            "element": {"type": "plain_text_input", "action_id": "emails_input", "multiline": True},
        },
        {
            "type": "input",
            "block_id": "file_block",
            "optional": True,
            "label": {"type": "plain_text", "text": "Or attach a list"},
            "element": {
                "type": "file_input",
                "action_id": "file_input",
                "filetypes": ["txt", "csv"],
                "max_files": 1,
            },
        },
    ],
}


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url)


def get(url: str, token: str | None = None) -> httpx.Response:
    """GET a file URL as the bot would (loopback, never through a proxy)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(url, headers=headers, trust_env=False, timeout=5.0)


class _Transport:
    """Records what the driver would send to the bot, and answers with an empty ack."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def command(self, fields: dict[str, str]) -> Reply:
        return Reply(200, "")

    def interactive(self, payload: dict[str, Any]) -> Reply:
        self.sent.append(payload)
        return Reply(200, "")

    def event(self, payload: dict[str, Any]) -> Reply:
        return Reply(200, "")


# ------------------------------------------------------------------------- the file object


def test_an_uploaded_file_is_described_as_slack_describes_it(fake: FakeSlack) -> None:
    """add_file returns the file object Slack sends: its id (F…), name, title, Slack's
    filetype and pretty type, the mimetype, the size (the content's length unless told
    otherwise), the uploader and team, and url_private / url_private_download on the
    stand-in."""
    file = fake.add_file("Stuck Emails.csv", LIST, filetype="csv", user="U0REQ")
    assert file["id"].startswith("F")
    assert (file["name"], file["title"]) == ("Stuck Emails.csv", "Stuck Emails.csv")
    assert (file["filetype"], file["pretty_type"], file["mimetype"]) == ("csv", "CSV", "text/csv")
    assert file["size"] == len(LIST)
    assert (file["user"], file["user_team"], file["mode"]) == ("U0REQ", "T1", "hosted")
    prefix = f"{fake.base_url}files-pri/T1-{file['id']}/"
    assert file["url_private"] == prefix + "stuck_emails.csv"
    assert file["url_private_download"] == prefix + "download/stuck_emails.csv"
    assert file["is_external"] is False and file["is_public"] is False
    claimed = fake.add_file("big.txt", b"x", filetype="text", user="U0REQ", size=11_000_000)
    assert (claimed["size"], claimed["pretty_type"], claimed["mimetype"]) == (
        11_000_000,
        "Plain Text",
        "text/plain",
    )
    assert claimed["id"] != file["id"]
    assert fake.file(file["id"]) == file


def test_files_info_answers_the_file_and_needs_files_read(
    fake: FakeSlack, client: WebClient
) -> None:
    """files.info answers the same file object; an unknown id is file_not_found, a deleted
    file file_deleted; without files:read it answers missing_scope naming files:read."""
    file = fake.add_file("list.txt", LIST, filetype="text", user="U0REQ")
    answer = client.files_info(file=file["id"])
    assert answer["file"] == file
    assert answer["comments"] == []
    with pytest.raises(SlackApiError) as unknown:
        client.files_info(file="F0NOSUCH")
    assert unknown.value.response["error"] == "file_not_found"

    fake.set_scopes([s for s in DEFAULT_SCOPES if s != "files:read"])
    with pytest.raises(SlackApiError) as scope:
        client.files_info(file=file["id"])
    assert scope.value.response["error"] == "missing_scope"
    assert scope.value.response["needed"] == "files:read"

    fake.set_scopes(DEFAULT_SCOPES)
    fake.delete_file(file["id"])
    with pytest.raises(SlackApiError) as deleted:
        client.files_info(file=file["id"])
    assert deleted.value.response["error"] == "file_deleted"


# ----------------------------------------------------------------------------- downloading


def test_the_bot_token_downloads_the_bytes(fake: FakeSlack) -> None:
    """With Authorization: Bearer <bot token> both URLs serve the file's bytes with its
    mimetype; url_private_download as an attachment. Each request is recorded."""
    content = "ärende@example.se\n".encode()
    file = fake.add_file("list.txt", content, filetype="text", user="U0REQ")
    private = get(file["url_private"], BOT_TOKEN)
    assert private.status_code == 200
    assert private.content == content
    assert private.headers["content-type"].startswith("text/plain")
    assert "content-disposition" not in private.headers
    download = get(file["url_private_download"], BOT_TOKEN)
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-disposition"].startswith("attachment")
    assert [(d.status, d.token) for d in fake.downloads] == [(200, BOT_TOKEN), (200, BOT_TOKEN)]
    assert fake.downloads[0].path == file["url_private"].removeprefix(fake.base_url[:-1])


def test_a_download_without_the_bot_token_and_files_read_is_refused(fake: FakeSlack) -> None:
    """No token, or one Slack does not know, is 401; the app-level token, or the bot token
    without files:read, is 403; none of them gets the bytes. A token in the query is not
    read: only the Authorization header counts."""
    file = fake.add_file("list.txt", LIST, filetype="text", user="U0REQ")
    url = file["url_private"]
    assert get(url).status_code == 401
    assert get(url, "xoxb-wrong").status_code == 401
    assert httpx.get(f"{url}?token={BOT_TOKEN}", trust_env=False).status_code == 401
    assert get(url, APP_TOKEN).status_code == 403
    fake.set_scopes([s for s in DEFAULT_SCOPES if s != "files:read"])
    refused = get(url, BOT_TOKEN)
    assert refused.status_code == 403 and LIST not in refused.content
    assert [d.status for d in fake.downloads] == [401, 401, 401, 403, 403]


def test_a_refused_download_can_be_slacks_sign_in_page(fake: FakeSlack) -> None:
    """After set_download_refusal("login_page") a refused download answers 200 with an HTML
    sign-in page (as Slack has been seen to), so a test can check the bot does not take it for
    the list; the bot token still gets the bytes."""
    file = fake.add_file("list.txt", LIST, filetype="text", user="U0REQ")
    fake.set_download_refusal("login_page")
    page = get(file["url_private"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert b"<html" in page.content and LIST not in page.content
    assert get(file["url_private"], BOT_TOKEN).content == LIST


def test_unknown_or_deleted_files_and_wrong_paths_are_not_found(fake: FakeSlack) -> None:
    """A file id the stand-in does not hold, a deleted file, a name that is not the file's or
    another team's prefix: 404 for the bot token; a POST is 405."""
    file = fake.add_file("list.txt", LIST, filetype="text", user="U0REQ")
    url = file["url_private"]
    assert get(url.replace(file["id"], "F0NOSUCH"), BOT_TOKEN).status_code == 404
    assert get(url.replace("list.txt", "other.txt"), BOT_TOKEN).status_code == 404
    assert get(url.replace("/T1-", "/T2-"), BOT_TOKEN).status_code == 404
    posted = httpx.post(url, headers={"Authorization": f"Bearer {BOT_TOKEN}"}, trust_env=False)
    assert posted.status_code == 405
    fake.delete_file(file["id"])
    assert get(url, BOT_TOKEN).status_code == 404


def test_downloads_can_fail_be_slow_and_be_seen_in_flight(fake: FakeSlack) -> None:
    """fail_next(DOWNLOAD) answers the next download with that status (429 with Retry-After);
    an outage answers 503; set_delay(DOWNLOAD) holds a download, seen by in_flight(DOWNLOAD)
    meanwhile."""
    file = fake.add_file("list.txt", LIST, filetype="text", user="U0REQ")
    fake.fail_next(DOWNLOAD, retry_after=2)
    limited = get(file["url_private"], BOT_TOKEN)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    fake.fail_next(DOWNLOAD, "internal_error", status=500)
    assert get(file["url_private"], BOT_TOKEN).status_code == 500
    assert get(file["url_private"], BOT_TOKEN).content == LIST

    fake.set_delay(DOWNLOAD, 0.5)
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(get(file["url_private"], BOT_TOKEN)))
    thread.start()
    fake.wait_for(lambda: fake.in_flight(DOWNLOAD) or None, 5.0, what="download in flight")
    thread.join()
    assert answers[0].content == LIST
    fake.set_delay(DOWNLOAD, 0)

    fake.outage(30)
    assert get(file["url_private"], BOT_TOKEN).status_code == 503


# ----------------------------------------------------------------------- view_submission


def test_a_submitted_file_input_carries_the_files_as_slack_sends_them(fake: FakeSlack) -> None:
    """The driver uploads a list as the requester and submits the modal with it attached:
    view.state.values has the file_input's state {"type": "file_input", "files": [the file
    object]} under its block and action ids, beside the text input's; its url_private then
    serves the list to the bot token."""
    transport = _Transport()
    driver = Driver(fake, transport, channel="C0APPROVALS")
    file = driver.upload("U0REQ", "stuck.csv", "a@example.com,b@example.com\n")
    assert (file["filetype"], file["user"]) == ("csv", "U0REQ")
    values = {"emails_block": {"emails_input": None}, **attached_files(BULK_MODAL, [file])}
    assert driver.submit("U0REQ", BULK_MODAL, values) == Reply(200, "")
    (payload,) = transport.sent
    state = payload["view"]["state"]["values"]
    assert state["file_block"] == {"file_input": {"type": "file_input", "files": [file]}}
    assert state["emails_block"] == {"emails_input": {"type": "plain_text_input", "value": None}}
    sent = state["file_block"]["file_input"]["files"][0]
    assert get(sent["url_private_download"], BOT_TOKEN).content == b"a@example.com,b@example.com\n"


def test_attaching_takes_only_what_slacks_client_lets_a_person_attach(fake: FakeSlack) -> None:
    """attached_files refuses more files than the element's max_files and a file over 10 MB
    (Slack's client refuses both), and a view without a file_input; it does not check
    filetypes (Slack checks them only for convenience), and payloads.file_input_state builds
    any state for what Slack would not send."""
    driver = Driver(fake, _Transport(), channel="C0APPROVALS")
    first = driver.upload("U0REQ", "a.txt", LIST)
    second = driver.upload("U0REQ", "b.txt", LIST)
    with pytest.raises(ValueError, match="takes 1"):
        attached_files(BULK_MODAL, [first, second])
    huge = driver.upload("U0REQ", "c.txt", LIST, size=FILE_INPUT_MAX_BYTES + 1)
    with pytest.raises(ValueError, match="10 MB"):
        attached_files(BULK_MODAL, [huge])
    at_limit = driver.upload("U0REQ", "d.txt", LIST, size=FILE_INPUT_MAX_BYTES)
    accepted = attached_files(BULK_MODAL, [at_limit])["file_block"]["file_input"]["files"]
    assert accepted[0]["size"] == FILE_INPUT_MAX_BYTES
    pdf = driver.upload("U0REQ", "list.pdf", b"%PDF", filetype="pdf")
    assert attached_files(BULK_MODAL, [pdf])["file_block"]["file_input"]["files"] == [pdf]
    no_input = {**BULK_MODAL, "blocks": BULK_MODAL["blocks"][:1]}
    with pytest.raises(ValueError, match="0 file_input"):
        attached_files(no_input, [first])
    with pytest.raises(ValueError, match="filetype"):
        driver.upload("U0REQ", "list.pdf", b"%PDF")
    assert payloads.file_input_state([first, second]) == {
        "type": "file_input",
        "files": [first, second],
    }
