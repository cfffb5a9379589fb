"""Shared fixtures: a whole workspace (the real bot on loopback, wired to the stand-ins)."""

from __future__ import annotations

import pytest

from bot.standins.world import World


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """slack_sdk honours HTTP(S)_PROXY even for 127.0.0.1; the tests talk to loopback only."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def world(tmp_path):
    with World(database_path=tmp_path / "bot.db") as w:
        yield w
