"""The real bot, in this process, wired to the stand-ins: a whole workspace on loopback.

``World`` starts FakeSlack and FakeProvider, builds the bot's real Settings, services and Bolt
app pointing at them, and serves it over real HTTP (waitress) or Socket Mode. Its ``driver``
plays the people. The end-to-end tests and the offline sandbox both stand on it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Self, TypeVar

from bot.services import Services, build_services
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.server import HttpServer, SocketModeServer, WsgiApp
from bot.standins.driver import Driver, HttpTransport, SocketModeTransport, Transport
from bot.standins.provider import FakeProvider
from bot.standins.slack import FakeSlack

T = TypeVar("T")

CHANNEL = "C0APPROVALS"
APPROVER = "U0APPROVER"
SECOND_APPROVER = "U0APPROVER2"
REQUESTER = "U0REQUESTER"
OUTSIDER = "U0OUTSIDER"
APPROVER_GROUP = "S0APPROVERS"
REQUESTER_GROUP = "S0SUPPORT"
BOT_TOKEN = "xoxb-sandbox-bot-token"
APP_TOKEN = "xapp-sandbox-app-token"
SIGNING_SECRET = "sandbox-signing-secret"
PROVIDER_KEY = "sandbox-provider-key"


class World:
    """One workspace: the stand-ins, the bot wired to them, and a driver for its people.

    Defaults: APPROVERS is the group S0APPROVERS (U0APPROVER and U0APPROVER2), REQUESTERS the
    group S0SUPPORT (U0REQUESTER); ``settings`` overrides any setting by its contract name.
    """

    def __init__(
        self,
        *,
        socket_mode: bool = False,
        database_path: str | os.PathLike[str] | None = None,
        settings: dict[str, Any] | None = None,
        maintenance: bool = False,
        runner: bool = False,
    ) -> None:
        self.socket_mode = socket_mode
        # Tests run maintenance rounds themselves (services.maintenance.run_once()), so they
        # decide when a sweep happens; the loop can be started for a more lifelike run.
        self._maintenance = maintenance
        # Bulk requests' runners: started with the bot when asked; otherwise a test runs them
        # itself (services.runner.drain()).
        self._runner = runner
        self.slack = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        self.provider = FakeProvider(PROVIDER_KEY)
        self.socket: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if database_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="verify-email-")
            database_path = Path(self._tmp.name) / "bot.db"
        self.database_path = Path(database_path)
        self._overrides = dict(settings or {})
        self._settings: Settings | None = None
        self._services: Services | None = None
        self._server: HttpServer | SocketModeServer | None = None
        self.url = ""
        self._driver: Driver | None = None

    # While the world runs (between start and stop) these are always there.

    @property
    def settings(self) -> Settings:
        """The bot's settings, as built by ``start()``."""
        return _started(self._settings, "settings")

    @property
    def services(self) -> Services:
        """The running bot's services (store, provider client, ...)."""
        return _started(self._services, "services")

    @property
    def driver(self) -> Driver:
        """The people, talking to the running bot."""
        return _started(self._driver, "driver")

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.slack.start()
        self.slack.add_channel(CHANNEL, name="email-approvals")
        self.slack.set_usergroup(APPROVER_GROUP, [APPROVER, SECOND_APPROVER])
        self.slack.set_usergroup(REQUESTER_GROUP, [REQUESTER])
        self.provider.start()
        values: dict[str, Any] = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_APP_TOKEN": None,
            "SLACK_API_URL": self.slack.api_url,
            "HOSTUP_API_KEY": PROVIDER_KEY,
            "HOSTUP_API_URL": self.provider.url,
            "HOSTUP_TIMEOUT": 5,
            "APPROVERS": APPROVER_GROUP,
            "REQUESTERS": REQUESTER_GROUP,
            "APPROVAL_CHANNEL": CHANNEL,
            "ALLOW_SELF_APPROVAL": False,
            "REQUEST_TTL": 86400,
            "DATABASE_URL": f"sqlite:///{self.database_path.resolve()}",
            "PORT": 3000,
        }
        if self.socket_mode:
            from bot.standins.socket_mode import FakeSocketMode

            values["SLACK_APP_TOKEN"] = APP_TOKEN
            self.socket = FakeSocketMode(self.slack).start()
        values.update(self._overrides)
        # Every setting is given, and no .env is read: a developer's own settings never leak in.
        self._settings = Settings(_env_file=None, **values)
        self._start_bot()

    def _start_bot(self) -> None:
        self._services = build_services(self.settings)
        app = create_app(self.settings, self._services.slack_deps())
        if self._maintenance:
            self._services.maintenance.start()
        if self._runner:
            self._services.runner.start()
        transport: Transport
        if self.socket_mode:
            self._server = SocketModeServer(app, APP_TOKEN).start()
            self.socket.wait_connected()
            transport = SocketModeTransport(self.socket)
        else:
            services = self._services
            secret = self.settings.SLACK_SIGNING_SECRET
            wsgi = WsgiApp(
                app,
                services.healthy,
                services.ready,
                services.metrics.serve,
                signing_secret=secret.get_secret_value() if secret else None,
            )
            self._server = HttpServer(wsgi, "127.0.0.1", 0).start()
            self.url = self._server.url
            transport = HttpTransport(f"{self.url}/slack/events", SIGNING_SECRET)
        self._driver = Driver(self.slack, transport, CHANNEL)

    def restart_bot(self) -> None:
        """Stop the bot and start a new one on the same store, as a redeploy does; the
        stand-ins (and what Slack holds) stay."""
        self._stop_bot()
        self._start_bot()

    def _stop_bot(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._services is not None:
            self._services.close()
            self._services = None

    def stop(self) -> None:
        # The bot first (it talks to the stand-ins), then the stand-ins, then the files.
        self._stop_bot()
        if self.socket is not None:
            self.socket.stop()
            self.socket = None
        self.provider.stop()
        self.slack.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _started(value: T | None, what: str) -> T:
    if value is None:
        raise RuntimeError(f"World.{what} is there only while the world runs: start() it first")
    return value
