"""DATABASE_URL: which database it names. The one place that tells SQLite and PostgreSQL apart.

``sqlite:///relative.db`` is relative to the current directory, ``sqlite:////abs/path.db`` is
absolute; ``postgresql://user:password@host:5432/dbname`` (also ``postgres://`` and SQLAlchemy's
``postgresql+psycopg://``). Errors never repeat the URL: it may hold a password.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from bot.domain.ports import StoreError


class StoreConfigError(StoreError):
    """DATABASE_URL is not one the bot can use; the message never repeats the URL."""


URL_FORMS: Final = "sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://…"
_SQLITE_FORMS: Final = "sqlite:///relative.db or sqlite:////absolute/path.db"
POSTGRES_SCHEMES: Final = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


def is_postgres_url(database_url: str) -> bool:
    """True when DATABASE_URL names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    scheme, sep, _ = (database_url or "").strip().partition("://")
    return bool(sep) and scheme.lower() in POSTGRES_SCHEMES


def sqlite_path_from_url(database_url: str) -> Path:
    """The absolute file path a ``sqlite:`` DATABASE_URL names (see the module's docstring)."""
    url = (database_url or "").strip()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise StoreConfigError(f"DATABASE_URL is not a database URL; expected {URL_FORMS}.")
    if is_postgres_url(url):
        raise StoreConfigError(
            f"DATABASE_URL names a PostgreSQL database, not a SQLite file ({_SQLITE_FORMS})."
        )
    if scheme != "sqlite":
        raise StoreConfigError(
            f"DATABASE_URL uses a database this bot does not support; expected {URL_FORMS}."
        )
    if not rest.startswith("/"):
        # sqlite://host/... : a host makes no sense for a file.
        raise StoreConfigError(
            "DATABASE_URL: a sqlite URL has three slashes before a relative path "
            f"and four before an absolute one: {_SQLITE_FORMS}."
        )
    if "?" in rest or "#" in rest:
        raise StoreConfigError(
            f"DATABASE_URL: a sqlite URL takes no ?options or #fragment; expected {_SQLITE_FORMS}."
        )
    raw_path = unquote(rest[1:])
    if not raw_path or raw_path.endswith("/"):
        raise StoreConfigError(f"DATABASE_URL names no database file; expected {_SQLITE_FORMS}.")
    if raw_path == ":memory:" or raw_path.startswith("file:"):
        raise StoreConfigError(
            "DATABASE_URL: requests must survive a restart, so an in-memory or URI-form SQLite "
            f"database is not supported; expected {_SQLITE_FORMS}."
        )
    if "\x00" in raw_path:
        raise StoreConfigError(f"DATABASE_URL is not a usable file path; expected {_SQLITE_FORMS}.")
    # Resolved now, so a later chdir cannot move the database and error messages are exact.
    return Path(os.path.abspath(raw_path))
