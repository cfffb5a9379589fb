"""Opening the store and its errors: open_store and DATABASE_URL (relative and absolute
SQLite paths, PostgreSQL schemes, garbage refused without echoing it), PostgreSQL errors
named without the password, ping, close, and an unusable location."""

from __future__ import annotations

import socket
import sqlite3
import sys
from pathlib import Path

import pytest
from backends import PostgresServer, sqlite_url, url_with_database
from stores import T0, Told, approve, make_request

from bot.store import (
    BaseSQLStore,
    SQLiteStore,
    StoreConfigError,
    StoreError,
    open_store,
    sqlite_path_from_url,
)

# ---------------------------------------------------------------------------------------------
# open_store and DATABASE_URL


def test_open_store_relative_url_is_relative_to_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///data/bot.db opens data/bot.db under the current directory."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///data/bot.db", announce=Told()) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "data" / "bot.db"
        store.create(make_request(), actor="U_REQ")
    assert (tmp_path / "data" / "bot.db").is_file()


def test_open_store_absolute_url(tmp_path: Path) -> None:
    """sqlite:////abs/path.db (four slashes) opens the absolute path."""
    path = tmp_path / "abs.db"
    url = sqlite_url(path)
    assert url.startswith("sqlite:////")
    with open_store(url, announce=Told()) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == path
    assert path.is_file()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_open_store_postgres_urls_open_a_postgres_store(
    postgres_server: PostgresServer, scheme: str
) -> None:
    """postgresql://, postgres:// (and SQLAlchemy's postgresql+psycopg://) all open the
    PostgreSQL store."""
    from bot.store.postgres import PostgresStore

    with postgres_server.fresh_database() as url:
        url = scheme + url[url.index("://") :]
        with open_store(url, announce=Told()) as store:
            assert isinstance(store, PostgresStore)
            store.ping()


def test_open_store_postgres_without_the_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without psycopg installed, a PostgreSQL URL gets StoreConfigError naming the postgres
    extra, and the password is not repeated."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "bot.store.postgres", raising=False)
    with pytest.raises(StoreConfigError, match=r"verify-email-bot\[postgres\]") as info:
        open_store("postgresql://bot:s3cr3t-pw@db.internal:5432/bot", announce=Told())
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "bot.db",
        "s3cr3t-pw",
        "mysql://root:s3cr3t-pw@localhost/bot",
        "user:s3cr3t-pw@host/db",
        "sqlite://s3cr3t-pw@host/bot.db",
        "sqlite://bot.db",
        "sqlite:///",
        "sqlite:////tmp/",
        "sqlite:///:memory:",
        "sqlite:///bot.db?password=s3cr3t-pw",
        "sqlite:///file:s3cr3t-pw?mode=ro",
        "http://example.com/s3cr3t-pw",
    ],
)
def test_open_store_garbage_raises_config_error_without_echoing(url: str) -> None:
    """A URL the bot cannot use raises StoreConfigError naming DATABASE_URL, without repeating
    any of the URL (it may hold a password)."""
    with pytest.raises(StoreConfigError) as info:
        open_store(url, announce=Told())
    message = str(info.value)
    assert "DATABASE_URL" in message
    assert "s3cr3t-pw" not in message
    assert "host" not in message and "root" not in message


def test_sqlite_path_from_url_refuses_a_postgres_url() -> None:
    """Asking for the SQLite file of a PostgreSQL URL is a StoreConfigError without the
    password."""
    with pytest.raises(StoreConfigError, match="PostgreSQL") as info:
        sqlite_path_from_url("postgresql://bot:s3cr3t-pw@db.internal/bot")
    assert "s3cr3t-pw" not in str(info.value)


def test_store_config_error_is_a_store_error() -> None:
    """Start-up code can catch StoreError for both a bad URL and an unopenable file."""
    assert issubclass(StoreConfigError, StoreError)


# ---------------------------------------------------------------------------------------------
# PostgreSQL errors: named, without the password


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when this returns


def test_postgres_connection_refused_names_host_and_database_not_password() -> None:
    """No server listening: StoreError naming the host, port and database, never the
    password (not even in the exception chain)."""
    port = _closed_port()
    url = f"postgresql://bot:s3cr3t-pw@127.0.0.1:{port}/somedb"
    with pytest.raises(StoreError) as info:
        open_store(url, announce=Told())
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "somedb" in message
    assert "s3cr3t-pw" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_postgres_wrong_password_and_unknown_database_are_store_errors(
    postgres_server: PostgresServer,
) -> None:
    """A refused login and a database that does not exist give StoreError naming the host and
    database (and saying what went wrong), never the password."""
    from urllib.parse import urlencode

    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(postgres_server.url)
    # The server may be on TCP (host:port) or a Unix socket (its directory, port 5432).
    port = params.get("port") or "5432"
    host = f"{params['host']}:{port}"
    where = urlencode({"host": params["host"], "port": port})
    wrong = f"postgresql://{params['user']}:Wr0ng-pa55@/nosuchdb_here?{where}"
    with pytest.raises(StoreError) as info:
        open_store(wrong, announce=Told())
    assert host in str(info.value) and "nosuchdb_here" in str(info.value)
    assert "password authentication failed" in str(info.value)
    assert "Wr0ng-pa55" not in str(info.value)

    missing = url_with_database(postgres_server.url, "nosuchdb_here")
    with pytest.raises(StoreError) as info:
        open_store(missing, announce=Told())
    assert "nosuchdb_here" in str(info.value) and "does not exist" in str(info.value)
    assert f":{params['password']}@" not in str(info.value)  # the URL is never repeated


def test_postgres_server_going_away_gives_store_error_and_recovers(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """When the store's connections are killed (a server restart, a failover), the next
    operation reconnects (connections are checked before use); with the pool unable to
    connect at all, operations raise StoreError naming the database rather than hanging."""
    from psycopg.conninfo import conninfo_to_dict

    from bot.store.postgres import PostgresStore

    with PostgresStore(postgres_url, pool_timeout=2) as store:
        request = store.create(make_request(), actor="U")
        dbname = str(conninfo_to_dict(postgres_url)["dbname"])
        postgres_server.execute(
            postgres_server.url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        )
        assert store.get(request.id) == request
        store.ping()

        # Now the database refuses every connection: a bounded wait, then StoreError.
        postgres_server.execute(
            postgres_server.url, f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false'
        )
        try:
            postgres_server.execute(
                postgres_server.url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )
            with pytest.raises(StoreError, match=dbname) as info:
                store.get(request.id)
            assert "no connection within 2 s" in str(info.value)
        finally:
            postgres_server.execute(
                postgres_server.url, f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true'
            )


# ---------------------------------------------------------------------------------------------
# ping, close and errors


def test_ping_succeeds_on_a_healthy_store_and_writes_nothing(store: BaseSQLStore) -> None:
    """ping on a writable store returns None and leaves the data as it was."""
    request = store.create(make_request(), actor="U_REQ")
    store.ping()  # raises StoreError when it fails
    assert store.list_requests() == [request]
    assert store.outbox_entries() == []


def test_unwritable_location_raises_store_error_naming_the_path(tmp_path: Path) -> None:
    """A database whose parent is a regular file (root ignores chmod, so this is how a test
    makes a location unusable) raises StoreError naming the path, not a sqlite3 error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    url = f"sqlite:///{blocker}/bot.db"
    with pytest.raises(StoreError, match="not-a-dir/bot.db") as info:
        open_store(url, announce=Told()).ping()
    assert not isinstance(info.value, StoreConfigError)
    with pytest.raises(StoreError, match="missing-dir"):
        SQLiteStore(tmp_path / "missing-dir" / "bot.db")


def test_ping_answers_busy_while_another_process_holds_the_write_lock(
    db_path: Path,
) -> None:
    """While another process holds the write lock, ping answers at once (the database is
    there and being written: busy, not down) where writes raise StoreError saying it is
    locked once busy_timeout runs out; the store works again once it is released."""
    with SQLiteStore(db_path, busy_timeout_ms=50) as store:
        request = store.create(make_request(), actor="U_REQ")
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            store.ping()
            with pytest.raises(StoreError, match="locked"):
                approve(store, request.id)
            # Reads are not blocked by a writer in WAL mode.
            assert store.get(request.id) == request
            other.execute("ROLLBACK")
        finally:
            other.close()
        store.ping()
        assert approve(store, request.id) is not None


def test_closed_store_raises_store_error_and_close_is_idempotent(database_url: str) -> None:
    """After close, ping and every operation raise StoreError; closing twice is harmless."""
    store = open_store(database_url, announce=Told())
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.ping()
    with pytest.raises(StoreError, match="closed"):
        store.get("x")
    with pytest.raises(StoreError, match="closed"):
        store.claim_outbox(now=T0, owner="o", lease_seconds=1)
