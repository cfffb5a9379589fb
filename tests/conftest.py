"""Shared fixtures: a whole workspace (the real bot on loopback, wired to the stand-ins), and a
fresh database on each store backend (SQLite and PostgreSQL; the session starts a throwaway
PostgreSQL server itself unless one is named, see tests/backends.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from backends import (
    BACKENDS,
    EmbeddedPostgresError,
    PostgresServer,
    embedded_postgres_server,
    in_ci,
    missing_postgres_reason,
    postgres_url_from_env,
    sqlite_url,
)
from provider_client import KEY, MakeClient
from slack_payloads import APP_TOKEN, BOT_TOKEN
from stores import Told

from bot.provider.client import HostupClient
from bot.standins.provider import FakeProvider
from bot.standins.slack import FakeSlack
from bot.standins.world import World
from bot.store import BaseSQLStore, SQLiteStore, open_store


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """slack_sdk honours HTTP(S)_PROXY even for 127.0.0.1; the tests talk to loopback only."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def world(database_url, tmp_path):
    """The real bot in this process on loopback, wired to the stand-ins; once per store backend."""
    with World(database_path=tmp_path / "unused.db", settings={"DATABASE_URL": database_url}) as w:
        yield w


# ---------------------------------------------------------------------------------------------
# Store backends


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server TEST_DATABASE_URL_POSTGRES names or, when it is unset, a
    throwaway one this session starts (embedded-postgres) and removes at the end. Skips the
    test when neither is possible, but fails it under CI=true (CI runs every backend)."""
    with ExitStack() as stack:
        url = postgres_url_from_env()
        if url is None:
            try:
                url = stack.enter_context(embedded_postgres_server())
            except EmbeddedPostgresError as exc:
                reason = missing_postgres_reason(str(exc))
                if in_ci():
                    pytest.fail(f"CI=true but {reason}", pytrace=False)
                pytest.skip(reason)
        server = PostgresServer(url)
        stack.callback(server.close)
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test's own (dropped afterwards)."""
    with postgres_server.fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DATABASE_URL naming a fresh, empty database; the test runs once per store backend.

    ``sqlite``: ``sqlite:////…/db/bot.db`` in the test's tmp_path. ``postgres``: a database of
    the test's own on the session's server (see postgres_server), dropped after the test.
    Test ids end in ``[sqlite]`` or ``[postgres]``, so ``-k postgres`` picks one backend.
    Use it as the bot's setting, e.g. ``World(settings={"DATABASE_URL": database_url})``, or
    with ``bot.store.open_store``.
    """
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    directory = tmp_path / "db"
    directory.mkdir(exist_ok=True)
    return sqlite_url(directory / "bot.db")


# ---------------------------------------------------------------------------------------------
# The SQL store under test (tests/integration/test_store_*.py; their helpers: tests/stores.py)


@pytest.fixture
def store(database_url: str) -> Iterator[BaseSQLStore]:
    """The store under test, on each backend, queueing what its Told table says."""
    s = open_store(database_url, announce=Told())
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    """For what only SQLite has (files, PRAGMAs, its write lock)."""
    s = SQLiteStore(db_path, announce=Told())
    try:
        yield s
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# The provider client under test (tests/integration/test_hostup_*.py; their helpers:
# tests/provider_client.py)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """The stand-in provider on loopback, expecting the helpers' KEY."""
    with FakeProvider(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    """The waits a client made with make_client asked for, in order (it does not sleep)."""
    return []


@pytest.fixture
def make_client(provider: FakeProvider, sleeps: list[float]) -> Iterator[MakeClient]:
    """Makes clients of ``provider`` (or ``url``) with KEY and a short timeout, recording their
    sleeps; closes them after the test."""
    clients: list[HostupClient] = []

    def make(
        url: str | None = None, *, key: str = KEY, timeout: float = 0.3, **kwargs: Any
    ) -> HostupClient:
        client = HostupClient(
            url or provider.url,
            key,
            timeout,
            sleep=sleeps.append,
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# ---------------------------------------------------------------------------------------------
# The Slack stand-in alone (tests/integration/test_standins_*.py; their payloads:
# tests/slack_payloads.py)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A running FakeSlack with the stand-in tests' bot and app tokens."""
    with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as running:
        yield running
