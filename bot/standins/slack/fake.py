"""`FakeSlack`: the stand-in Slack Web API as one object, put together from its parts (the state
in `state`, the method families in `chat`, `views`, `conversations`, `directory`, `files` and
`functions`, tokens and scopes in `auth`, failure injection in `faults`, what was recorded in
`records`, the HTTP side in `server`). This module starts and stops the server and answers each
call: an outage, a scripted failure or timeout, the token and scope checks, then the method
itself, recorded."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from functools import cached_property
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from bot.standins.slack.auth import Tokens
from bot.standins.slack.chat import ChatMethods
from bot.standins.slack.conversations import ConversationMethods
from bot.standins.slack.directory import DirectoryMethods
from bot.standins.slack.faults import Faults
from bot.standins.slack.files import FileMethods
from bot.standins.slack.functions import FunctionMethods
from bot.standins.slack.records import Records
from bot.standins.slack.server import Handler, Server
from bot.standins.slack.state import Answer, Call, Failure, Params, ResponseUrlPost, error_answer
from bot.standins.slack.views import ViewMethods


class FakeSlack(
    Records,
    FileMethods,
    FunctionMethods,
    Faults,
    Tokens,
    ChatMethods,
    ViewMethods,
    DirectoryMethods,
    ConversationMethods,
):
    """The Slack Web API on 127.0.0.1, for a real `WebClient(base_url=fake.api_url)`.

    Use as a context manager (or call `start()` / `stop()`). Every method is thread-safe.
    Its arguments (tokens, team, trigger_ttl, delays, scopes) are `state.Workspace`'s.
    """

    @cached_property
    def _methods(self) -> dict[str, Callable[[Params], Answer]]:
        """The Web API methods the stand-in answers, by name."""
        return {
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
            "files.info": self._files_info,
        }

    @cached_property
    def _methods_with_token(self) -> dict[str, Callable[[Params, str | None], Answer]]:
        """The methods whose answer depends on which token called them, by name."""
        return {
            "functions.completeSuccess": self._functions_complete_success,
            "functions.completeError": self._functions_complete_error,
        }

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port) in a daemon thread."""
        if self._server is not None:
            return self
        server = Server(("127.0.0.1", 0), Handler)
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

    def new_response_url(self) -> str:
        """Issue a response_url served by this stand-in."""
        response_id = secrets.token_hex(12)
        with self._cond:
            self._response_ids.add(response_id)
        return f"{self.base_url}response/{response_id}"

    def _answer_api(
        self, method: str, params: Params, token: str | None, parse_error: str | None
    ) -> tuple[int, dict[str, str], Answer]:
        with self._cond:
            delay = self._delays.get(method, 0.0)
            if time.monotonic() < self._outage_until:
                answer = error_answer("service_unavailable")
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
            if self._scopes is not None and (token == self.app_token or self._is_bot(token)):
                # As on Slack: every authenticated answer lists the token's scopes.
                headers["X-OAuth-Scopes"] = ",".join(self._granted(token))
            handler = self._methods.get(method)
            with_token = self._methods_with_token.get(method)
            if handler is None and with_token is None:
                answer = error_answer("unknown_method")
            elif (auth_error := self._check_token(method, token)) is not None:
                answer = error_answer(auth_error)
            elif (needed := self._missing_scope(method, params, token)) is not None:
                headers["X-Accepted-OAuth-Scopes"] = needed
                answer = error_answer("missing_scope")
                answer |= {"needed": needed, "provided": ",".join(self._granted(token))}
            elif (failure := self._take_failure(method, params=params)) is not None:
                status, answer = failure.status, error_answer(failure.error)
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
            elif parse_error is not None:
                answer = error_answer(parse_error)
            elif with_token is not None:
                answer = with_token(params, token)
            else:
                assert handler is not None  # one of the two, checked above
                answer = handler(params)
            self._calls.append(Call(method, params, token, time.time(), status, answer))
            self._cond.notify_all()
            return status, headers, answer

    def _answer_late(
        self, late: Failure, method: str, params: Params, token: str | None, error: str | None
    ) -> tuple[int, dict[str, str], Answer]:
        """A timed-out call: done first when the timeout `acts`, answered after `late.hang`."""
        if late.acts:
            status, headers, answer = self._perform(method, params, token, error)
        else:
            status, headers, answer = late.status, {}, error_answer("timeout")
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
