"""A local stand-in for the Slack Web API, served over HTTP on 127.0.0.1.

`FakeSlack` answers the Web API methods the bot uses the way Slack answers them, so a real
`slack_sdk.WebClient(token, base_url=fake.api_url)` (and so a real Bolt app) can talk to it.
It also serves the `response_url`s it hands out, and records everything it was asked, so a
test or the sandbox can check what happened and print the channel as a person would read it.

Behaviour worth knowing:

* Tokens come from the `Authorization: Bearer` header or a `token` field. The bot token works
  for every method but `apps.connections.open`, which needs the app-level token (and the app
  token works for nothing else), as on Slack: `not_authed`, `invalid_auth`,
  `not_allowed_token_type`.
* Trigger ids come from `new_trigger_id()`; `views.open` / `views.push` accept each one once
  and within `trigger_ttl` seconds (3 on Slack): `invalid_trigger_id`, `exchanged_trigger_id`,
  `expired_trigger_id`.
* Messages and views (modals, the Home tab) are checked against Slack's main Block Kit rules
  (50 blocks a message, 100 a view, 3000 characters a section text, 2000 a button value, a
  block_id of at most 255 characters and unique within its message or view): a message that
  breaks one answers `invalid_blocks`, a view `invalid_arguments` (the error views.open,
  views.publish and views.update document), each with the problem in
  `response_metadata.messages`.
* Posting to a user ID (U…/W…) posts to the DM channel `dm_channel(user_id)` (D…). Channels
  registered with `add_channel(..., is_member=False)` answer `not_in_channel`; unregistered
  channels accept posts but `conversations.info` does not know them.
* `fail_next()` scripts failures (HTTP 429 with `Retry-After`, or `{"ok": false}` answers) and
  `set_delay()` adds latency to a method. `time_out_next()` answers a call too late, having
  done it or not; `outage()` makes every call answer HTTP 503 for a while; `in_flight()` names
  the client ports of the calls being answered (the soak finds the replica to kill by them).
* Scopes: the bot token is granted `scopes` (by default exactly the manifest's bot scopes,
  `bot.slack.manifest.BOT_SCOPES`; change them with `set_scopes()`). As on Slack, every answer to an
  authenticated call carries them in an `X-OAuth-Scopes` header (comma-separated), and a method
  whose scope is not granted answers `missing_scope` with `needed` and `provided` (and an
  `X-Accepted-OAuth-Scopes` header): `chat:write` for chat.postMessage / chat.update /
  chat.postEphemeral, `usergroups:read` for usergroups.users.list, `users:read` for
  users.info (every U…/W… id is a full member unless `set_user()` says otherwise),
  `channels:read` (or `groups:read` for a private channel) for conversations.info,
  `channels:history` (or `groups:history`) for conversations.history. `scopes=None` sends no
  header and checks no scope.
* Message metadata (`metadata: {event_type, event_payload}` on chat.postMessage) is kept with
  the message; `conversations.history` answers a channel's top-level messages newest first,
  within `oldest` / `latest` (exclusive unless `inclusive`), `limit` a page (default 100, at
  most 999) with Slack's `has_more` and `response_metadata.next_cursor` (`next_ts:<ts>`,
  base64), each message's metadata only with `include_all_metadata`, and `not_in_channel` for a
  channel registered with `is_member=False`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from bot.slack.manifest import BOT_SCOPES

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = dict[str, Any]
Answer = dict[str, Any]

# Fields Slack accepts as JSON-encoded strings in form bodies (and as objects in JSON bodies).
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
}
_MAX_MESSAGE_BLOCKS = 50
_MAX_VIEW_BLOCKS = 100
_MAX_SECTION_TEXT = 3000
_MAX_BUTTON_VALUE = 2000
_MAX_BLOCK_ID = 255
_MAX_MESSAGE_TEXT = 40000
# How long a wait_for gives the bot by default: it returns as soon as the condition holds, so
# this only bounds a failure, and is generous for a loaded 2-core machine.
WAIT_TIMEOUT = 15.0
_TS_STEP = 100  # microseconds between two message ts at least (they are unique, increasing)
# The bot token's scopes unless told otherwise: what the app's manifest asks for.
DEFAULT_SCOPES: tuple[str, ...] = tuple(BOT_SCOPES)
# The app-level token's scope (Socket Mode).
APP_TOKEN_SCOPES: tuple[str, ...] = ("connections:write",)
# The scope each method needs; conversations.info is decided per channel in _needed_scope.
_METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
    "users.info": "users:read",
}


@dataclass(frozen=True)
class Call:
    """One Web API call as the stand-in received and answered it."""

    method: str
    params: Params  # query, form and JSON fields merged; JSON-string fields parsed; no token
    token: str | None
    at: float  # time.time() when it was answered
    status: int  # HTTP status of the answer
    answer: Answer  # the JSON body sent back

    @property
    def ok(self) -> bool:
        """True when Slack would have said `"ok": true`."""
        return bool(self.answer.get("ok"))


@dataclass(frozen=True)
class ResponseUrlPost:
    """One POST to a response_url handed out by `FakeSlack.new_response_url()`."""

    url: str
    body: Any  # the parsed JSON body, or the raw text when it was not JSON
    at: float


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None
    remaining: int
    # A timeout: answer only after this many seconds, the client having given up by then;
    # with ``acts`` the call takes effect first (Slack did it, its answer was lost).
    hang: float = 0.0
    acts: bool = False
    # Only calls whose parameters this accepts fail (None: every call of the method).
    where: Callable[[Params], bool] | None = None


class _Server(ThreadingHTTPServer):
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


class _Handler(BaseHTTPRequestHandler):
    """Routes `/api/<method>` and `/response/<id>` to the owning FakeSlack."""

    server: _Server

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


class FakeSlack:
    """The Slack Web API on 127.0.0.1, for a real `WebClient(base_url=fake.api_url)`.

    Use as a context manager (or call `start()` / `stop()`). Every method is thread-safe.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",  # noqa: S107 - a stand-in token, not a secret
        app_token: str = "xapp-test",  # noqa: S107 - a stand-in token, not a secret
        team_id: str = "T1",
        team: str = "Sandbox",
        team_url: str = "https://sandbox.slack.com/",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A1",
        trigger_ttl: float = 3.0,
        delays: dict[str, float] | None = None,
        scopes: Iterable[str] | None = DEFAULT_SCOPES,
    ) -> None:
        """Configure the workspace; nothing listens until `start()`.

        `scopes`: the bot token's scopes (see the module docstring); None: no scope header and
        no scope checks.
        """
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team = team
        self.team_url = team_url
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.trigger_ttl = trigger_ttl
        self._cond = threading.Condition()  # guards all state below; re-entrant
        self._scopes: tuple[str, ...] | None = None if scopes is None else tuple(scopes)
        self._delays: dict[str, float] = dict(delays or {})
        self._failures: dict[str, list[_Failure]] = {}
        self._calls: list[Call] = []
        self._responses: list[ResponseUrlPost] = []
        self._response_ids: set[str] = set()
        self._messages: dict[str, list[dict[str, Any]]] = {}  # channel -> posts in ts order
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._homes: dict[str, str] = {}  # user id -> the id of their published Home view
        self._triggers: dict[str, float] = {}  # trigger id -> monotonic time issued
        self._used_triggers: set[str] = set()
        self._usergroups: dict[str, list[str]] = {}
        self._users: dict[str, dict[str, Any]] = {}  # user id -> users.info fields set
        self._channels: dict[str, dict[str, Any]] = {}
        self._socket_mode_url: Callable[[], str] | None = None
        self._counter = itertools.count(1)
        self._last_ts = 0  # microseconds: the newest message ts handed out
        self._outage_until = 0.0  # monotonic time a whole outage ends (0: none)
        self._in_flight: dict[int, tuple[str, int]] = {}  # id -> (method, client port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[Params], Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "apps.connections.open": self._apps_connections_open,
        }

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port) in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/`."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def api_url(self) -> str:
        """The Web API base URL for `WebClient(base_url=...)`, with its trailing slash."""
        return self.base_url + "api/"

    # ------------------------------------------------------------- configuration

    def set_usergroup(self, group_id: str, user_ids: Iterable[str]) -> None:
        """Define (or replace) the members of a user group (S…)."""
        with self._cond:
            self._usergroups[group_id] = list(user_ids)

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Describe a user to ``users.info``: the fields given replace the default's (a full,
        active member of this workspace), e.g. ``is_restricted=True`` (a guest),
        ``deleted=True``, ``is_bot=True``, ``team_id="T2", is_stranger=True`` (Slack Connect),
        ``enterprise_user={...}``. ``fields`` None-valued are removed; ``set_user(id,
        missing=True)`` makes users.info answer ``user_not_found``."""
        with self._cond:
            self._users[user_id] = dict(fields)

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_member: bool = True,
        is_private: bool = False,
    ) -> None:
        """Make a channel known to `conversations.info`; `is_member` is whether the bot is in it."""
        with self._cond:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name or channel_id.lower(),
                "is_member": is_member,
                "is_private": is_private,
            }

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
        where: Callable[[Params], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with a failure instead of doing them.

        `status` defaults to 429 for "ratelimited" (with a `Retry-After: retry_after` header,
        as slack_sdk's RateLimitErrorRetryHandler expects) and to 200 with
        `{"ok": false, "error": error}` otherwise. Failed calls change nothing. With `where`,
        only calls whose parameters it accepts fail (say, a post in a thread, not a DM).
        """
        resolved = status if status is not None else (429 if error == "ratelimited" else 200)
        with self._cond:
            self._failures.setdefault(method, []).append(
                _Failure(
                    error, resolved, retry_after if resolved == 429 else None, times, where=where
                )
            )

    def time_out_next(self, method: str, seconds: float, *, acts: bool) -> None:
        """Let the next call of `method` time out: answer only after `seconds` (set it past
        the client's timeout), having done the call first when `acts` (Slack acted and its
        answer was lost) or not at all (the request never got through)."""
        with self._cond:
            failure = _Failure("timeout", HTTPStatus.GATEWAY_TIMEOUT, None, 1, seconds, acts)
            self._failures.setdefault(method, []).append(failure)

    def outage(self, seconds: float) -> None:
        """A whole outage from now for `seconds`: every Web API call and response_url post
        answers HTTP 503 and does nothing."""
        with self._cond:
            self._outage_until = time.monotonic() + seconds

    def in_outage(self) -> bool:
        with self._cond:
            return time.monotonic() < self._outage_until

    def in_flight(self, method: str | None = None) -> list[int]:
        """The client ports of the Web API calls (of `method`) being answered now."""
        with self._cond:
            return [p for m, p in self._in_flight.values() if method is None or m == method]

    @contextmanager
    def _tracking(self, method: str, client_address: Any) -> Iterator[None]:
        key = next(self._counter)
        with self._cond:
            self._in_flight[key] = (method, int(client_address[1]))
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                del self._in_flight[key]
                self._cond.notify_all()

    def set_scopes(self, scopes: Iterable[str] | None) -> None:
        """Grant the bot token these scopes from now on (None: no header, no scope checks)."""
        with self._cond:
            self._scopes = None if scopes is None else tuple(scopes)

    @property
    def scopes(self) -> tuple[str, ...] | None:
        """The bot token's scopes, as `X-OAuth-Scopes` reports them."""
        with self._cond:
            return self._scopes

    def set_delay(self, method: str, seconds: float) -> None:
        """Make every call of `method` take at least `seconds` (0 removes the delay)."""
        with self._cond:
            self._delays[method] = seconds

    def new_trigger_id(self) -> str:
        """Issue a trigger id, shaped as Slack's, usable once within `trigger_ttl` seconds."""
        with self._cond:
            trigger_id = f"{int(time.time() * 1000)}.{next(self._counter)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = time.monotonic()
            return trigger_id

    def new_response_url(self) -> str:
        """Issue a response_url served by this stand-in."""
        response_id = secrets.token_hex(12)
        with self._cond:
            self._response_ids.add(response_id)
        return f"{self.base_url}response/{response_id}"

    def attach_socket_mode(self, url_factory: Callable[[], str] | None) -> None:
        """Let `apps.connections.open` answer `url_factory()` (None detaches)."""
        with self._cond:
            self._socket_mode_url = url_factory

    @staticmethod
    def dm_channel(user_id: str) -> str:
        """The DM channel (D…) a post to `user_id` lands in."""
        return "D" + user_id[1:]

    # ---------------------------------------------------------------- observation

    @property
    def calls(self) -> list[Call]:
        """Every Web API call so far, oldest first."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method, oldest first."""
        with self._cond:
            return [call for call in self._calls if call.method == method]

    @property
    def responses(self) -> list[ResponseUrlPost]:
        """Every POST to a response_url so far, oldest first."""
        with self._cond:
            return list(self._responses)

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages as they are now (after chat.update), oldest first.

        Without `thread_ts`: the channel's top-level messages. With it: the replies in that
        thread (the parent excluded). A user ID (U…) reads its DM channel.
        """
        channel = self._resolve_channel(channel)
        with self._cond:
            posts = self._messages.get(channel, [])
            if thread_ts is None:
                found = [m for m in posts if m.get("thread_ts", m["ts"]) == m["ts"]]
            else:
                found = [
                    m for m in posts if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
                ]
            return copy.deepcopy(found)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """One message as it is now; KeyError when there is none."""
        with self._cond:
            found = self._find_message(self._resolve_channel(channel), ts)
            if found is None:
                raise KeyError(f"no message {ts} in {channel}")
            return copy.deepcopy(found)

    def ephemerals(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages sent with chat.postEphemeral (channel, user, text, blocks, ts)."""
        with self._cond:
            found = [e for e in self._ephemerals if channel in (None, e["channel"])]
            return copy.deepcopy(found)

    def home(self, user_id: str) -> dict[str, Any] | None:
        """The Home tab the app last published for ``user_id``, or None."""
        with self._cond:
            view_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def view(self, view_id: str) -> dict[str, Any]:
        """A modal as Slack holds it now (id, hash, blocks, ...); KeyError when unknown."""
        with self._cond:
            return copy.deepcopy(self._views[view_id])

    def transcript(self, channel: str) -> str:
        """The channel as a person would read it: messages, their blocks, thread replies."""
        lines: list[str] = []
        for parent in self.messages(channel):
            lines.extend(_render_message(parent, indent=""))
            for reply in self.messages(channel, parent["ts"]):
                lines.extend(_render_message(reply, indent="    "))
        return "\n".join(lines)

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = WAIT_TIMEOUT,
        what: str = "condition",
    ) -> T:
        """Block until `predicate()` is truthy (re-checked on every recorded call or post).

        Returns the predicate's value; raises TimeoutError naming `what` otherwise. The
        predicate runs under the stand-in's lock, so it may call `messages()`, `calls_to()`...
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"FakeSlack: no {what} within {timeout} s")
        return result

    def wait_for_call(
        self,
        method: str,
        *,
        where: Callable[[Params], bool] | None = None,
        timeout: float = WAIT_TIMEOUT,
    ) -> Call:
        """The first call of `method` (whose params satisfy `where`), waiting for it if needed."""

        def find() -> Call | None:
            for call in self._calls:
                if call.method == method and (where is None or where(call.params)):
                    return call
            return None

        return self.wait_for(find, timeout, what=f"{method} call")

    def wait_for_response(
        self, *, where: Callable[[Any], bool] | None = None, timeout: float = WAIT_TIMEOUT
    ) -> ResponseUrlPost:
        """The first response_url post (whose body satisfies `where`), waiting if needed."""

        def find() -> ResponseUrlPost | None:
            for post in self._responses:
                if where is None or where(post.body):
                    return post
            return None

        return self.wait_for(find, timeout, what="response_url post")

    # -------------------------------------------------------------------- serving

    def _answer_api(
        self, method: str, params: Params, token: str | None, parse_error: str | None
    ) -> tuple[int, dict[str, str], Answer]:
        with self._cond:
            delay = self._delays.get(method, 0.0)
            if time.monotonic() < self._outage_until:
                answer = _error("service_unavailable")
                self._calls.append(
                    Call(method, params, token, time.time(), HTTPStatus.SERVICE_UNAVAILABLE, answer)
                )
                self._cond.notify_all()
                return HTTPStatus.SERVICE_UNAVAILABLE, {}, answer
            late = self._take_failure(method, timeouts=True)
        if delay > 0:
            time.sleep(delay)  # simulated network/server latency, not a polling loop
        if late is not None:
            return self._answer_late(late, method, params, token, parse_error)
        return self._perform(method, params, token, parse_error)

    def _perform(
        self, method: str, params: Params, token: str | None, parse_error: str | None
    ) -> tuple[int, dict[str, str], Answer]:
        """Do one Web API call as Slack would (or fail it as scripted), and record it."""
        with self._cond:
            status, headers = 200, {}
            if self._scopes is not None and token in (self.bot_token, self.app_token):
                # As on Slack: every authenticated answer lists the token's scopes.
                headers["X-OAuth-Scopes"] = ",".join(self._granted(token))
            handler = self._methods.get(method)
            if handler is None:
                answer = _error("unknown_method")
            elif (auth_error := self._check_token(method, token)) is not None:
                answer = _error(auth_error)
            elif (needed := self._missing_scope(method, params, token)) is not None:
                headers["X-Accepted-OAuth-Scopes"] = needed
                answer = _error("missing_scope")
                answer |= {"needed": needed, "provided": ",".join(self._granted(token))}
            elif (failure := self._take_failure(method, params=params)) is not None:
                status, answer = failure.status, _error(failure.error)
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
            elif parse_error is not None:
                answer = _error(parse_error)
            else:
                answer = handler(params)
            self._calls.append(Call(method, params, token, time.time(), status, answer))
            self._cond.notify_all()
            return status, headers, answer

    def _answer_late(
        self, late: _Failure, method: str, params: Params, token: str | None, error: str | None
    ) -> tuple[int, dict[str, str], Answer]:
        """A timed-out call: done first when the timeout `acts`, answered after `late.hang`."""
        if late.acts:
            status, headers, answer = self._perform(method, params, token, error)
        else:
            status, headers, answer = late.status, {}, _error("timeout")
            with self._cond:
                self._calls.append(Call(method, params, token, time.time(), status, answer))
                self._cond.notify_all()
        time.sleep(late.hang)  # the late answer the client has stopped waiting for
        return status, headers, answer

    def _answer_response_url(self, path: str, body: bytes, content_type: str) -> tuple[int, str]:
        if self.in_outage():
            return HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable"
        response_id = path.removeprefix("/response/")
        text = body.decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        with self._cond:
            if response_id not in self._response_ids:
                return HTTPStatus.NOT_FOUND, "no_service"
            self._responses.append(ResponseUrlPost(self.base_url + path[1:], parsed, time.time()))
            self._cond.notify_all()
        return HTTPStatus.OK, "ok"

    def _take_failure(
        self, method: str, *, timeouts: bool = False, params: Params | None = None
    ) -> _Failure | None:
        """The next scripted failure of `method`, if it is a timeout (`timeouts`) or not, and
        (when it has a `where`) these `params` are ones it applies to."""
        queue = self._failures.get(method)
        if not queue or (queue[0].hang > 0) is not timeouts:
            return None
        if queue[0].where is not None and (params is None or not queue[0].where(params)):
            return None
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return failure

    def _granted(self, token: str | None) -> tuple[str, ...]:
        if token == self.app_token:
            return APP_TOKEN_SCOPES
        return self._scopes or ()

    def _missing_scope(self, method: str, params: Params, token: str | None) -> str | None:
        """The scope `method` needs that the token lacks, or None."""
        if self._scopes is None or token != self.bot_token:
            return None
        needed = _METHOD_SCOPES.get(method)
        if method == "conversations.info":
            channel = str(params.get("channel", ""))
            if channel.startswith("D"):
                return None  # DMs: not a call the bot makes; left unchecked as before
            private = self._channels.get(channel, {}).get("is_private", False)
            needed = "groups:read" if private else "channels:read"
        elif method == "conversations.history":
            channel = str(params.get("channel", ""))
            private = self._channels.get(channel, {}).get("is_private", False)
            needed = "im:history" if channel.startswith("D") else None
            needed = needed or ("groups:history" if private else "channels:history")
        if needed is None or needed in self._scopes:
            return None
        return needed

    def _check_token(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if token not in (self.bot_token, self.app_token):
            return "invalid_auth"
        needs_app_token = method == "apps.connections.open"
        if (token == self.app_token) != needs_app_token:
            return "not_allowed_token_type"
        return None

    # ------------------------------------------------------------ state helpers

    def _next_ts(self) -> str:
        # As on Slack: the time it was posted (so `oldest` / `latest` mean what they say), and
        # unique: a ts also names the message.
        micros = max(int(time.time() * 1_000_000), self._last_ts + _TS_STEP)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, channel: str) -> str:
        return self.dm_channel(channel) if channel[:1] in ("U", "W") else channel

    def _find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        for posted in self._messages.get(channel, []):
            if posted["ts"] == ts:
                return posted
        return None

    def _check_trigger(self, trigger_id: Any) -> str | None:
        issued = self._triggers.get(trigger_id) if isinstance(trigger_id, str) else None
        if issued is None:
            return "invalid_trigger_id"
        if trigger_id in self._used_triggers:
            return "exchanged_trigger_id"
        if time.monotonic() - issued > self.trigger_ttl:
            return "expired_trigger_id"
        self._used_triggers.add(trigger_id)
        return None

    def _store_view(self, view: Any, view_id: str, previous: dict[str, Any] | None) -> Answer:
        if not isinstance(view, dict):
            return _error("invalid_arguments")
        blocks = view.get("blocks", [])
        if problem := _block_problem(blocks, _MAX_VIEW_BLOCKS):
            return _error("invalid_arguments", messages=[problem])
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type", "modal"),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": _with_block_ids(blocks),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": previous.get("previous_view_id") if previous else None,
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self._views[view_id] = stored
        return {"ok": True, "view": copy.deepcopy(stored)}

    # ----------------------------------------------------------------- methods

    def _auth_test(self, params: Params) -> Answer:
        return {
            "ok": True,
            "url": self.team_url,
            "team": self.team,
            "user": "verify-email",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: Params) -> Answer:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        channel = self._resolve_channel(str(channel))
        text, blocks = params.get("text"), params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return _error("no_text")
        if len(text or "") > _MAX_MESSAGE_TEXT:
            return _error("msg_too_long")
        if blocks is not None and (problem := _block_problem(blocks, _MAX_MESSAGE_BLOCKS)):
            return _error("invalid_blocks", messages=[problem])
        if not self._channels.get(channel, {}).get("is_member", True):
            return _error("not_in_channel")
        ts = self._next_ts()
        posted: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text or "",
            "ts": ts,
        }
        if blocks is not None:
            posted["blocks"] = _with_block_ids(blocks)
        if params.get("attachments") is not None:
            posted["attachments"] = params["attachments"]
        if params.get("metadata") is not None:
            posted["metadata"] = params["metadata"]
        thread_ts = params.get("thread_ts")
        if thread_ts:
            posted["thread_ts"] = str(thread_ts)
            parent = self._find_message(channel, str(thread_ts))
            if parent is not None:
                posted["parent_user_id"] = parent["user"]
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
        self._messages.setdefault(channel, []).append(posted)
        return {"ok": True, "channel": channel, "ts": ts, "message": copy.deepcopy(posted)}

    def _chat_update(self, params: Params) -> Answer:
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        if not channel.startswith(("C", "G", "D")):
            return _error("channel_not_found")
        posted = self._find_message(channel, ts)
        if posted is None:
            return _error("message_not_found")
        blocks = params.get("blocks")
        if blocks is not None and (problem := _block_problem(blocks, _MAX_MESSAGE_BLOCKS)):
            return _error("invalid_blocks", messages=[problem])
        # As on Slack, fields left out keep their previous value; `blocks: []` removes blocks.
        if params.get("text") is not None:
            posted["text"] = params["text"]
        if blocks is not None:
            posted["blocks"] = _with_block_ids(blocks)
        if params.get("attachments") is not None:
            posted["attachments"] = params["attachments"]
        posted["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": posted["text"],
            "message": copy.deepcopy(posted),
        }

    def _chat_post_ephemeral(self, params: Params) -> Answer:
        channel, user = params.get("channel"), params.get("user")
        if not channel:
            return _error("channel_not_found")
        if not user:
            return _error("user_not_found")
        if not params.get("text") and not params.get("blocks"):
            return _error("no_text")
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": str(channel),
                "user": str(user),
                "text": params.get("text") or "",
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
                "ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, params: Params) -> Answer:
        channel, ts = str(params.get("channel", "")), str(params.get("message_ts", ""))
        posted = self._find_message(channel, ts)
        if posted is None:
            return _error("message_not_found")
        permalink = f"{self.team_url}archives/{channel}/p{ts.replace('.', '')}"
        if posted.get("thread_ts", ts) != ts:
            permalink += f"?thread_ts={posted['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _views_open(self, params: Params) -> Answer:
        if problem := self._check_trigger(params.get("trigger_id")):
            return _error(problem)
        return self._store_view(params.get("view"), f"V{next(self._counter):010d}", None)

    def _views_publish(self, params: Params) -> Answer:
        user_id = str(params.get("user_id", ""))
        view = params.get("view")
        if not user_id.startswith(("U", "W")):
            return _error("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            return _error("invalid_arguments")
        view_id = self._homes.get(user_id) or f"V{next(self._counter):010d}"
        answer = self._store_view(view, view_id, self._views.get(view_id))
        if answer.get("ok"):
            self._homes[user_id] = view_id
        return answer

    def _views_push(self, params: Params) -> Answer:
        return self._views_open(params)

    def _views_update(self, params: Params) -> Answer:
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            by_external = (
                v for v in self._views.values() if v["external_id"] == params["external_id"]
            )
            view_id = next((v["id"] for v in by_external), None)
        current = self._views.get(str(view_id)) if view_id else None
        if current is None:
            return _error("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            return _error("hash_conflict")
        return self._store_view(params.get("view"), current["id"], current)

    def _usergroups_users_list(self, params: Params) -> Answer:
        members = self._usergroups.get(str(params.get("usergroup", "")))
        if members is None:
            return _error("no_such_subteam")
        return {"ok": True, "users": list(members)}

    def _users_info(self, params: Params) -> Answer:
        """users.info: every U…/W… id is a full member of this workspace unless ``set_user``
        said otherwise; anything else is ``user_not_found``."""
        user_id = str(params.get("user", ""))
        fields = self._users.get(user_id, {})
        if not user_id.startswith(("U", "W")) or fields.get("missing"):
            return _error("user_not_found")
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": user_id.lower(),
            "deleted": False,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "profile": {"real_name": user_id, "display_name": user_id.lower()},
        }
        for name, value in fields.items():
            if value is None:
                user.pop(name, None)
            else:
                user[name] = value
        return {"ok": True, "user": user}

    def _conversations_info(self, params: Params) -> Answer:
        channel = str(params.get("channel", ""))
        if channel.startswith("D"):
            return {
                "ok": True,
                "channel": {"id": channel, "is_im": True, "user": "U" + channel[1:]},
            }
        known = self._channels.get(channel)
        if known is None:
            return _error("channel_not_found")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": known["name"],
                "is_channel": not known["is_private"],
                "is_group": known["is_private"],
                "is_im": False,
                "is_private": known["is_private"],
                "is_archived": False,
                "is_member": known["is_member"],
                "name_normalized": known["name"],
            },
        }

    def _conversations_history(self, params: Params) -> Answer:
        channel = str(params.get("channel", ""))
        if not channel.startswith(("C", "G", "D")):
            return _error("channel_not_found")
        if not self._channels.get(channel, {}).get("is_member", True):
            return _error("not_in_channel")
        try:
            limit = int(params.get("limit") or 100)
        except (TypeError, ValueError):
            return _error("invalid_limit")
        limit = max(1, min(limit, 999))
        inclusive = _truthy(params.get("inclusive"))
        metadata = _truthy(params.get("include_all_metadata"))
        oldest, latest = _ts_bound(params.get("oldest")), _ts_bound(params.get("latest"))
        newest_first = sorted(
            (m for m in self._messages.get(channel, []) if m.get("thread_ts", m["ts"]) == m["ts"]),
            key=lambda m: _ts_bound(m["ts"]) or 0.0,
            reverse=True,
        )

        def within(ts: float) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return latest is None or ts < latest or (ts == latest and inclusive)

        found = [m for m in newest_first if within(_ts_bound(m["ts"]) or 0.0)]
        cursor = params.get("cursor")
        if cursor:
            try:
                start = (
                    base64.b64decode(str(cursor), validate=True).decode().removeprefix("next_ts:")
                )
            except (binascii.Error, UnicodeDecodeError):
                return _error("invalid_cursor")
            found = [m for m in found if m["ts"] <= start]
        page, rest = found[:limit], found[limit:]
        messages = []
        for posted in page:
            shown = copy.deepcopy(posted)
            if not metadata:
                shown.pop("metadata", None)
            messages.append(shown)
        answer: Answer = {
            "ok": True,
            "messages": messages,
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if rest:
            next_cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": next_cursor}
        return answer

    def _apps_connections_open(self, params: Params) -> Answer:
        if self._socket_mode_url is None:
            return _error("internal_error")  # the stand-in's own answer: no FakeSocketMode
        return {"ok": True, "url": self._socket_mode_url()}


# ------------------------------------------------------------------------ helpers


def _error(code: str, messages: list[str] | None = None) -> Answer:
    answer: Answer = {"ok": False, "error": code}
    if messages:
        answer["response_metadata"] = {"messages": messages}
    return answer


def _truthy(value: Any) -> bool:
    """A boolean argument as Slack reads one: true, 1 (as sent in a form or query)."""
    return str(value).lower() in ("1", "true")


def _ts_bound(value: Any) -> float | None:
    """A message ts (or an oldest / latest bound) as a number; None when absent or not one."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


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


def _with_block_ids(blocks: Any) -> Any:
    """Copy `blocks`, giving a block_id to blocks without one, as Slack does (one no other
    block of theirs has)."""
    if not isinstance(blocks, list):
        return blocks
    result = copy.deepcopy(blocks)
    taken = {b["block_id"] for b in result if isinstance(b, dict) and "block_id" in b}
    for block in result:
        if isinstance(block, dict) and "block_id" not in block:
            block_id = secrets.token_urlsafe(3)
            while block_id in taken:
                block_id = secrets.token_urlsafe(3)
            taken.add(block_id)
            block["block_id"] = block_id
    return result


def _block_problem(blocks: Any, max_blocks: int) -> str | None:
    """The first Block Kit limit `blocks` breaks, worded like Slack's, or None."""
    if not isinstance(blocks, list):
        return "[ERROR] must be an array [json-pointer:/blocks]"
    if len(blocks) > max_blocks:
        return f"[ERROR] no more than {max_blocks} items allowed [json-pointer:/blocks]"
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            return f"[ERROR] missing required field: type [json-pointer:/blocks/{i}]"
        if "block_id" in block:
            block_id = block["block_id"]
            if not isinstance(block_id, str) or not 0 < len(block_id) <= _MAX_BLOCK_ID:
                return (
                    f"[ERROR] must be a string of 1 to {_MAX_BLOCK_ID} characters "
                    f"[json-pointer:/blocks/{i}/block_id]"
                )
            if block_id in seen:
                return (
                    f"[ERROR] duplicate block_id {block_id!r} [json-pointer:/blocks/{i}/block_id]"
                )
            seen.add(block_id)
        text = (block.get("text") or {}).get("text", "") if block["type"] == "section" else ""
        if len(text) > _MAX_SECTION_TEXT:
            return (
                f"[ERROR] must be less than {_MAX_SECTION_TEXT + 1} characters "
                f"[json-pointer:/blocks/{i}/text/text]"
            )
        for j, element in enumerate(block.get("elements") or []):
            if isinstance(element, dict) and len(str(element.get("value", ""))) > _MAX_BUTTON_VALUE:
                return (
                    f"[ERROR] must be less than {_MAX_BUTTON_VALUE + 1} characters "
                    f"[json-pointer:/blocks/{i}/elements/{j}/value]"
                )
    return None


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _render_block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind in ("section", "header"):
        lines = [_text_of(block.get("text"))] if block.get("text") else []
        lines += [_text_of(field) for field in block.get("fields") or []]
        return lines
    if kind == "context":
        return [" · ".join(_text_of(e) or str(e.get("alt_text", "")) for e in block["elements"])]
    if kind == "actions":
        return ["  ".join(f"[{_text_of(e.get('text'))}]" for e in block.get("elements", []))]
    if kind == "divider":
        return ["----"]
    return [f"<{kind} block>"]


def _render_message(posted: dict[str, Any], indent: str) -> list[str]:
    body: list[str] = []
    for block in posted.get("blocks") or []:
        body.extend(_render_block(block))
    if not body:
        body = [str(posted.get("text", ""))]
    edited = " (edited)" if "edited" in posted else ""
    head = f"{indent}[{posted['ts']}] <@{posted.get('user', '?')}>{edited}"
    lines = [head]
    for chunk in body:
        lines.extend(f"{indent}  {line}" for line in chunk.splitlines() or [""])
    return lines
