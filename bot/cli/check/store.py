"""The store check: DATABASE_URL is reachable and writable, and nothing in it changes (the
write test is rolled back; a SQLite file that does not exist yet is not created)."""

from __future__ import annotations

import secrets
import sqlite3
from contextlib import suppress
from pathlib import Path

from bot.cli.check.output import Report, safe_url
from bot.store import (
    SQLiteStore,
    StoreConfigError,
    StoreError,
    is_postgres_url,
    sqlite_path_from_url,
)


def check_store(report: Report, database_url: str) -> None:
    subject = f"DATABASE_URL {safe_url(database_url)}"
    if is_postgres_url(database_url):
        check_postgres(report, database_url, subject)
        return
    try:
        path = sqlite_path_from_url(database_url)
        if path.exists():
            found = probe_sqlite(path)
            report.ok(f"The store at {subject} is reachable and writable ({found})")
        else:
            probe_directory(path)
            report.ok(
                f"The store at {subject} does not exist yet; its directory {path.parent} is "
                "writable, and the bot creates the database when it starts"
            )
    except StoreConfigError as exc:
        report.fail(
            subject,
            str(exc).removeprefix("DATABASE_URL: ").removeprefix("DATABASE_URL "),
            "use sqlite:///relative.db or sqlite:////absolute/path.db",
        )
    except StoreError as exc:
        report.fail(
            subject,
            str(exc),
            "make sure the directory exists and this user may write to it, that the file is "
            "the bot's SQLite database, and that no other process holds it locked",
        )


def check_postgres(report: Report, database_url: str, subject: str) -> None:
    try:
        from bot.store.postgres import probe
    except ImportError:
        report.fail(
            subject,
            "the PostgreSQL driver is not installed",
            "pip install 'verify-email-bot[postgres]'",
        )
        return
    try:
        found = probe(database_url)
    except StoreError as exc:
        report.fail(
            subject,
            str(exc),
            "check the host, port, database name, user and password, and that this user may "
            "create tables in the database",
        )
        return
    report.ok(f"The store at {subject} is reachable and writable ({found})")


def probe_sqlite(path: Path) -> str:
    """Prove an existing SQLite database can be written, changing nothing in it.

    Opening it as the bot does would migrate an old schema and switch its journal mode, so
    this opens the file as it is, takes the write lock and gives it back.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the SQLite database {path}: {exc}") from None
    try:
        conn.isolation_level = None
        conn.execute("BEGIN IMMEDIATE")  # the write lock: fails if read-only or held elsewhere
        conn.execute("ROLLBACK")
        try:
            row = conn.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return "no schema yet: the bot creates it when it starts"
        return f"schema version {row[0]}" if row else "no schema version yet"
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite database {path}: {exc}") from None
    finally:
        conn.close()


def probe_directory(path: Path) -> None:
    """Raise StoreError unless a SQLite database can be created next to ``path``.

    Uses a scratch database of its own (removed afterwards), so the check never creates the
    real one and never deletes a file it did not create.
    """
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(f"{parent} does not exist or is not a directory")
    scratch = parent / f".verify-email-check-{secrets.token_hex(6)}.db"
    try:
        with SQLiteStore(scratch) as store:
            store.ping()
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            # Best effort: a scratch file that cannot be removed must not hide the real answer.
            with suppress(OSError):
                Path(f"{scratch}{suffix}").unlink(missing_ok=True)
