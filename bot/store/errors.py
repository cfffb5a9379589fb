"""The store's errors: what a person can act on, never naming a secret."""

from __future__ import annotations

from bot.database_url import StoreConfigError
from bot.domain.ports import StoreError

__all__ = ["StoreConfigError", "StoreError"]
