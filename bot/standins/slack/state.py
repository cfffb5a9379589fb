"""What the stand-in Slack holds: the workspace it plays (tokens, team, bot) and all the state
the Web API methods read and change, guarded by one re-entrant condition; and the records it
keeps (`Call`, `ResponseUrlPost`) and the failures scripted into it.

`Workspace` is the base of every part of `FakeSlack`: the method families, the faults, the
token checks and the records are mixins over it, each in its own module.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.slack.manifest import BOT_SCOPES
from bot.standins.slack.server import Server

Params = dict[str, Any]
Answer = dict[str, Any]
# How long a step run's token lives unless the run completes first: 15 minutes, as a Slack
# maintainer described it (slackapi/bolt-python#1075); Slack's reference does not say.
FUNCTION_TOKEN_TTL = 15 * 60.0
_TS_STEP = 100  # microseconds between two message ts at least (they are unique, increasing)


# The bot token's scopes unless told otherwise: what the app's manifest asks for.
DEFAULT_SCOPES: tuple[str, ...] = tuple(BOT_SCOPES)


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
class Download:
    """One request for a file's url_private or url_private_download, as answered."""

    path: str  # /files-pri/<team>-<file id>/[download/]<name>
    token: str | None  # from the Authorization: Bearer header
    at: float  # time.time() when it was answered
    status: int  # HTTP status of the answer


@dataclass(frozen=True)
class ResponseUrlPost:
    """One POST to a response_url handed out by `FakeSlack.new_response_url()`."""

    url: str
    body: Any  # the parsed JSON body, or the raw text when it was not JSON
    at: float


@dataclass(frozen=True)
class Completion:
    """One accepted `functions.completeSuccess` / `functions.completeError` of a step run."""

    execution_id: str
    outputs: dict[str, Any] | None  # completeSuccess: the outputs; completeError: None
    error: str | None  # completeError: the message Slack shows; completeSuccess: None
    token: str  # the token it was called with (the function's, or the app's bot token)
    at: float  # time.time() when it was accepted

    @property
    def ok(self) -> bool:
        """True for completeSuccess, False for completeError."""
        return self.error is None


@dataclass
class FunctionExecution:
    """One run of a custom step (`run_function`), as Slack keeps it."""

    execution_id: str  # Fx…: the event's function_execution_id
    workflow_execution_id: str  # Wx…
    callback_id: str
    inputs: dict[str, Any]
    token: str  # xwfp-…: the event's bot_access_token, good for this run only
    issued: float  # time.monotonic() when the token was issued
    workflow: str | None  # the workflow's name (not in the event: Slack does not send it)
    user: str | None  # who the workflow ran for (not in the event either)
    completion: Completion | None = None
    token_expired: bool = False  # forced by expire_function_token()

    @property
    def running(self) -> bool:
        return self.completion is None


@dataclass
class Failure:
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


def error_answer(code: str, messages: list[str] | None = None) -> Answer:
    answer: Answer = {"ok": False, "error": code}
    if messages:
        answer["response_metadata"] = {"messages": messages}
    return answer


class Workspace:
    """The workspace's configuration and the stand-in's state; see `FakeSlack`, which is
    constructed with this `__init__`'s arguments."""

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
        function_token_ttl: float = FUNCTION_TOKEN_TTL,
    ) -> None:
        """Configure the workspace; nothing listens until `start()`.

        `scopes`: the bot token's scopes (see the package's docstring); None: no scope header and
        no scope checks. `function_token_ttl`: seconds a step run's token (`bot_access_token`)
        stays good while the run is not completed (see `functions`).
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
        self.function_token_ttl = function_token_ttl
        self._cond = threading.Condition()  # guards all state below; re-entrant
        self._scopes: tuple[str, ...] | None = None if scopes is None else tuple(scopes)
        self._delays: dict[str, float] = dict(delays or {})
        self._failures: dict[str, list[Failure]] = {}
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
        self._files: dict[str, dict[str, Any]] = {}  # file id -> its file object
        self._file_bytes: dict[str, bytes] = {}  # file id -> what its url_private serves
        self._deleted_files: set[str] = set()
        self._downloads: list[Download] = []
        self._download_refusal = "status"  # or "login_page": see files.set_download_refusal
        self._functions: dict[str, dict[str, Any]] = {}  # callback_id -> its definition
        self._executions: dict[str, FunctionExecution] = {}  # execution id -> the run
        self._function_tokens: dict[str, str] = {}  # xwfp token -> execution id
        self._bot_token_completes = True  # see functions.FunctionMethods.let_bot_token_complete
        self._completed_error = "execution_not_in_running_state"  # a run completed twice
        self._socket_mode_url: Callable[[], str] | None = None
        self._counter = itertools.count(1)
        self._last_ts = 0  # microseconds: the newest message ts handed out
        self._outage_until = 0.0  # monotonic time a whole outage ends (0: none)
        self._in_flight: dict[int, tuple[str, int]] = {}  # id -> (method, client port)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def dm_channel(user_id: str) -> str:
        """The DM channel (D…) a post to `user_id` lands in."""
        return "D" + user_id[1:]

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
