"""The store's rows as text: column lists, the text and JSON a value is stored as, and checks.

Plain functions and constants, shared by every part of :class:`~bot.store.sql.BaseSQLStore`
(bot/store/core.py maps whole rows to the model with them). The names keep their leading
underscore: they are the store package's own, not an interface for anyone else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.domain.inputs import other_forms
from bot.domain.model import Approval
from bot.domain.views import DomainReading, view_from_dict

# Stored error texts are for a person reading the database; Slack's errors are short anyway.
MAX_ERROR_CHARS = 500

_REQUEST_COLUMNS = (
    "id, reason, requester, state, created_at, expires_at, updated_at, "
    "channel, message_ts, decided_by, decision_note, approvals, version, operation, rule, "
    "escalated_at, bulk, started_at, progress_at, step_execution_id, workflow_execution_id"
)
_ITEM_COLUMNS = (
    "request_id, position, email, domain, state, outcome, provider_view, readback, claim_id, "
    "lease_until"
)
_AUDIT_COLUMNS = "request_id, at, actor, action, from_state, to_state, details"
_OUTBOX_COLUMNS = (
    "id, request_id, kind, lane, attempts, created_at, next_attempt_at, last_error, audit_id, "
    "lease_owner"
)
_BUTTONS_COLUMNS = "id, request_id, surface, channel, ts, audit_id, posted_at"

_SELECT_REQUEST = f"SELECT {_REQUEST_COLUMNS} FROM requests"  # noqa: S608 -- constant column list
_SELECT_ITEMS = f"SELECT {_ITEM_COLUMNS} FROM items"  # noqa: S608 -- constant column list


# Lone surrogates are not Unicode text and cannot be encoded as UTF-8, yet JSON from Slack can
# carry them ("\ud800"); PostgreSQL text cannot hold NUL. Both are stored as U+FFFD rather than
# failing the whole request (on every backend, so they behave the same).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _text(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value)


def _opt_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _json(value: dict[str, Any]) -> str:
    # json.dumps writes NUL as the escape \u0000, so only the surrogates need replacing here.
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _approvals_json(approvals: Sequence[Approval], withdrawn: Sequence[Approval] = ()) -> str:
    """The approvals column: those counted, then (``"counts": false``) those that no longer
    count because their approver lost the role."""
    return _json_list(
        [{"by": a.approver, "at": a.at.astimezone(UTC).isoformat()} for a in approvals]
        + [
            {"by": a.approver, "at": a.at.astimezone(UTC).isoformat(), "counts": False}
            for a in withdrawn
        ]
    )


def _json_list(value: list[Any]) -> str:
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _approvals_from_json(text: str | None, *, counted: bool = True) -> tuple[Approval, ...]:
    """The approvals that count (``counted``), or those that no longer do."""
    items = json.loads(text) if text else []
    return tuple(
        Approval(str(a["by"]), datetime.fromisoformat(a["at"]).astimezone(UTC))
        for a in items
        if a.get("counts", True) is counted
    )


def _reading(text: str | None) -> DomainReading | None:
    return None if text is None else view_from_dict(json.loads(text))


def email_key(email: str) -> str:
    """What two emails are compared by for "one open request per email": lower-cased."""
    return _text(email).lower()


def email_keys(email: str) -> tuple[str, ...]:
    """The keys a request for ``email`` may be stored under: its own, and that of the email
    with its domain in its other IDNA form. New rows hold the normalised (Unicode) form
    (bot/domain/inputs.py); rows written before addresses were normalised hold whichever form
    was typed, and are found all the same."""
    return tuple(dict.fromkeys(email_key(e) for e in (email, *other_forms(email))))


def _error_text(error: str) -> str:
    error = _text(str(error))
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    return error


def _check_aware(dt: datetime, name: str) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got a naive one")


def _entries(entries: object) -> list[tuple[str, str]]:
    """Outbox entries to queue, checked: each a (kind, queue) pair of non-empty texts."""
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        raise TypeError("entries must be a sequence of (kind, queue) pairs, not one string")
    checked = []
    for entry in entries:
        if not (isinstance(entry, tuple) and len(entry) == 2 and all(entry)):
            raise ValueError(f"an outbox entry is a (kind, queue) pair, not {entry!r}")
        kind, queue = entry
        if not (isinstance(kind, str) and isinstance(queue, str)):
            raise ValueError(f"an outbox entry is a (kind, queue) pair of texts, not {entry!r}")
        checked.append((kind, queue))
    return checked
