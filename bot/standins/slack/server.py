"""The stand-in's HTTP side: a threading server on 127.0.0.1 whose handler routes
`/api/<method>`, `/response/<id>` and the file URLs `/files-pri/...` to the owning `FakeSlack`,
reading the token from the `Authorization` header or a `token` field (a file URL: the header
only) and the parameters from the query, a form or a JSON body (JSON-string fields such as
`blocks` parsed, as Slack does)."""

from __future__ import annotations

import json
import logging
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from bot.standins.slack.fake import FakeSlack
    from bot.standins.slack.state import Params


log = logging.getLogger(__name__)


# Fields Slack accepts as JSON-encoded strings in form bodies (and as objects in JSON bodies).
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
    "outputs": "invalid_arguments",  # functions.completeSuccess (slack_sdk sends it as JSON text)
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of clicks opens many connections at once; the default backlog of 5 drops some.
    request_queue_size = 128
    fake: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout ran out during `set_delay`) is normal here: no
        # traceback on stderr. Anything else is the stand-in's bug and is printed as before.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("fake slack: client %s went away", client_address)
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Routes `/api/<method>` and `/response/<id>` to the owning FakeSlack."""

    server: Server

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake slack: " + format, *args)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        fake = self.server.fake
        if url.path.startswith("/api/"):
            method = url.path.removeprefix("/api/")
            params, parse_error = _parse_params(url.query, body, content_type)
            token = _bearer(self.headers.get("Authorization")) or params.pop("token", None)
            params.pop("token", None)
            with fake._tracking(method, self.client_address):
                status, headers, answer = fake._answer_api(method, params, token, parse_error)
            self._send(status, json.dumps(answer).encode(), "application/json", headers)
        elif url.path.startswith("/files-pri/"):
            # A file's url_private / url_private_download: the token only from the header.
            token = _bearer(self.headers.get("Authorization"))
            status, headers, data = fake._answer_download(
                url.path, token, self.command, self.client_address
            )
            content_type = headers.pop("Content-Type")
            self._send(status, data, content_type, headers)
        elif url.path.startswith("/response/"):
            status, text = fake._answer_response_url(url.path, body, content_type)
            self._send(status, text.encode(), "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[len("bearer ") :].strip() or None
    return None


def _parse_params(query: str, body: bytes, content_type: str) -> tuple[Params, str | None]:
    """Merge query, form or JSON fields; parse JSON-string fields. Returns (params, error)."""
    params: Params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    text = body.decode("utf-8", errors="replace")
    if "application/json" in content_type.lower():
        try:
            loaded = json.loads(text or "{}")
        except ValueError:
            return params, "invalid_json"
        if not isinstance(loaded, dict):
            return params, "invalid_json"
        params.update(loaded)
    elif text:
        params.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
    for name, error in _JSON_FIELDS.items():
        if isinstance(params.get(name), str):
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                return params, error
    return params, None
