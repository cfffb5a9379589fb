"""The store's errors: what a person can act on, never naming a secret."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked; the message is safe to log and names nothing secret."""


class StoreConfigError(StoreError):
    """DATABASE_URL is not one the bot can use; the message never repeats the URL."""
