"""Shared fixtures: a whole workspace (the real bot on loopback, wired to the stand-ins), and a
fresh database on each store backend (SQLite and PostgreSQL; the session starts a throwaway
PostgreSQL server itself unless one is named, see tests/backends.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

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

from bot.standins.world import World


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
