"""What a reading of the provider's view after an unknown outcome means depends on what was
asked: a confirm that acted shows (the domain reads verified), a resend never does (the email
leaves the domain as it was), so no reading after an unknown resend may suggest that it took
effect, or that it did not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.model import Operation
from bot.domain.views import (
    DomainReading,
    Meaning,
    ProviderView,
    ViewUnavailable,
    meaning_of,
)
from bot.slack.blocks import meaning_line

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
READINGS: dict[str, DomainReading] = {
    "verified": ProviderView("example.com", "verified", AT, is_verified=True),
    "pending": ProviderView("example.com", "pending", AT),
    "expired": ProviderView("example.com", "expired", AT),
    "odd": ProviderView("example.com", "half-done", AT),
    "unavailable": ViewUnavailable("example.com", "server_error", "HTTP 500", AT, status=500),
}


@pytest.mark.parametrize(
    ("name", "meaning"),
    [
        ("verified", Meaning.TOOK_EFFECT),
        ("pending", Meaning.NOT_YET),
        ("expired", Meaning.NOT_YET),
        ("odd", Meaning.UNCLEAR),
        ("unavailable", Meaning.UNCLEAR),
    ],
)
def test_a_confirm_is_judged_by_the_domains_status(name, meaning):
    """After an unknown confirm: verified means it most likely took effect, pending (or
    unverified, expired) that it most likely did not, anything else settles nothing."""
    assert meaning_of(READINGS[name], Operation.CONFIRM) is meaning


@pytest.mark.parametrize("name", sorted(READINGS))
def test_a_resend_is_never_judged_by_the_domains_status(name):
    """After an unknown resend every reading, verified, pending or unreadable, means the same:
    the view cannot show whether the email went out. The words say so and ask for the
    customer (or the provider) before a Retry, never that the call took effect or not."""
    reading = READINGS[name]
    assert meaning_of(reading, Operation.RESEND) is Meaning.NOT_SHOWN
    line = meaning_line(reading, Operation.RESEND)
    assert "the provider's view cannot show whether the email went out" in line
    assert "ask the customer whether it arrived" in line and "before Retry" in line
    assert "took effect" not in line and "Retry may be needed" not in line
    assert "cannot show" not in meaning_line(reading, Operation.CONFIRM)
