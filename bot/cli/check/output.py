"""The check's output: one line per check, fixed-width status word, secrets scrubbed."""

from __future__ import annotations

import re
import sys
from contextlib import suppress
from typing import TextIO
from urllib.parse import urlsplit

from bot.provider.reading import clean_text
from bot.settings import Settings

MAX_REMOTE_TEXT = 200
# Secrets shorter than this are scrubbed only where they stand alone; see Report.add_secrets.
SHORT_SECRET = 8


class Report:
    """Writes the lines: fixed-width status word, one line each, secrets scrubbed."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._values: set[str] = set()
        self._secrets: list[re.Pattern[str]] = []
        self.failed = False

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def add_secrets(self, values: list[str]) -> None:
        """Scrub these values from every later line.

        A value of SHORT_SECRET characters or more is scrubbed wherever it appears; a shorter
        one (a placeholder such as "x") only where it stands alone, so that it cannot leak yet
        does not mangle every word that happens to contain it.
        """
        self._values |= {v for v in values if v}
        self._secrets = [
            re.compile(
                re.escape(v) if len(v) >= SHORT_SECRET else rf"(?<![\w-]){re.escape(v)}(?![\w-])"
            )
            for v in sorted(self._values, key=len, reverse=True)  # longest first: scrubbed whole
        ]

    def ok(self, text: str) -> None:
        self._line("ok", text)

    def warn(self, text: str) -> None:
        self._line("warn", text)

    def skip(self, text: str) -> None:
        self._line("skip", text)

    def fail(self, subject: str, problem: str, fix: str) -> None:
        self.failed = True
        self._line("FAIL", f"{subject}: {sentence(problem)} Fix: {sentence(fix)}")

    def waiting(self, text: str) -> None:
        """Say on stderr what the next step waits for (stdout keeps one line per check)."""
        for secret in self._secrets:
            text = secret.sub("[redacted]", text)
        print(f"… {text}", file=sys.stderr, flush=True)

    def _line(self, status: str, text: str) -> None:
        for secret in self._secrets:
            text = secret.sub("[redacted]", text)
        # One line per check, whatever a remote answer contained.
        text = " ".join("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text).split())
        self._out.write(f"{status:<6}{text}\n")
        self._out.flush()


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def secret_values(settings: Settings) -> list[str]:
    values = [
        settings.SLACK_BOT_TOKEN.get_secret_value(),
        settings.HOSTUP_API_KEY.get_secret_value(),
    ]
    for optional in (settings.SLACK_APP_TOKEN, settings.SLACK_SIGNING_SECRET):
        if optional is not None:
            values.append(optional.get_secret_value())
    with suppress(ValueError):
        password = urlsplit(settings.DATABASE_URL).password
        if password:
            values.append(password)
    return values


def remote(value: object) -> str | None:
    """A string from Slack or the provider, made safe to print on one line."""
    return clean_text(value, MAX_REMOTE_TEXT)


def safe_url(url: str) -> str:
    """``url`` without a password, query or fragment: safe to print."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    except ValueError:
        return "(a URL that cannot be parsed)"
    # Built by hand: urlunsplit would turn sqlite:////abs.db into sqlite://abs.db.
    slashes = "//" if url[len(parts.scheme) + 1 :].startswith("//") else ""
    return f"{parts.scheme}:{slashes}{netloc}{parts.path}"
