"""Reading the list attached to the bulk form (bot/slack/list_file.py) against a scripted
Slack (httpx.MockTransport): files.info and the download with the bot token, only from Slack's
hosts, the name and size checked before downloading, and every answer that is not the file
(an HTML page, an error status, a redirect, a file too big, no time left) refused in words."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.domain.bulk_input import MAX_LIST_BYTES
from bot.slack.list_file import ListFileError, fetch_list_file, on_slack

TOKEN = "xoxb-test-token"
API = "https://slack.com/api/"
FILE_ID = "F0123ABCD"
DOWNLOAD = f"https://files.slack.com/files-pri/T1-{FILE_ID}/download/list.txt"


def info(**changes: Any) -> dict[str, Any]:
    return {
        "id": FILE_ID,
        "name": "list.txt",
        "filetype": "text",
        "size": 18,
        "url_private": f"https://files.slack.com/files-pri/T1-{FILE_ID}/list.txt",
        "url_private_download": DOWNLOAD,
        **changes,
    }


class Slack:
    """A scripted Slack: files.info answers ``answer``; the download ``download(request)``."""

    def __init__(
        self,
        answer: dict[str, Any] | None = None,
        download: Callable[[httpx.Request], httpx.Response] | None = None,
    ) -> None:
        self.answer = {"ok": True, "file": info()} if answer is None else answer
        self.download = download or (
            lambda _: httpx.Response(
                200, content=b"alice@example.com\n", headers={"Content-Type": "text/plain"}
            )
        )
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) == API + "files.info":
            return httpx.Response(200, json=self.answer)
        return self.download(request)

    def fetch(self, attached: dict[str, Any] | None = None, *, budget: float = 5.0) -> Any:
        return fetch_list_file(
            {"id": FILE_ID} if attached is None else attached,
            token=TOKEN,
            api_url=API,
            deadline=time.monotonic() + budget,
            transport=httpx.MockTransport(self),
        )


def test_the_file_is_read_with_the_bot_token_through_files_info():
    """files.info is asked for the id the form's state names, then its url_private_download is
    fetched; both carry the bot token; the name is files.info's."""
    slack = Slack()
    got = slack.fetch({"id": FILE_ID, "name": "ignored.csv"})
    assert (got.name, got.data) == ("list.txt", b"alice@example.com\n")
    first, second = slack.requests
    assert first.method == "POST" and first.content == f"file={FILE_ID}".encode()
    assert str(second.url) == DOWNLOAD and second.method == "GET"
    assert {r.headers["Authorization"] for r in slack.requests} == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        (DOWNLOAD, True),
        ("https://slack.com/files-pri/x", True),
        ("https://files.slack.com:443/files-pri/x", True),
        ("http://files.slack.com/files-pri/x", False),
        ("https://files.slack.com:8443/files-pri/x", False),
        ("https://files.slack.com.evil.example/files-pri/x", False),
        ("https://evil.example/files-pri/x", False),
        ("https://user:pw@files.slack.com/files-pri/x", False),
        ("https://files.slack.com:bad/x", False),
        ("http://127.0.0.1:4000/files-pri/x", False),
    ],
)
def test_only_slacks_hosts_are_sent_the_token(url, ok):
    """A file URL is Slack's only over https on slack.com or files.slack.com (default port,
    no credentials); a look-alike host, http or another port is not."""
    assert on_slack(url, API) is ok


def test_the_stand_ins_host_is_slacks_when_slack_api_url_names_it():
    """With SLACK_API_URL on the stand-in, its scheme, host and port are Slack's; another
    port on the same host is not."""
    api = "http://127.0.0.1:4000/api/"
    assert on_slack("http://127.0.0.1:4000/files-pri/T1-F1/download/a.txt", api)
    assert not on_slack("http://127.0.0.1:4001/files-pri/T1-F1/download/a.txt", api)
    assert not on_slack("https://127.0.0.1:4000/files-pri/T1-F1/download/a.txt", api)


def test_a_url_off_slack_is_never_fetched():
    """files.info naming a download URL on another host: refused, and nothing is requested
    from that host (the token stays with Slack)."""
    slack = Slack({"ok": True, "file": info(url_private_download="https://evil.example/x.txt")})
    with pytest.raises(ListFileError, match="download address of its own"):
        slack.fetch()
    assert [r.url.host for r in slack.requests] == ["slack.com"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": "list.pdf"}, "is not a .txt or .csv file"),
        ({"size": MAX_LIST_BYTES + 1}, "larger than 10 MB"),
    ],
)
def test_name_and_size_are_checked_before_downloading(changes, words):
    """A name that is not .txt/.csv, or a size over 10 MB as files.info says it: refused
    before any download."""
    slack = Slack({"ok": True, "file": info(**changes)})
    with pytest.raises(ListFileError, match=words):
        slack.fetch()
    assert len(slack.requests) == 1


def test_a_web_page_is_not_read_as_the_list():
    """A download answered with HTML (Slack's sign-in page, status 200) is refused in words
    that name the likely cause."""
    page = httpx.Response(
        200, content=b"<html>Sign in</html>", headers={"Content-Type": "text/html; charset=utf-8"}
    )
    with pytest.raises(ListFileError, match="web page .*files:read"):
        Slack(download=lambda _: page).fetch()


@pytest.mark.parametrize("status", [302, 401, 403, 404, 500])
def test_an_answer_other_than_200_is_refused(status):
    """An error status, or a redirect (never followed: it would take the token elsewhere), is
    refused with the status."""
    answer = httpx.Response(status, headers={"Location": "https://evil.example/"})
    slack = Slack(download=lambda _: answer)
    with pytest.raises(ListFileError, match=f"HTTP {status}"):
        slack.fetch()
    assert len(slack.requests) == 2


def test_a_download_longer_than_10_mb_is_cut():
    """A download longer than 10 MB whatever files.info said: refused as too large."""
    big = httpx.Response(200, content=b"a" * (MAX_LIST_BYTES + 1))
    with pytest.raises(ListFileError, match="larger than 10 MB"):
        Slack(download=lambda _: big).fetch()


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("missing_scope", "files:read"),
        ("file_not_found", "gone from Slack"),
        ("file_deleted", "gone from Slack"),
        ("ratelimited", r"\(ratelimited\)"),
    ],
)
def test_files_info_errors_are_said(error, words):
    """What files.info refuses is said for the form: the missing scope names files:read, a
    gone file asks for it again, anything else names Slack's error."""
    slack = Slack({"ok": False, "error": error})
    with pytest.raises(ListFileError, match=words):
        slack.fetch()
    assert len(slack.requests) == 1


def test_an_answer_about_another_file_is_refused():
    """files.info answering about another file than the one asked for: refused, not
    downloaded."""
    slack = Slack({"ok": True, "file": info(id="F9999")})
    with pytest.raises(ListFileError, match="not about that file"):
        slack.fetch()
    assert len(slack.requests) == 1


@pytest.mark.parametrize("state", [{}, {"id": None}, {"id": "../../api/chat.postMessage"}])
def test_a_state_without_a_file_id_asks_nothing(state):
    """A file object without a usable id (tampered or not as Slack sends it): refused before
    any request."""
    slack = Slack()
    with pytest.raises(ListFileError, match="without an id"):
        slack.fetch(state)
    assert slack.requests == []


def test_a_timeout_says_try_again():
    """A call that times out is refused as "took too long", not raised as an error."""

    def stall(_: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("stalled")

    with pytest.raises(ListFileError, match="took too long"):
        Slack(download=stall).fetch()


def test_no_time_left_asks_nothing():
    """A deadline already passed: "took too long" before any request."""
    slack = Slack()
    with pytest.raises(ListFileError, match="took too long"):
        slack.fetch(budget=-1.0)
    assert slack.requests == []


def test_each_call_is_given_only_the_time_left():
    """The timeout of files.info and of the download is the time left before the deadline,
    never more."""
    seen: list[dict[str, Any]] = []
    slack = Slack()

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return slack(request)

    fetch_list_file(
        {"id": FILE_ID},
        token=TOKEN,
        api_url=API,
        deadline=time.monotonic() + 0.8,
        transport=httpx.MockTransport(recording),
    )
    assert len(seen) == 2
    assert all(0 < t["read"] <= 0.8 and 0 < t["connect"] <= 0.8 for t in seen)
