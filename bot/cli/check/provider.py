"""The provider checks: HOSTUP_API_KEY through the read-only status endpoint (never the confirm
endpoint), then whether the key may read the per-domain view."""

from __future__ import annotations

from bot.cli.check.output import Report, safe_url
from bot.provider.api import DOMAINS_PATH, STATUS_PATH, VIEW_SCOPE
from bot.provider.client import HostupClient
from bot.provider.failures import ProviderError
from bot.settings import Settings

# A check tries the provider at most twice (a failed connection or a 429 gets one retry), and
# waits out a 429 at most this long: a check answers in seconds, not minutes.
PROVIDER_ATTEMPTS = 2
PROVIDER_MAX_RETRY_AFTER = 5.0
PROVIDER_DEFAULT_URL = "https://cloud.hostup.se/api"


def check_provider(report: Report, settings: Settings, timeout: float) -> None:
    url = safe_url(settings.HOSTUP_API_URL)
    endpoint = f"GET {url.rstrip('/')}/{STATUS_PATH}"
    try:
        client = HostupClient(
            settings.HOSTUP_API_URL,
            settings.HOSTUP_API_KEY.get_secret_value(),
            timeout,
            max_attempts=PROVIDER_ATTEMPTS,
            max_retry_after=PROVIDER_MAX_RETRY_AFTER,
        )
    except ValueError:
        report.fail(
            "HOSTUP_API_KEY",
            "the key contains a line break or NUL character, which an HTTP header cannot carry",
            "paste the key again on one line",
        )
        return
    with client:
        try:
            status = client.status()
        except ProviderError as exc:
            report_provider_failure(report, exc, f"HOSTUP_API_URL {url}", endpoint, timeout)
            return
        listed = status.listed
        report.ok(
            f"The provider accepts HOSTUP_API_KEY (read-only {endpoint} answered; "
            f"{listed} domain{'s' if listed != 1 else ''} in its cache)"
        )
        check_view(report, client, url)


def check_view(report: Report, client: HostupClient, url: str) -> None:
    """Whether the key can read the v2 per-domain view. The bot works without it (requests,
    approvals and the confirm call do not need it), so a refusal is a WARN naming the scope."""
    endpoint = f"GET {url.rstrip('/')}/{DOMAINS_PATH}"
    unavailable = client.view_access()
    if unavailable is None:
        report.ok(f"HOSTUP_API_KEY can read the provider's per-domain view ({endpoint})")
        return
    without = (
        "requests still work, but without the provider's state beside them, the read-back "
        "after a call, or Check provider"
    )
    if unavailable.kind == "no_scope":
        report.warn(
            f"HOSTUP_API_KEY may not read the provider's per-domain view ({endpoint}: "
            f"{unavailable.message}): {without}. Fix: give the key the {VIEW_SCOPE} scope in "
            "the provider's control panel"
        )
    else:
        report.warn(
            f"Could not read the provider's per-domain view ({endpoint}: {unavailable.message})"
            f": {without} while this lasts"
        )


def report_provider_failure(
    report: Report, exc: ProviderError, subject: str, endpoint: str, timeout: float
) -> None:
    wrong_url = (
        "set HOSTUP_API_URL to the provider's API base URL, without /email-verification/… "
        f"(leave it unset for {PROVIDER_DEFAULT_URL})"
    )
    if exc.kind == "auth":
        report.fail(
            "HOSTUP_API_KEY",
            f"the provider refused the key: {exc}",
            "put a valid API key from the provider's control panel in HOSTUP_API_KEY, with "
            "access to email verification",
        )
    elif exc.kind == "unreachable":
        report.fail(
            subject,
            f"could not reach the provider: {exc.message}",
            "check HOSTUP_API_URL, and this machine's network, DNS, firewall and proxy "
            f"settings (leave HOSTUP_API_URL unset for {PROVIDER_DEFAULT_URL})",
        )
    elif exc.kind == "timeout":
        report.fail(
            subject,
            f"{endpoint} got no answer within {timeout:g} s ({exc.message})",
            "check HOSTUP_API_URL and this machine's network, or run check again with a "
            "longer --timeout",
        )
    elif exc.kind == "rate_limited":
        report.fail(
            "HOSTUP_API_KEY",
            f"the provider is limiting how often this key may call it (the key itself was not "
            f"refused): {exc}",
            "wait a minute and run check again",
        )
    elif exc.kind == "server_error":
        report.fail(
            subject,
            f"the provider failed with a server error: {exc}",
            "this is on the provider's side: try again later; if it persists, check "
            "HOSTUP_API_URL points at the provider",
        )
    else:  # rejected (404, 405, …) or bad_response (HTML, redirect, wrong shape)
        report.fail(subject, f"{endpoint} did not answer as the provider's API: {exc}", wrong_url)
