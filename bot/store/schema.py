"""The store's schema, written once and rendered for each database.

The tables: ``requests`` (one row per request: its approval and current state), ``items``
(one row per email of a request: its execution), ``audit_log`` (every transition,
append-only) and ``outbox`` (what Slack must be told, per request and lane, each
entry naming the audit entry of the change that queued it). The dialects differ only in how
they spell an auto-numbered key, a point in time and a reference to such a key.

Versions: 2 was the first released; 3 adds the outbox's ``lane`` and ``audit_id``; 4 the
request's ``approvals`` (the quorum so far, JSON) and ``version`` (bumped by every change, for
optimistic compare-and-set), and the ``home_viewers`` table; 5 the request's ``provider_view``
and ``readback`` (the provider's per-domain view, read when it was made and after the call, JSON);
6 the ``posted_buttons`` table (where each message whose buttons can stop acting is: the
requester's DM with Cancel, the thread replies with Check provider / Retry / Resolved) and an
index over the outbox entries given up on (counted in /metrics); 7 an index on each requester's
requests by time (the Home tab's "your requests", bounded);
8 the request's ``claim_id`` and ``lease_until`` (the current claim of an executing request and
until when it may call the provider: the fence on its outcome and the sweep's test);
9 the ``items`` table: a request asks for an ``operation`` on one or more items, and what
belongs to executing one (its email, state, claim and lease, outcome, the provider's views)
moves from the request's row to its item's; "one open request per email" is kept across items;
10 the request's ``rule`` (the policy rule it was made under, with its terms, JSON; NULL: the
settings decided) and ``escalated_at`` (when its rule's escalation was recorded);
11 the request's ``bulk`` (a bulk request: its items run by the batch runner), ``started_at``
(when its run started) and ``progress_at`` (when its progress was last queued for Slack), an
index of the queued items of running batches, and the ``pace`` table (one row: the next slot a
batch runner may call the provider in, shared by every replica); 12 the request's
``step_execution_id`` and ``workflow_execution_id`` (the Workflow Builder step run that made it,
Fx… and Wx…; NULL: a person did), unique where set: a step's event delivered twice makes one
request; and the ``step_failures`` table (a step run whose request could not be made, the words
it fails with, until Slack has taken them).
``MIGRATIONS[n]`` brings a version-n database to n + 1, on either backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot.domain.model import OPEN_STATES

SCHEMA_VERSION: Final = 12
FIRST_RELEASED_VERSION: Final = 2

OPEN_VALUES: Final = tuple(sorted(s.value for s in OPEN_STATES))
# States are the bot's own constants, so they can be written into an index's predicate.
OPEN_IN: Final = "state IN (" + ", ".join(f"'{v}'" for v in OPEN_VALUES) + ")"
# An outbox entry still to do: neither delivered nor buried (``dead_at``: given up, and when).
UNDONE: Final = "delivered_at IS NULL AND dead_at IS NULL"


@dataclass(frozen=True)
class Dialect:
    name: str
    serial: str  # an auto-numbered primary key
    time: str  # a point in time
    serial_ref: str  # a column referring to a serial key


SQLITE: Final = Dialect(
    "sqlite", serial="INTEGER PRIMARY KEY AUTOINCREMENT", time="TEXT", serial_ref="INTEGER"
)
POSTGRES: Final = Dialect(
    "postgresql",
    serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    time="TIMESTAMPTZ",
    serial_ref="BIGINT",
)

# One row per email of a request: its execution. ``state`` is the item's own (its request's while
# that waits for approval, or was closed without a call).
_ITEMS: Final = """
    CREATE TABLE items (
        request_id    TEXT NOT NULL REFERENCES requests (id),
        position      INTEGER NOT NULL,
        email         TEXT NOT NULL,
        domain        TEXT NOT NULL,
        email_key     TEXT NOT NULL,
        state         TEXT NOT NULL,
        outcome       TEXT,
        provider_view TEXT,
        readback      TEXT,
        claim_id      TEXT,
        lease_until   {time},
        PRIMARY KEY (request_id, position)
    )
    """
# One request per Workflow Builder step run, however often Slack delivers its event.
_STEP_INDEX: Final = (
    "CREATE UNIQUE INDEX requests_step ON requests (step_execution_id) "
    "WHERE step_execution_id IS NOT NULL"
)
# Step runs whose request could not be made: failed (functions.completeError) with ``error``,
# retried with backoff until Slack takes it (``done_at``).
_STEP_FAILURES: Final = """
    CREATE TABLE step_failures (
        execution_id    TEXT PRIMARY KEY,
        error           TEXT NOT NULL,
        created_at      {time} NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at {time} NOT NULL,
        last_error      TEXT,
        done_at         {time}
    )
    """
# The batch runners' shared pace: the next moment one of them may call the provider.
_PACE: Final = """
    CREATE TABLE pace (
        name      TEXT PRIMARY KEY,
        next_slot {time} NOT NULL
    )
    """
# The batch runner's next item: a running batch's items by state, in order.
_RUNNER_INDEX: Final = "CREATE INDEX items_state ON items (state, request_id, position)"
_ITEM_INDEXES: Final = (
    # "One open request per email", across items, processes and replicas.
    f"CREATE UNIQUE INDEX items_open_email ON items (email_key) WHERE {OPEN_IN}",
    "CREATE INDEX items_email_key ON items (email_key, state)",
    # The history beside a request: earlier requests for its domain.
    "CREATE INDEX items_domain ON items (domain)",
)

# {serial}, {time} and {serial_ref} are the dialect's words; every other brace is doubled.
_SCHEMA: Final = (
    """
    CREATE TABLE requests (
        id            TEXT PRIMARY KEY,
        reason        TEXT NOT NULL,
        requester     TEXT NOT NULL,
        state         TEXT NOT NULL,
        created_at    {time} NOT NULL,
        expires_at    {time} NOT NULL,
        updated_at    {time} NOT NULL,
        channel       TEXT,
        message_ts    TEXT,
        decided_by    TEXT,
        decision_note TEXT,
        approvals     TEXT NOT NULL DEFAULT '[]',
        version       INTEGER NOT NULL DEFAULT 0,
        operation     TEXT NOT NULL DEFAULT 'confirm',
        rule          TEXT,
        escalated_at  {time},
        bulk          INTEGER NOT NULL DEFAULT 0,
        started_at    {time},
        progress_at   {time},
        step_execution_id     TEXT,
        workflow_execution_id TEXT
    )
    """,
    _STEP_INDEX,
    _STEP_FAILURES,
    "CREATE INDEX requests_state_expires ON requests (state, expires_at)",
    "CREATE INDEX requests_created ON requests (created_at)",
    # The Home tab: one person's newest requests, without reading anyone else's.
    "CREATE INDEX requests_requester ON requests (requester, created_at)",
    _ITEMS,
    *_ITEM_INDEXES,
    _RUNNER_INDEX,
    _PACE,
    """
    CREATE TABLE audit_log (
        id         {serial},
        request_id TEXT NOT NULL REFERENCES requests (id),
        at         {time} NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        details    TEXT NOT NULL DEFAULT '{{}}'
    )
    """,
    "CREATE INDEX audit_log_request ON audit_log (request_id, id)",
    """
    CREATE TABLE outbox (
        id              {serial},
        request_id      TEXT NOT NULL REFERENCES requests (id),
        kind            TEXT NOT NULL,
        lane            TEXT NOT NULL,
        audit_id        {serial_ref} REFERENCES audit_log (id),
        created_at      {time} NOT NULL,
        next_attempt_at {time} NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        lease_owner     TEXT,
        lease_until     {time},
        delivered_at    {time},
        dead_at         {time}
    )
    """,
    # The claim: each request's undone entries in id order (the FIFO head), and what is due.
    f"CREATE INDEX outbox_undone ON outbox (request_id, id) WHERE {UNDONE}",
    f"CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE {UNDONE}",
    # The entries given up on, counted by kind for /metrics.
    "CREATE INDEX outbox_dead ON outbox (kind) WHERE dead_at IS NOT NULL",
    # Messages whose buttons stop acting once the request moves on; rewritten (settled_at)
    # when they do. The live ones are read per request.
    """
    CREATE TABLE posted_buttons (
        id         {serial},
        request_id TEXT NOT NULL REFERENCES requests (id),
        surface    TEXT NOT NULL,
        channel    TEXT NOT NULL,
        ts         TEXT NOT NULL,
        audit_id   {serial_ref} REFERENCES audit_log (id),
        posted_at  {time} NOT NULL,
        settled_at {time}
    )
    """,
    "CREATE INDEX posted_buttons_live ON posted_buttons (request_id, id) WHERE settled_at IS NULL",
    # Who has opened the app's Home tab (and when, last): whose Home is kept current.
    """
    CREATE TABLE home_viewers (
        user_id   TEXT PRIMARY KEY,
        opened_at {time} NOT NULL
    )
    """,
)

# Version 2 -> 3: the lane each entry waits in (DM kinds start with "dm"), and the audit entry of
# the change that queued it. Version 2 stored an entry with the same time as its audit entry,
# so that is how the rows of an upgraded database are linked, once; new rows name it directly.
_V2_TO_V3: Final = (
    "ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT 'channel'",
    "UPDATE outbox SET lane = 'dm' WHERE kind LIKE 'dm%'",
    "ALTER TABLE outbox ADD COLUMN audit_id {serial_ref} REFERENCES audit_log (id)",
    """
    UPDATE outbox SET audit_id = (
        SELECT a.id FROM audit_log a
        WHERE a.request_id = outbox.request_id AND a.at = outbox.created_at
        ORDER BY a.id DESC LIMIT 1
    )
    """,
)

# Version 3 -> 4: the approvals counted so far (none, for every request of version 3, which
# had no quorum) and the version the optimistic compare-and-set compares.
_V3_TO_V4: Final = (
    "ALTER TABLE requests ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE requests ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX requests_domain ON requests (domain, created_at)",
    "CREATE TABLE home_viewers (user_id TEXT PRIMARY KEY, opened_at {time} NOT NULL)",
)

# Version 4 -> 5: the provider's view of the domain, before and after the call (none read yet).
_V4_TO_V5: Final = (
    "ALTER TABLE requests ADD COLUMN provider_view TEXT",
    "ALTER TABLE requests ADD COLUMN readback TEXT",
)

# Version 5 -> 6: the button-bearing messages (none recorded before: the DMs and replies posted
# by version 5 keep their buttons, which refuse politely), and the index of given-up entries.
_V5_TO_V6: Final = (
    "CREATE INDEX outbox_dead ON outbox (kind) WHERE dead_at IS NOT NULL",
    """
    CREATE TABLE posted_buttons (
        id         {serial},
        request_id TEXT NOT NULL REFERENCES requests (id),
        surface    TEXT NOT NULL,
        channel    TEXT NOT NULL,
        ts         TEXT NOT NULL,
        audit_id   {serial_ref} REFERENCES audit_log (id),
        posted_at  {time} NOT NULL,
        settled_at {time}
    )
    """,
    "CREATE INDEX posted_buttons_live ON posted_buttons (request_id, id) WHERE settled_at IS NULL",
)

# Version 6 -> 7: the Home tab reads one person's newest requests through an index.
_V6_TO_V7: Final = ("CREATE INDEX requests_requester ON requests (requester, created_at)",)

# Version 7 -> 8: the claim and its lease. A request an older bot left executing has neither:
# the sweep takes it by its age, as older versions did (see Approvals.recover_interrupted).
_V7_TO_V8: Final = (
    "ALTER TABLE requests ADD COLUMN claim_id TEXT",
    "ALTER TABLE requests ADD COLUMN lease_until {time}",
)

# Version 8 -> 9: each request's email, its execution and its view move to its one item; the
# request asks for the operation every earlier bot did (confirm).
_V8_TO_V9: Final = (
    _ITEMS,
    "INSERT INTO items (request_id, position, email, domain, email_key, state, outcome, "
    "provider_view, readback, claim_id, lease_until) SELECT id, 0, email, domain, email_key, "
    "state, outcome, provider_view, readback, claim_id, lease_until FROM requests",
    "DROP INDEX IF EXISTS requests_open_email",
    "DROP INDEX IF EXISTS requests_email_key",
    "DROP INDEX IF EXISTS requests_domain",
    *_ITEM_INDEXES,
    *(
        f"ALTER TABLE requests DROP COLUMN {column}"
        for column in (
            "email",
            "domain",
            "email_key",
            "outcome",
            "provider_view",
            "readback",
            "claim_id",
            "lease_until",
        )
    ),
    "ALTER TABLE requests ADD COLUMN operation TEXT NOT NULL DEFAULT 'confirm'",
)

# Version 9 -> 10: the rule a request was made under, and its escalation. Requests made before
# keep none: the settings decide them, as they did.
_V9_TO_V10: Final = (
    "ALTER TABLE requests ADD COLUMN rule TEXT",
    "ALTER TABLE requests ADD COLUMN escalated_at {time}",
)

# Version 10 -> 11: bulk requests (none before), their runner's index and its shared pace.
_V10_TO_V11: Final = (
    "ALTER TABLE requests ADD COLUMN bulk INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE requests ADD COLUMN started_at {time}",
    "ALTER TABLE requests ADD COLUMN progress_at {time}",
    _RUNNER_INDEX,
    _PACE,
)

# Version 11 -> 12: the Workflow Builder step run that made a request (none before).
_V11_TO_V12: Final = (
    "ALTER TABLE requests ADD COLUMN step_execution_id TEXT",
    "ALTER TABLE requests ADD COLUMN workflow_execution_id TEXT",
    _STEP_INDEX,
    _STEP_FAILURES,
)

# From version N to N + 1.
MIGRATIONS: Final = {
    2: _V2_TO_V3,
    3: _V3_TO_V4,
    4: _V4_TO_V5,
    5: _V5_TO_V6,
    6: _V6_TO_V7,
    7: _V7_TO_V8,
    8: _V8_TO_V9,
    9: _V9_TO_V10,
    10: _V10_TO_V11,
    11: _V11_TO_V12,
}


def _render(statements: tuple[str, ...], dialect: Dialect) -> tuple[str, ...]:
    return tuple(
        s.format(serial=dialect.serial, time=dialect.time, serial_ref=dialect.serial_ref)
        for s in statements
    )


def create_statements(dialect: Dialect) -> tuple[str, ...]:
    """The DDL of a new database at SCHEMA_VERSION."""
    return _render(_SCHEMA, dialect)


def upgrade_statements(version: int, dialect: Dialect) -> tuple[str, ...]:
    """The statements that bring a database from ``version`` to SCHEMA_VERSION, in order.
    Raises ValueError for a version no released bot wrote (or one newer than this bot)."""
    if not FIRST_RELEASED_VERSION <= version <= SCHEMA_VERSION:
        raise ValueError(f"schema version {version}")
    steps: list[str] = []
    for from_version in range(version, SCHEMA_VERSION):
        steps.extend(_render(MIGRATIONS[from_version], dialect))
    return tuple(steps)
