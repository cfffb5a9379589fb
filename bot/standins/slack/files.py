"""Files a person attached to a modal's Block Kit ``file_input``, as Slack holds them: the file
object (what ``files.info`` answers and what view_submission carries in the element's state),
and its ``url_private`` / ``url_private_download`` on this stand-in, which serve the file's bytes
to the bot token only.

What Slack documents, and so what is modelled: ``files.info`` needs ``files:read`` (else
``missing_scope``), answers ``file_not_found`` for an unknown id and ``file_deleted`` for a
deleted file; ``url_private`` and ``url_private_download`` need ``Authorization: Bearer`` with a
token that has ``files:read``. Slack does not document how a refused download is answered; here
it is HTTP 401 without a usable token (none, or one Slack does not know) and 403 for a token that
may not read files (the app-level token, or a bot token without ``files:read``). Slack has been
seen answering such a download with its HTML sign-in page and status 200 instead:
``set_download_refusal("login_page")`` does that, so a test can check the bot does not read a
sign-in page as a list of emails.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import quote, unquote

from bot.standins.slack.faults import Faults
from bot.standins.slack.state import Answer, Download, Params, error_answer

# The name under which url_private downloads are recorded, delayed (``set_delay``), failed
# (``fail_next``) and tracked in flight: not a Web API method, the file URLs themselves.
DOWNLOAD = "url_private"
# Slack's file type for the two kinds of list the bulk form takes, and their pretty names, as in
# Slack's table of file types ("text" is Plain Text, "csv" is CSV).
PRETTY_TYPES = {"text": "Plain Text", "csv": "CSV"}
_MIMETYPES = {"text": "text/plain", "csv": "text/csv"}
LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Slack</title></head><body>"
    b"<h1>Sign in to Slack</h1></body></html>"
)

Refusal = Literal["status", "login_page"]


def _slug(name: str) -> str:
    """The file name as Slack puts it in a file URL: lower case, runs of other characters `_`."""
    return re.sub(r"[^a-z0-9._-]+", "_", name.lower()).strip("_") or "file"


class FileMethods(Faults):
    """``files.info``, the files people uploaded, and their url_private downloads, in
    `FakeSlack` (over `Faults`: a download can be delayed, failed and tracked in flight)."""

    def add_file(
        self,
        name: str,
        content: bytes,
        *,
        filetype: str,
        user: str,
        size: int | None = None,
        mimetype: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Register a file ``user`` uploaded through a file_input; its file object, as Slack
        sends it in the element's state and ``files.info`` answers it.

        ``filetype`` is Slack's file type (``text`` for a .txt, ``csv`` for a .csv); ``size``
        what Slack reports (default: the length of ``content``, which is what a download
        serves); ``mimetype`` defaults to text/plain or text/csv for those two types.
        """
        if self._server is None:
            raise RuntimeError("FakeSlack is not started: its file URLs need its port")
        base = f"http://127.0.0.1:{self._server.server_address[1]}/"
        with self._cond:
            file_id = f"F{next(self._counter):010d}"
            slug = quote(_slug(name))
            files_pri = f"{base}files-pri/{self.team_id}-{file_id}/"
            now = int(time.time())
            file: dict[str, Any] = {
                "id": file_id,
                "created": now,
                "timestamp": now,
                "name": name,
                "title": name if title is None else title,
                "mimetype": mimetype or _MIMETYPES.get(filetype, "application/octet-stream"),
                "filetype": filetype,
                "pretty_type": PRETTY_TYPES.get(filetype, filetype.upper()),
                "user": user,
                "user_team": self.team_id,
                "editable": False,
                "size": len(content) if size is None else size,
                "mode": "hosted",
                "is_external": False,
                "external_type": "",
                "is_public": False,
                "public_url_shared": False,
                "display_as_bot": False,
                "username": "",
                "url_private": files_pri + slug,
                "url_private_download": f"{files_pri}download/{slug}",
                "permalink": f"{self.team_url}files/{user}/{file_id}/{slug}",
                "permalink_public": (
                    f"https://slack-files.com/{self.team_id}-{file_id}-{secrets.token_hex(5)}"
                ),
                "comments_count": 0,
                "is_starred": False,
                "shares": {},
                "channels": [],
                "groups": [],
                "ims": [],
                "has_more_shares": False,
                "has_rich_preview": False,
                "file_access": "visible",
            }
            self._files[file_id] = file
            self._file_bytes[file_id] = bytes(content)
            return copy.deepcopy(file)

    def file(self, file_id: str) -> dict[str, Any]:
        """A registered file's object; KeyError when there is none."""
        with self._cond:
            return copy.deepcopy(self._files[file_id])

    def delete_file(self, file_id: str) -> None:
        """The file is deleted: ``files.info`` answers ``file_deleted``, its URLs 404."""
        with self._cond:
            if file_id not in self._files:
                raise KeyError(file_id)
            self._deleted_files.add(file_id)

    def set_download_refusal(self, how: Refusal) -> None:
        """How a download without a token that may read files is answered: ``status`` (401 or
        403, the default) or ``login_page`` (200 with an HTML sign-in page, as Slack has been
        seen to answer)."""
        with self._cond:
            self._download_refusal = how

    @property
    def downloads(self) -> list[Download]:
        """Every request for a file URL so far, oldest first."""
        with self._cond:
            return list(self._downloads)

    def _files_info(self, params: Params) -> Answer:
        file_id = str(params.get("file", ""))
        file = self._files.get(file_id)
        if file is None:
            return error_answer("file_not_found")
        if file_id in self._deleted_files:
            return error_answer("file_deleted")
        return {
            "ok": True,
            "file": copy.deepcopy(file),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _answer_download(
        self, path: str, token: str | None, verb: str, client_address: Any
    ) -> tuple[int, dict[str, str], bytes]:
        """One request for ``/files-pri/<team>-<file id>/[download/]<name>``: (status,
        headers, body), recorded."""
        with self._tracking(DOWNLOAD, client_address):
            return self._answer_download_now(path, token, verb)

    def _answer_download_now(
        self, path: str, token: str | None, verb: str
    ) -> tuple[int, dict[str, str], bytes]:
        with self._cond:
            delay = self._delays.get(DOWNLOAD, 0.0)
        if delay > 0:
            time.sleep(delay)  # simulated network/server latency, not a polling loop
        with self._cond:
            status, headers, body = self._download(path, token, verb)
            self._downloads.append(Download(path, token, time.time(), status))
            self._cond.notify_all()
            return status, headers, body

    def _download(
        self, path: str, token: str | None, verb: str
    ) -> tuple[int, dict[str, str], bytes]:
        plain = {"Content-Type": "text/plain"}
        if time.monotonic() < self._outage_until:
            return HTTPStatus.SERVICE_UNAVAILABLE, plain, b"service_unavailable"
        if verb != "GET":
            return HTTPStatus.METHOD_NOT_ALLOWED, plain | {"Allow": "GET"}, b"method_not_allowed"
        if (failure := self._take_failure(DOWNLOAD)) is not None:
            failed = plain.copy()
            if failure.retry_after is not None:
                failed["Retry-After"] = str(failure.retry_after)
            return failure.status, failed, failure.error.encode()
        if token is None or token not in (self.bot_token, self.app_token):
            refused = HTTPStatus.UNAUTHORIZED
        elif token != self.bot_token or (
            self._scopes is not None and "files:read" not in self._scopes
        ):
            refused = HTTPStatus.FORBIDDEN
        else:
            refused = None
        if refused is not None:
            if self._download_refusal == "login_page":
                return HTTPStatus.OK, {"Content-Type": "text/html"}, LOGIN_PAGE
            return refused, plain, refused.phrase.lower().replace(" ", "_").encode()
        match = re.fullmatch(r"/files-pri/([^/]+)-(F[^/]+)/(download/)?([^/]+)", path)
        file = self._files.get(match.group(2)) if match else None
        if (
            match is None
            or file is None
            or match.group(1) != self.team_id
            or match.group(2) in self._deleted_files
            or unquote(match.group(4)) != unquote(file["url_private"].rsplit("/", 1)[1])
        ):
            return HTTPStatus.NOT_FOUND, plain, b"file_not_found"
        headers = {"Content-Type": str(file["mimetype"])}
        if match.group(3):
            headers["Content-Disposition"] = f'attachment; filename="{_slug(file["name"])}"'
        return HTTPStatus.OK, headers, self._file_bytes[file["id"]]
