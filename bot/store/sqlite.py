"""The store on one SQLite file (the default ``DATABASE_URL``), safe for threads and processes."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bot.domain.ports import Announce
from bot.store.errors import StoreError
from bot.store.schema import SCHEMA_VERSION, SQLITE, create_statements, upgrade_statements
from bot.store.sql import BaseSQLStore

log = logging.getLogger(__name__)

# Milliseconds the probes' connection waits for SQLite's locks: /readyz and /metrics answer at
# once whatever is being written.
PROBE_BUSY_MS = 50


class SQLiteStore(BaseSQLStore):
    """The store on one SQLite file, safe for many threads and several processes.

    Connection: ONE connection per store, every use serialised by a lock. SQLite lets only one
    writer in at a time anyway, and our reads are single-row lookups of microseconds, so a
    connection per thread would buy little concurrency; it would cost a connection per Bolt
    worker thread (~64) that ``close()`` cannot reach from another thread (they would leak and
    warn). Across processes, correctness comes from SQLite's own locking: WAL mode, every write
    in ``BEGIN IMMEDIATE`` (the write lock is taken before the first read, so a read-then-update
    cannot interleave with another writer), and ``busy_timeout`` to wait for that lock rather
    than fail at once.

    Health and metrics: ``/readyz`` (``ping``) and ``/metrics`` (``metric_figures``) use a
    second connection with a lock of its own, never the one above: in WAL mode its reads are
    not blocked by a writer, so a slow write (here or in another process) does not stall a
    probe, and a slow scrape never holds the lock an acknowledgement may need. Its ping takes
    the write lock without waiting (``PROBE_BUSY_MS``): a database another writer holds is
    busy, not down.

    Durability: ``synchronous=FULL``. NORMAL in WAL mode already survives a crash or ``kill -9``
    of the process, but may lose the last commits on power loss or an OS crash. Losing a
    committed ``executing`` claim could let a request be approved, and the provider called,
    twice; writes here are a handful per request, so the extra fsync per commit costs nothing
    that matters.
    """

    _INTEGRITY_ERRORS = (sqlite3.IntegrityError,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 5000,
        announce: Announce | None = None,
    ) -> None:
        self.path = Path(path)
        self.announce = announce
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = self._connect()
        self._probe_lock = threading.Lock()
        self._probe_conn: sqlite3.Connection | None = None
        try:
            self._migrate()
            self._probe_conn = self._connect(busy_timeout_ms=PROBE_BUSY_MS)
        except BaseException:
            self.close()
            raise

    # -- connection ----------------------------------------------------------------------------

    def _connect(self, busy_timeout_ms: int | None = None) -> sqlite3.Connection:
        if busy_timeout_ms is None:
            busy_timeout_ms = self._busy_timeout_ms
        parent = self.path.parent
        if not parent.is_dir():
            raise StoreError(
                f"cannot open the SQLite database {self.path}: "
                f"{parent} does not exist or is not a directory"
            )
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,  # sets SQLite's busy_timeout
                isolation_level=None,  # autocommit; transactions are explicit BEGIN IMMEDIATE
                check_same_thread=False,  # shared by threads; self._lock serialises every use
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the SQLite database {self.path}: {e}") from e
        try:
            with self._translate_errors():
                mode = self._set_wal(conn)
                if str(mode).lower() != "wal":
                    log.warning("SQLite at %s refused WAL mode; using %s", self.path, mode)
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> str:
        """Switch the file to WAL mode, waiting up to busy_timeout for the lock it needs.

        SQLite does not call its busy handler for a journal-mode change, so when several
        processes open a new file at once, some get "database is locked" at once: retried here.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store for {self.path} is closed")
        return self._conn

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Turn the SQLite errors a person can act on into StoreError naming the file."""
        try:
            yield
        except sqlite3.OperationalError as e:
            # locked (busy_timeout ran out), readonly, disk I/O error, disk full, cannot open…
            raise StoreError(f"SQLite database {self.path}: {e}") from e
        except sqlite3.DatabaseError as e:
            if type(e) is not sqlite3.DatabaseError:
                raise  # IntegrityError, ProgrammingError…: handled by the caller, or our bug
            # "file is not a database", "database disk image is malformed"
            raise StoreError(f"SQLite database {self.path}: {e}") from e

    def _unique_violation(self, error: BaseException) -> str | None:
        message = str(error)
        if "items.email_key" in message:
            return "open_email"
        if "requests.id" in message:
            return "id"
        if "requests.step_execution_id" in message:
            return "step"
        return None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock, self._translate_errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.cursor()
            try:
                yield cur
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # If even ROLLBACK fails, the error that got us here is the one to report.
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        # Autocommit: each SELECT is its own consistent snapshot (WAL readers never block).
        with self._lock, self._translate_errors():
            cur = self._connection().cursor()
            try:
                yield cur
            finally:
                cur.close()

    @contextmanager
    def _probe_read(self) -> Iterator[sqlite3.Cursor]:
        """A cursor on the probes' own connection (see the class docstring)."""
        with self._probe_lock, self._translate_errors():
            if self._probe_conn is None:
                raise StoreError(f"the store for {self.path} is closed")
            cur = self._probe_conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def ping(self) -> None:
        """Raise StoreError unless the database can be written: on the probes' connection,
        take the write lock, write a row and roll it back. Another writer holding the lock
        (SQLite answers "locked" within PROBE_BUSY_MS) means the store is busy, not down."""
        with self._probe_read() as cur:
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    return  # a write is under way: the database is there and being written
                raise
            try:
                cur.execute("UPDATE schema_version SET version = version")
            finally:
                cur.execute("ROLLBACK")

    def _migrate(self) -> None:
        """Create the schema, or bring a released older one up to SCHEMA_VERSION, in one
        transaction (SQLite's write lock keeps two processes from doing it at once)."""
        with self._write() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            version = 0 if row is None else int(row[0])
            if version == SCHEMA_VERSION:
                return
            if version == 0:
                for statement in create_statements(SQLITE):
                    cur.execute(statement)
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            try:
                steps = upgrade_statements(version, SQLITE)
            except ValueError:
                newer = version > SCHEMA_VERSION
                raise StoreError(
                    f"SQLite database {self.path} has schema version {version}, "
                    + (
                        f"newer than this bot understands ({SCHEMA_VERSION}); upgrade the bot"
                        if newer
                        else "which no released bot wrote; move it aside and start afresh"
                    )
                ) from None
            log.info(
                "Migrating SQLite database %s from schema version %d to %d",
                self.path,
                version,
                SCHEMA_VERSION,
            )
            for statement in steps:
                cur.execute(statement)
            cur.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # -- health and lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; idempotent. Later calls raise StoreError."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
        with self._probe_lock:
            probe, self._probe_conn = self._probe_conn, None
            if probe is not None:
                probe.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
