"""The store on PostgreSQL (psycopg 3), for ``DATABASE_URL=postgresql://…`` (or ``postgres://``).

Same behaviour as the SQLite store: the SQL and the semantics are
:class:`bot.store.sql.BaseSQLStore`'s; this module adds the connection pool, the schema's
dialect and the error translation.

* Connections: a ``psycopg_pool.ConnectionPool`` (1 to 10 connections, each checked before
  use), opened when the store is built and closed by :meth:`PostgresStore.close`. Connections
  are in autocommit mode; every write is one explicit transaction.
* Concurrency (READ COMMITTED): a transition locks the request's row (``FOR NO KEY UPDATE``)
  before reading its state, so the compare-and-set, its audit entry and its outbox entries are
  one atomic step; the partial unique index ``items_open_email`` makes a second open request
  for one email impossible across replicas; the outbox claim skips rows another replica holds
  (``FOR UPDATE SKIP LOCKED``) and re-checks the lease of any row changed meanwhile.
* Schema: created (or migrated) at start inside a transaction holding an advisory lock, so two
  replicas starting together do not race. Timestamps are ``timestamptz``; JSON is text, exactly
  as on SQLite.
* Errors: an unreachable server, a refused login, a missing database, a lost connection become
  StoreError naming the host, port, database and user, never the password.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from bot.domain.ports import Announce
from bot.store.errors import StoreConfigError, StoreError
from bot.store.schema import POSTGRES, SCHEMA_VERSION, create_statements, upgrade_statements
from bot.store.sql import BaseSQLStore

# pg_advisory_xact_lock key serialising schema creation and migration between replicas
# ("verify-e" in ASCII: any constant no other application on the database uses).
MIGRATION_LOCK_KEY = 0x7665726966792D65

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
CONNECT_TIMEOUT = 10  # seconds for one connection attempt (libpq's connect_timeout)
POOL_TIMEOUT = 15.0  # seconds to wait for a free (or new) connection from the pool
STATEMENT_TIMEOUT_MS = 30_000  # no statement of ours takes more than milliseconds

_INSERT_AUDIT_RETURNING = (
    "INSERT INTO audit_log (request_id, at, actor, action, from_state, to_state, details) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class PostgresStore(BaseSQLStore):
    """The store on one PostgreSQL database, shared safely by any number of replicas."""

    _FOR_UPDATE = " FOR NO KEY UPDATE"
    _CLAIM_LOCK = " FOR UPDATE OF o SKIP LOCKED"
    _INTEGRITY_ERRORS = (psycopg.IntegrityError,)

    def __init__(
        self,
        database_url: str,
        *,
        max_size: int = POOL_MAX_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        pool_timeout: float = POOL_TIMEOUT,
        announce: Announce | None = None,
    ) -> None:
        self.announce = announce
        self._pool: ConnectionPool | None = None
        self._conninfo, where = self._parse(database_url)
        self.host, self.port, self.dbname, self.user, self._password = where
        self.label = f"{self.dbname!r} on {self.host}:{self.port} as {self.user}"
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "verify-email-bot"}
        if "connect_timeout" not in conninfo_to_dict(self._conninfo):
            kwargs["connect_timeout"] = max(1, round(connect_timeout))
        self._connect_kwargs = kwargs
        # One plain connection first: its failure says exactly what is wrong (the pool would
        # only time out), and it creates or migrates the schema before the pool serves.
        self._migrate()
        pool = ConnectionPool(
            self._conninfo,
            min_size=POOL_MIN_SIZE,
            max_size=max(POOL_MIN_SIZE, max_size),
            kwargs=kwargs,
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=pool_timeout,
            name="verify-email-store",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=connect_timeout + 5)
        except PoolTimeout:
            pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL database {self.label}: no connection within "
                f"{connect_timeout + 5:g} s"
            ) from None
        self._pool = pool

    # -- the URL -------------------------------------------------------------------------------

    @staticmethod
    def _parse(database_url: str) -> tuple[str, tuple[str, str, str, str, str]]:
        url = database_url.strip()
        scheme, _, rest = url.partition("://")
        # postgresql+psycopg:// is SQLAlchemy's spelling of the same thing.
        url = "postgresql://" + rest if scheme.lower() == "postgresql+psycopg" else url
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise StoreConfigError(
                "DATABASE_URL is not a valid PostgreSQL URL; expected "
                "postgresql://user:password@host:5432/database"
            ) from None
        user = str(params.get("user") or "(the login user)")
        where = (
            str(params.get("host") or params.get("hostaddr") or "localhost"),
            str(params.get("port") or "5432"),
            str(params.get("dbname") or user),
            user,
            str(params.get("password") or ""),
        )
        return url, where

    def _scrub(self, text: str) -> str:
        """A server or driver message, on one line, with the password (if any) masked."""
        text = _one_line(text)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    # -- connections ---------------------------------------------------------------------------

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        # UTC: timestamps come back as UTC whatever the server's default zone; and a bound on
        # any one statement, so a stuck database fails a request instead of hanging it.
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")

    def _require_pool(self) -> ConnectionPool:
        if self._pool is None:
            raise StoreError(f"the store for PostgreSQL database {self.label} is closed")
        return self._pool

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Turn the errors a person can act on into StoreError naming the database."""
        try:
            yield
        except PoolClosed:
            raise StoreError(f"the store for PostgreSQL database {self.label} is closed") from None
        except PoolTimeout:
            raise StoreError(
                f"PostgreSQL database {self.label}: no connection within "
                f"{self._pool_timeout:g} s (is the server up and reachable?)"
            ) from None
        except psycopg.OperationalError as e:
            # Connection lost, server shutting down, timeouts, serialization failures…
            raise StoreError(f"PostgreSQL database {self.label}: {self._scrub(str(e))}") from None

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor[Any]]:
        with (
            self._translate_errors(),
            self._require_pool().connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            yield cur

    @contextmanager
    def _read(self) -> Iterator[psycopg.Cursor[Any]]:
        # Autocommit: each statement is its own snapshot.
        with (
            self._translate_errors(),
            self._require_pool().connection() as conn,
            conn.cursor() as cur,
        ):
            yield cur

    def _sql(self, sql: str) -> str:
        # The shared SQL has no "%" and no "?" other than its placeholders.
        return sql.replace("?", "%s")

    def _time_to_db(self, dt: Any) -> Any:
        super()._time_to_db(dt)  # validates: timezone-aware
        return dt  # psycopg sends an aware datetime as timestamptz

    def _insert_audit(self, cur: Any, row: tuple[Any, ...]) -> int:
        cur.execute(self._sql(_INSERT_AUDIT_RETURNING), row)
        return int(cur.fetchone()[0])

    def _unique_violation(self, error: BaseException) -> str | None:
        if not isinstance(error, pg_errors.UniqueViolation):
            return None
        return {
            "items_open_email": "open_email",
            "requests_pkey": "id",
            "requests_step": "step",
        }.get(error.diag.constraint_name or "")

    # -- schema --------------------------------------------------------------------------------

    def _connect_once(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, **self._connect_kwargs)
        except psycopg.Error as e:
            raise StoreError(
                f"cannot connect to PostgreSQL database {self.label}: {self._scrub(str(e))}"
            ) from None

    def _migrate(self) -> None:
        with self._connect_once() as conn:
            try:
                with conn.transaction():
                    # Held until this transaction ends: replicas starting together take turns.
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                    )
                    row = conn.execute("SELECT version FROM schema_version").fetchone()
                    version = 0 if row is None else int(row[0])
                    if version > SCHEMA_VERSION:
                        raise StoreError(
                            f"PostgreSQL database {self.label} has schema version {version}, "
                            f"newer than this bot understands ({SCHEMA_VERSION}); upgrade the bot"
                        )
                    if version == 0:
                        for statement in create_statements(POSTGRES):
                            conn.execute(statement)
                        conn.execute(
                            "INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,)
                        )
                    elif version < SCHEMA_VERSION:
                        try:
                            steps = upgrade_statements(version, POSTGRES)
                        except ValueError:
                            raise StoreError(
                                f"PostgreSQL database {self.label} has schema version "
                                f"{version}, which no released bot wrote"
                            ) from None
                        for statement in steps:
                            conn.execute(statement)
                        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
            except psycopg.Error as e:
                raise StoreError(
                    f"cannot set up the schema in PostgreSQL database {self.label}: "
                    f"{self._scrub(str(e))}"
                ) from None

    # -- health and lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool and its connections; idempotent. Later calls raise StoreError."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=5)

    def __repr__(self) -> str:
        return f"PostgresStore({self.label})"


def probe(database_url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> str:
    """Check, without changing anything, that the bot could use this database.

    Connects, then in a transaction that is always rolled back: creates a scratch table (the
    bot creates its schema at start) and, when the schema exists, rewrites its version row.
    Returns a short description of what it found; raises StoreError naming the database,
    never the password.
    """
    conninfo, where = PostgresStore._parse(database_url)
    host, port, dbname, user, password = where
    label = f"{dbname!r} on {host}:{port} as {user}"

    def scrub(text: str) -> str:
        return _one_line(text.replace(password, "***") if password else text)

    try:
        with psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout)),
            application_name="verify-email-bot check",
        ) as conn:
            found = "no schema yet (the bot creates it at start)"
            with suppress(_ProbeRollback), conn.transaction():
                conn.execute("CREATE TABLE verify_email_check_probe (x INTEGER)")
                exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()
                if exists and exists[0] is not None:
                    row = conn.execute("SELECT version FROM schema_version").fetchone()
                    conn.execute("UPDATE schema_version SET version = version")
                    found = f"schema version {row[0] if row else '?'}"
                raise _ProbeRollback
            return found
    except psycopg.Error as e:
        raise StoreError(f"PostgreSQL database {label}: {scrub(str(e))}") from None


class _ProbeRollback(Exception):
    """Raised inside the probe's transaction so that nothing it did is kept."""
