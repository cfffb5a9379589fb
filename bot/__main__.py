"""Command line: ``python -m bot`` serves (HTTP, or Socket Mode when SLACK_APP_TOKEN is set)."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlsplit

from bot import __version__

log = logging.getLogger("bot")

DESCRIPTION = (
    "verify-email bot: clear stuck email verifications from Slack, with a second person's "
    "approval. Settings come from the environment or a .env file (see README)."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve Slack requests (the default)",
        description="Serve Slack's requests: HTTP on $PORT at POST /slack/events (and "
        "GET /healthz), or Socket Mode when SLACK_APP_TOKEN is set.",
    )
    serve.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - a platform routes $PORT to every interface
        help="address to bind in HTTP mode (default: 0.0.0.0)",
    )
    return parser


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request line at INFO; the provider client logs what matters itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def serve(host: str) -> int:
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackClientError

    from bot.app import build_services, create_app
    from bot.server import (
        HttpServer,
        SocketModeServer,
        WsgiApp,
        serve_http,
        serve_socket_mode,
    )
    from bot.settings import SettingsError, load_settings
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
    try:
        services = build_services(settings)
    except StoreError as exc:
        print(f"verify-email bot cannot start: DATABASE_URL: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings, services)
    except (BoltError, SlackClientError, OSError) as exc:
        print(
            f"verify-email bot cannot start: Slack refused SLACK_BOT_TOKEN or could not be "
            f"reached at {settings.SLACK_API_URL} ({type(exc).__name__})",
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
        _store_label(settings.DATABASE_URL),
        urlsplit(settings.HOSTUP_API_URL).netloc,
    )
    try:
        if settings.SLACK_APP_TOKEN is not None:
            serve_socket_mode(SocketModeServer(app, settings.SLACK_APP_TOKEN.get_secret_value()))
        else:
            server = HttpServer(WsgiApp(app, health=services.healthy), host, settings.PORT)
            log.info("Serving POST /slack/events and GET /healthz on %s:%s", host, server.port)
            serve_http(server)
    finally:
        services.close()
    return 0


def _store_label(url: str) -> str:
    """The store's kind and place, without credentials."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return f"sqlite:{url.removeprefix('sqlite:///')}"
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging()
    if args.command in (None, "serve"):
        return serve(getattr(args, "host", "0.0.0.0"))  # noqa: S104 - see --host
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
