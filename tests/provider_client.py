"""Helpers of the provider client's tests (tests/integration/test_hostup_*.py), written
once: the stand-in's API key and the documented request's email and path, the documented
success answer, and what a failing confirm raised.

Their fixtures (``provider``: the stand-in provider on loopback; ``sleeps``: the client's
recorded backoff; ``make_client``: clients closed after the test) are in tests/conftest.py.
Test modules import what they need from here by name; no test module imports another.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from bot.provider.client import HostupClient
from bot.provider.failures import ProviderError

KEY = "hk_live_9f8e7d6c5b4a-very-secret"
EMAIL = "alice@example.com"
CONFIRM = "/api/email-verification/confirmed"

MakeClient = Callable[..., HostupClient]


def confirm_error(client: HostupClient, email: str = EMAIL) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        client.confirm(email)
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documented_success(**data: object) -> dict[str, object]:
    body: dict[str, object] = {
        "success": True,
        "message": "Verification caches cleared",
        "clearedDomains": ["example.com"],
        "clientsNotified": ["3704"],
    }
    body.update(data)
    return {
        "success": True,
        "timestamp": "2025-01-02T03:04:05.678Z",
        "requestId": "0b6c9a52-1f0e-4c1e-9a43-5c0f2b7e9d11",
        "data": body,
    }
