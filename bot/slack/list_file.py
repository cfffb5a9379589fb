"""The list of emails attached to the bulk form: read from Slack with the bot token, bounded.

A Block Kit ``file_input`` sends the file's object in the form's state. Only its id is taken
from there: ``files.info`` (bot token, ``files:read``) says what the file is, and its
``url_private_download`` is fetched with the same token. Before anything is downloaded:

* the URL must be Slack's: ``https`` on ``slack.com`` or ``files.slack.com``, or the host of
  SLACK_API_URL (the stand-in's, in tests and the sandbox), so the bot token is never sent
  anywhere else; a redirect is not followed (it would be one);
* the name must end in .txt or .csv and the size Slack reports must be at most 10 MB (Slack's
  limit); the download is cut at 10 MB whatever it says;

and an answer that is not the file (a status other than 200, or an HTML page: Slack answers a
token that may not read files with its sign-in page) is refused, never read as a list.

Everything (files.info and the download) runs against one deadline, so a slow Slack makes the
form answer "try again" instead of Slack timing the form out: each call's timeout is the time
left, and the download stops at the deadline between chunks (a read that stalls is bounded by
the time that was left when it started, so the whole takes at most twice the budget). The calls
go through a short-lived httpx client (a bulk form with a file is rare: a pooled client would
sit idle). Each failure is a :class:`ListFileError` whose words are for
the form's field error. Nothing here logs the token, the URL or the file's content.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.domain.bulk_input import LIST_SUFFIXES, MAX_LIST_BYTES, shown

log = logging.getLogger(__name__)

# The hosts a file's URL may be on, besides SLACK_API_URL's.
SLACK_FILE_HOSTS = frozenset({"slack.com", "files.slack.com"})
_FILE_ID_RE = re.compile(r"F[A-Z0-9]{1,40}")
_CHUNK = 64 * 1024


class ListFileError(Exception):
    """The attached list cannot be read; ``str()`` says why, for the form."""


@dataclass(frozen=True)
class ListFile:
    """An attached list as downloaded: its name (as Slack has it) and its bytes."""

    name: str
    data: bytes


def fetch_list_file(
    attached: Mapping[str, Any],
    *,
    token: str,
    api_url: str,
    deadline: float,
    transport: httpx.BaseTransport | None = None,
) -> ListFile:
    """Read the file a file_input's state names (``attached``: its file object) from Slack,
    by ``deadline`` (a ``time.monotonic()`` value); ListFileError saying why it cannot be.
    ``api_url``: SLACK_API_URL (files.info's base, and a host files may be on)."""
    file_id = attached.get("id")
    if not isinstance(file_id, str) or not _FILE_ID_RE.fullmatch(file_id):
        raise ListFileError(
            "Slack sent the attached file without an id I can use: attach it again."
        )
    with httpx.Client(transport=transport, follow_redirects=False) as http:
        info = _files_info(http, file_id, token=token, api_url=api_url, deadline=deadline)
        name = info.get("name") or info.get("title") or ""
        name = name if isinstance(name, str) else ""
        label = shown(name.strip()) or "(no name)"
        if not name.strip().lower().endswith(LIST_SUFFIXES):
            raise ListFileError(
                f"`{label}` is not a .txt or .csv file: attach the list as text, one email a "
                "line, or as a CSV with a column of emails."
            )
        size = info.get("size")
        if isinstance(size, int) and size > MAX_LIST_BYTES:
            raise ListFileError(f"`{label}` is larger than 10 MB, Slack's limit: split the list.")
        url = info.get("url_private_download") or info.get("url_private")
        if not isinstance(url, str) or not on_slack(url, api_url):
            log.warning("Refused to download file %s: its URL is not on Slack's hosts", file_id)
            raise ListFileError(
                f"Slack did not give a download address of its own for `{label}`: attach the "
                "file again (uploaded from your computer, not linked from elsewhere), or paste "
                "the list."
            )
        data = _download(http, url, label, token=token, deadline=deadline, file_id=file_id)
    return ListFile(name, data)


def on_slack(url: str, api_url: str) -> bool:
    """Whether ``url`` is Slack's (https on SLACK_FILE_HOSTS), or on SLACK_API_URL's scheme,
    host and port: the only places the bot token may be sent."""
    try:
        parts, api = urlsplit(url), urlsplit(api_url)
        port, api_port = parts.port, api.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return False
    if parts.scheme == "https" and parts.hostname in SLACK_FILE_HOSTS and port in (None, 443):
        return True
    return (parts.scheme, parts.hostname, port) == (api.scheme, api.hostname, api_port)


def _too_slow() -> ListFileError:
    return ListFileError(
        "Slack took too long to hand over the attached file: submit the form again, or paste "
        "the list instead."
    )


def _remaining(deadline: float) -> float:
    """The seconds left before ``deadline``; ListFileError (too slow) when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _too_slow()
    return left


def _files_info(
    http: httpx.Client, file_id: str, *, token: str, api_url: str, deadline: float
) -> dict[str, Any]:
    try:
        answer = http.post(
            api_url + "files.info",
            data={"file": file_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=_remaining(deadline),
        )
    except httpx.TimeoutException:
        raise _too_slow() from None
    except httpx.HTTPError as exc:
        log.warning("files.info for %s failed: %s", file_id, type(exc).__name__)
        raise ListFileError(
            "Slack did not answer when asked for the attached file: submit the form again, or "
            "paste the list instead."
        ) from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ListFileError(
            f"Slack's answer about the attached file was not readable (HTTP "
            f"{answer.status_code}): submit the form again, or paste the list instead."
        )
    if body.get("ok") is not True:
        error = str(body.get("error") or "error")
        log.warning("files.info for %s refused: %s", file_id, error)
        if error == "missing_scope":
            raise ListFileError(
                "The bot may not read attached files (its Slack app lacks the files:read "
                "permission; an admin can add it): paste the list instead."
            )
        if error in ("file_not_found", "file_deleted"):
            raise ListFileError("The attached file is gone from Slack: attach it again.")
        raise ListFileError(
            f"Slack would not hand over the attached file ({shown(error)}): attach it again, "
            "or paste the list instead."
        )
    info = body.get("file")
    if not isinstance(info, dict) or info.get("id") != file_id:
        raise ListFileError("Slack's answer about the attached file was not about that file.")
    return info


def _download(
    http: httpx.Client, url: str, label: str, *, token: str, deadline: float, file_id: str
) -> bytes:
    data = bytearray()
    try:
        with http.stream(
            "GET",
            url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=_remaining(deadline),
        ) as answer:
            if answer.status_code != 200:
                log.warning("Download of file %s answered HTTP %d", file_id, answer.status_code)
                raise ListFileError(
                    f"Slack refused to hand over `{label}` (HTTP {answer.status_code}): attach "
                    "it again, or paste the list instead."
                )
            content_type = answer.headers.get("content-type", "").lower()
            if content_type.startswith(("text/html", "application/xhtml")):
                log.warning("Download of file %s answered a web page, not the file", file_id)
                raise ListFileError(
                    f"Slack answered with a web page (its sign-in page), not `{label}`: the bot "
                    "may lack the files:read permission. Paste the list instead, or ask an "
                    "admin."
                )
            for chunk in answer.iter_bytes(_CHUNK):
                data += chunk
                if len(data) > MAX_LIST_BYTES:
                    raise ListFileError(
                        f"`{label}` is larger than 10 MB, Slack's limit: split the list."
                    )
                _remaining(deadline)
    except httpx.TimeoutException:
        raise _too_slow() from None
    except httpx.HTTPError as exc:
        log.warning("Download of file %s failed: %s", file_id, type(exc).__name__)
        raise ListFileError(
            f"Slack did not hand over `{label}`: submit the form again, or paste the list instead."
        ) from None
    return bytes(data)
