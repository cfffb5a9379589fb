"""The provider's API as the bot calls it: its paths, the v2 scope, the User-Agent.

HostUp's email-verification API (v1, ``X-API-Key``): ``POST email-verification/confirmed`` and
``GET email-verification/status``; its v2 API (``Authorization: Bearer <key>``): ``GET
v2/domains?name=…``, ``GET v2/domains/{id}/email-verification`` and ``POST
v2/domains/{id}/email-verification/actions/resend``. Paths are relative to HOSTUP_API_URL.
"""

from __future__ import annotations

from typing import Final

CONFIRM_PATH: Final = "email-verification/confirmed"
STATUS_PATH: Final = "email-verification/status"
DOMAINS_PATH: Final = "v2/domains"
VIEW_PATH: Final = "v2/domains/{id}/email-verification"
RESEND_PATH: Final = "v2/domains/{id}/email-verification/actions/resend"
# The v2 scope the per-domain view needs, and the one the resend action needs.
VIEW_SCOPE: Final = "read:domains"
RESEND_SCOPE: Final = "write:domains"
USER_AGENT: Final = "verify-email-bot"


def endpoint(path: str) -> str:
    """The endpoint a path is, for the metrics: confirm, status, domains, view or resend."""
    if path == CONFIRM_PATH:
        return "confirm"
    if path == STATUS_PATH:
        return "status"
    if path.endswith("/actions/resend"):
        return "resend"
    return "view" if path.endswith("/email-verification") else "domains"
