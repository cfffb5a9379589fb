"""Command line: ``python -m bot [serve | sandbox | check | audit | manifest | policy]``.

``serve`` (the default) runs the bot: HTTP, or Socket Mode when SLACK_APP_TOKEN is set.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot import __version__

log = logging.getLogger("bot")

DESCRIPTION = (
    "verify-email bot: clear stuck email verifications from Slack, with a second person's "
    "approval. Settings come from the environment or a .env file (see README). With no "
    "command, `serve` runs."
)
SERVE_DESCRIPTION = (
    "Serve Slack's requests: HTTP on $PORT at POST /slack/events (and GET /healthz), or "
    "Socket Mode when SLACK_APP_TOKEN is set. Stops cleanly on SIGTERM or Ctrl-C, letting "
    "approvals in flight finish."
)
MANIFEST_DESCRIPTION = (
    "Print the Slack app manifest to paste into api.slack.com/apps (Create New App → From an "
    "app manifest): HTTP mode with your bot's public URL, or Socket Mode."
)


def _parser() -> argparse.ArgumentParser:
    from bot.cli import audit, check, policy, sandbox_options

    parser = argparse.ArgumentParser(prog="python -m bot", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="serve Slack requests (the default)", description=SERVE_DESCRIPTION
    )
    serve.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - a platform routes $PORT to every interface
        help="address to bind in HTTP mode (default: 0.0.0.0)",
    )

    play = commands.add_parser(
        "sandbox",
        help="play the whole flow offline, no settings needed",
        description=sandbox_options.DESCRIPTION,
    )
    sandbox_options.add_arguments(play)

    checker = commands.add_parser(
        "check",
        help="check a real configuration without changing anything",
        description=check.DESCRIPTION,
    )
    check.add_arguments(checker)

    history = commands.add_parser(
        "audit",
        help="export the history of every request (CSV or JSON)",
        description=audit.DESCRIPTION,
    )
    audit.add_arguments(history)

    rules = commands.add_parser(
        "policy",
        help="explain how the approval policy (POLICY_FILE) decides a request",
        description=policy.DESCRIPTION,
    )
    policy.add_arguments(rules)

    manifest = commands.add_parser(
        "manifest", help="print the Slack app manifest", description=MANIFEST_DESCRIPTION
    )
    where = manifest.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--url",
        help="the bot's public base URL, e.g. https://bot.example.com "
        "(Slack will call URL/slack/events)",
    )
    where.add_argument(
        "--socket-mode", action="store_true", help="the Socket Mode manifest (no public URL needed)"
    )
    return parser


def configure_logging(
    log_format: str = "text", level: str = "INFO", secrets: list[str] | None = None
) -> None:
    from bot.logs import configure

    configure(log_format, level, secrets or ())


# How long start-up waits for Slack to answer auth.test when it fails in a way that may pass
# (Slack down or rate limiting, no connection): a replica restarted during a Slack outage
# starts once Slack is back, instead of exiting; a refused token still stops it at once.
SLACK_START_WAIT = 300.0
SLACK_START_BACKOFF = 30.0  # the longest pause between two tries


def verify_slack_token(
    auth_test: Callable[[], Any],
    *,
    wait: float = SLACK_START_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """Call auth.test until it answers; None once it does, else what stops start-up.

    A failure that asking again may cure (Slack's 5xx, 429, a timeout, no connection) is
    logged and tried again, with backoff, for up to ``wait`` seconds; any other (a refused or
    revoked token) is final at once.
    """
    from bot.slack.errors import CALL_ERRORS, classify

    deadline = clock() + wait
    pause = 1.0
    while True:
        try:
            auth_test()
            return None
        except CALL_ERRORS as exc:
            failure = classify(exc)
        if not failure.transient:
            return f"Slack refused SLACK_BOT_TOKEN ({failure.error})"
        if clock() + pause > deadline:
            return f"Slack could not be reached for {wait:g} s ({failure.kind}: {failure.error})"
        log.warning(
            "Slack did not answer auth.test (%s: %s); trying again in %g s",
            failure.kind,
            failure.error,
            pause,
        )
        sleep(pause)
        pause = min(pause * 2, SLACK_START_BACKOFF)


def serve(host: str) -> int:
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackClientError

    from bot.domain.policy import PolicyError
    from bot.services import build_services
    from bot.settings import SettingsError, load_settings
    from bot.slack.app import create_app
    from bot.slack.server import (
        HttpServer,
        SocketModeServer,
        WsgiApp,
        serve_http,
        serve_socket_mode,
    )
    from bot.store import StoreError

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(
            "verify-email bot cannot start; fix these settings (environment or .env):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.LOG_FORMAT, settings.LOG_LEVEL, secrets=settings.secrets)
    try:
        services = build_services(settings)
    except (StoreError, PolicyError) as exc:
        print(f"verify-email bot cannot start: {exc}", file=sys.stderr)
        return 2
    log.info("Checking SLACK_BOT_TOKEN with Slack (auth.test at %s)…", settings.SLACK_API_URL)
    refused = verify_slack_token(services.client.auth_test)
    if refused is None:
        try:  # Bolt calls auth.test once more: only an outage starting just now fails it
            app = create_app(settings, services.slack_deps())
        except (BoltError, SlackClientError, OSError) as exc:
            refused = f"Slack failed auth.test ({type(exc).__name__})"
    if refused is not None:
        print(
            f"verify-email bot cannot start: {refused} at {settings.SLACK_API_URL}. "
            "Run `python -m bot check` for details.",
            file=sys.stderr,
        )
        services.close()
        return 2
    mode = "socket-mode" if settings.socket_mode else f"http port={settings.PORT}"
    log.info(
        "Starting verify-email bot %s: mode=%s channel=%s store=%s provider=%s",
        __version__,
        mode,
        settings.APPROVAL_CHANNEL,
        store_label(settings.DATABASE_URL),
        urlsplit(settings.HOSTUP_API_URL).netloc,
    )
    # Expire, recover interrupted calls and deliver what Slack missed: now, then every 15 s.
    services.maintenance.start()
    # Run approved bulk requests' items, at the provider's pace, shared with other replicas.
    services.runner.start()
    try:
        if settings.SLACK_APP_TOKEN is not None:
            log.info("Connecting to Slack over Socket Mode…")
            socket = SocketModeServer(app, settings.SLACK_APP_TOKEN.get_secret_value())
            services.slack_connected = socket.connected
            # No /slack/events here: Slack's requests come over the websocket.
            health = HttpServer(
                WsgiApp(None, services.healthy, services.ready, services.metrics.serve),
                host,
                settings.PORT,
            ).start()
            log.info("Serving GET /healthz, /readyz and /metrics on %s:%s", host, health.port)
            try:
                serve_socket_mode(socket)
            finally:
                health.stop()
        else:
            secret = settings.SLACK_SIGNING_SECRET
            wsgi = WsgiApp(
                app,
                services.healthy,
                services.ready,
                services.metrics.serve,
                signing_secret=secret.get_secret_value() if secret else None,
            )
            server = HttpServer(wsgi, host, settings.PORT)
            log.info(
                "Serving POST /slack/events and GET /healthz, /readyz and /metrics on %s:%s",
                host,
                server.port,
            )
            serve_http(server)
    finally:
        log.info("Waiting for approvals in flight to finish…")
        services.close()
        log.info("Stopped")
    return 0


def store_label(url: str) -> str:
    """The store's kind and place, without credentials."""
    if url.startswith("sqlite:"):
        return f"sqlite:{url.removeprefix('sqlite:///')}"
    from bot.cli.check import safe_url  # the one place that strips credentials from a URL

    return safe_url(url)


def print_manifest(url: str | None, socket_mode: bool) -> int:
    from bot.slack.manifest import build_manifest, render

    try:
        manifest = build_manifest(None if socket_mode else url, socket_mode)
    except ValueError as exc:
        print(f"--url: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(manifest))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "manifest":
        return print_manifest(args.url, args.socket_mode)
    if args.command == "policy":  # prints, logs nothing: no logging set up
        from bot.cli.policy import run_policy

        return run_policy(args, sys.stdout, sys.stderr)
    configure_logging()
    if args.command == "sandbox":
        from bot.cli.sandbox import run_sandbox

        return run_sandbox(args, sys.stdout)
    if args.command == "audit":
        return export_audit(args)
    if args.command == "check":
        from bot.cli.check import run_check

        logging.getLogger().setLevel(logging.WARNING)
        return run_check(sys.stdout, timeout=args.timeout)
    return serve(getattr(args, "host", "0.0.0.0"))  # noqa: S104 - see --host


def export_audit(args: argparse.Namespace) -> int:
    from bot.cli.audit import export, export_request
    from bot.settings import SettingsError, load_store_settings
    from bot.store import StoreError, open_store

    try:
        settings = load_store_settings()
    except SettingsError as exc:
        print(f"audit: {'; '.join(exc.problems)}", file=sys.stderr)
        return 2
    try:
        store = open_store(settings.DATABASE_URL)
    except StoreError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2

    def write(out: TextIO) -> int:
        if args.request is not None:
            return export_request(store, out, args.request, fmt=args.format)
        return export(store, out, since=args.since, fmt=args.format)

    try:
        if args.request is not None and store.get(args.request) is None:
            print(f"audit: no request {args.request!r} in the store", file=sys.stderr)
            return 2
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = write(out)
        else:
            count = write(sys.stdout)
    finally:
        store.close()
    log.info("Wrote %d request(s) from %s", count, store_label(settings.DATABASE_URL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
