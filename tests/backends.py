"""Fresh, empty databases for tests, on each backend the store supports (see tests/conftest.py).

PostgreSQL tests need a server: TEST_DATABASE_URL_POSTGRES names a database on it as a role
that may create databases (``CREATEDB``); each test gets a database of its own, created from
``template0`` and dropped (``WITH (FORCE)``) afterwards. ``.ci/run`` starts such a server and
sets the variable; locally, run .ci/run once (as root) and then e.g.

    export TEST_DATABASE_URL_POSTGRES=postgresql://bot:bot@127.0.0.1:5432/verify_email_test
    .venv/bin/pytest tests/test_store.py tests/test_replicas.py

Without it the PostgreSQL tests are skipped, except under CI=true, where they fail: CI must
never pass by silently testing one backend.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "TEST_DATABASE_URL_POSTGRES"
BACKENDS = ("sqlite", "postgres")
# Databases this suite creates: vet_<pid>_<n>_<random>. Leftovers of a killed run are dropped
# at the next session's start (when their process is gone).
_PREFIX = "vet_"
_NAME_RE = re.compile(rf"^{_PREFIX}(\d+)_\d+_[0-9a-f]+$")


def postgres_url_from_env() -> str | None:
    return os.environ.get(ENV_VAR) or None


def missing_postgres_reason() -> str:
    return (
        f"{ENV_VAR} is not set: the PostgreSQL half of the store tests needs a server "
        "(.ci/run starts one; see tests/backends.py)"
    )


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
