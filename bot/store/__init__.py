"""Durable requests, their append-only audit log and their Slack outbox.

``open_store(DATABASE_URL)`` builds the store the bot uses: :class:`~bot.store.sqlite.SQLiteStore`
for ``sqlite:`` URLs (the embedded default), :class:`~bot.store.postgres.PostgresStore` for
``postgresql://`` and ``postgres://`` (with the ``postgres`` extra installed). Both are one
implementation, :class:`~bot.store.sql.BaseSQLStore`, over one schema rendered per database:

    bot/database_url.py      what DATABASE_URL names (the one place that tells the backends apart)
    bot/store/schema.py    the tables and indexes, written once; versions and their migration
    bot/store/sql.py       the store in portable SQL: BaseSQLStore, made of the parts below
    bot/store/rows.py      column lists; the text and JSON a value is stored as; checks
    bot/store/core.py      the cursor protocol, the hooks, the row mapping, the shared steps
    bot/store/requests.py  create, compare-and-set transitions, readings, leases, late answers
    bot/store/queries.py   the sweeps', the audit export's, the Home tab's and metrics' reads
    bot/store/outbox.py    the outbox queue: enqueue, claim, complete, retry, bury, give up
    bot/store/buttons.py   messages posted with buttons, until rewritten without them
    bot/store/sqlite.py    the SQLite connection, locking and errors
    bot/store/postgres.py  the PostgreSQL pool, locking and errors; ``probe`` for ``check``
"""

from __future__ import annotations

from bot.database_url import is_postgres_url, sqlite_path_from_url
from bot.domain.ports import Announce
from bot.store.errors import StoreConfigError, StoreError
from bot.store.sql import BaseSQLStore
from bot.store.sqlite import SQLiteStore

__all__ = [
    "BaseSQLStore",
    "SQLiteStore",
    "StoreConfigError",
    "StoreError",
    "is_postgres_url",
    "open_store",
    "sqlite_path_from_url",
]


def open_store(
    database_url: str, *, busy_timeout_ms: int = 5000, announce: Announce | None = None
) -> BaseSQLStore:
    """Open the store DATABASE_URL names, creating or migrating its schema. ``announce`` is
    what the edge tells Slack of each change (bot/slack/notices.py), queued with it; without
    it nothing is queued (for the command line's reads).

    Raises StoreConfigError for a URL it cannot use (never echoing it: it may hold a password),
    and StoreError when the database cannot be opened.
    """
    if is_postgres_url(database_url):
        try:
            from bot.store.postgres import PostgresStore
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] not in {"psycopg", "psycopg_pool"}:
                raise
            raise StoreConfigError(
                "DATABASE_URL names a PostgreSQL database, but the PostgreSQL driver is not "
                "installed: pip install 'verify-email-bot[postgres]'"
            ) from None
        return PostgresStore(database_url, announce=announce)
    return SQLiteStore(
        sqlite_path_from_url(database_url), busy_timeout_ms=busy_timeout_ms, announce=announce
    )
