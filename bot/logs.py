"""Logging for ``python -m bot``: LOG_FORMAT (text or json) and LOG_LEVEL, with the correlation
fields of the request a line concerns, no secret, and no line another can be forged into.

* ``text``: ``2026-12-03 12:00:00,000 INFO bot.domain.approval: Request … [request_id=… user=…]``;
* ``json``: one object a line (python-json-logger) with ``time``, ``level``, ``logger``,
  ``message`` and the fields bound in bot.domain.correlation, e.g.::

    {"time": "2026-12-03T12:00:00.123Z", "level": "INFO", "logger": "bot.domain.approval",
     "message": "Request 0f3a… approved by U0ANA; calling the provider",
     "request_id": "0f3a…", "team": "T0ACME", "user": "U0ANA", "action": "verify_email_approve"}

Every line's message is rendered, stripped of the configured secrets (the Slack tokens, the
signing secret, the provider key) and, in text, of line breaks and other control characters
(escaped as ``\\n``, ``\\x1b``…), so text a person typed cannot start a line of its own; JSON
escapes them by itself. Tracebacks are kept (in ``exc_info``, escaped the same way in text).

LOG_LEVEL=DEBUG applies to the bot's own loggers only. Libraries are held at INFO (or
LOG_LEVEL, when that is higher) whatever LOG_LEVEL says: their debug lines are payload dumps
(slack_sdk logs every Web API request and answer in full, Slack's messages with the reasons
people typed; Bolt logs the bodies it answers; Socket Mode every envelope), which no line may
carry. Bolt copies the root logger's level into loggers of its own when it builds the app, so
the handler drops those lines itself (:class:`LibraryDebugFilter`), not only the loggers' levels.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from pythonjsonlogger.json import JsonFormatter

from bot.domain import correlation

LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED: Final = "[redacted]"
# Loggers whose records may be below INFO: the bot's own (``__main__`` is bot/cli/main.py run
# as ``python -m bot``).
OWN_LOGGERS: Final = ("bot", "__main__")
# The lowest level a library's record may have, whatever LOG_LEVEL says.
LIBRARY_FLOOR: Final = logging.INFO
# Libraries known to log whole payloads at DEBUG; their loggers are set to LIBRARY_FLOOR too,
# so those lines are not even built (LibraryDebugFilter catches any other library).
PAYLOAD_LOGGERS: Final = ("slack_sdk", "slack_bolt", "httpcore")


def escape_controls(text: str) -> str:
    """Control characters as visible escapes: a log line stays one line."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 32 or 127 <= code < 160 or char in "\u2028\u2029":
            out.append(f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def is_own(name: str) -> bool:
    """Whether the logger called ``name`` is one of the bot's own."""
    return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


class LibraryDebugFilter(logging.Filter):
    """Drops any record below LIBRARY_FLOOR that does not come from the bot's own loggers.

    A filter on the handler, not only logger levels: Bolt gives the loggers it creates (named
    after the app, e.g. ``app.py:ThreadListenerRunner``) a level copied from the root logger,
    which would let their debug lines, response bodies included, through at LOG_LEVEL=DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= LIBRARY_FLOOR or is_own(record.name)


class CorrelationFilter(logging.Filter):
    """Adds the bound correlation fields to each record, and the message rendered once with
    the secrets taken out (so neither formatter can print one)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        fields = correlation.current()
        for name in correlation.FIELDS:
            setattr(record, name, fields.get(name))
        return True


class TextFormatter(logging.Formatter):
    """The text format, one line a record: the message and traceback escaped, then the bound
    correlation fields as ``[name=value …]``."""

    def __init__(self, redact: CorrelationFilter) -> None:
        super().__init__(TEXT_FORMAT)
        self.redactor = redact

    def format(self, record: logging.LogRecord) -> str:
        line = escape_controls(self.redactor.redact(super().format(record)))
        fields = [
            f"{name}={escape_controls(str(value))}"
            for name in correlation.FIELDS
            if (value := getattr(record, name, None)) is not None
        ]
        return f"{line} [{' '.join(fields)}]" if fields else line


class JsonLineFormatter(JsonFormatter):
    """python-json-logger's formatter with the bot's field names and a UTC ISO time."""

    def __init__(self, redact: CorrelationFilter) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
        )
        self.redactor = redact

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        ).replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)
        for name in correlation.FIELDS:
            value = getattr(record, name, None)
            if value is None:
                log_data.pop(name, None)
            else:
                log_data[name] = value

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return self.redactor.redact(str(super().formatException(ei)))


def configure(
    log_format: str = "text",
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``log_format``, at ``level`` (the
    bot's own loggers; libraries never below INFO); replaces any handler the root logger had.
    Returns the handler."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    redactor = CorrelationFilter(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    # The handler's own level too: a logger given a lower level of its own (as Bolt does) does
    # not get below LOG_LEVEL.
    handler.setLevel(level)
    handler.addFilter(LibraryDebugFilter())  # first: a dropped line is never rendered
    handler.addFilter(redactor)
    handler.setFormatter(
        JsonLineFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(LIBRARY_FLOOR, root.level))
    # httpx logs every request line at INFO; the provider client logs what matters itself.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return handler
