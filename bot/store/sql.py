"""The store, written once in portable SQL: :class:`BaseSQLStore`.

* every statement here is portable SQL (``?`` placeholders, which the psycopg subclass turns
  into ``%s`` in :meth:`BaseSQLStore._sql`), and every value is bound as a parameter, never
  formatted into the SQL text;
* the row <-> model mapping, the validation and the semantics live here;
* what is a backend's own (connections, locking, error translation, its schema's dialect) lives
  in the subclass (bot/store/sqlite.py, bot/store/postgres.py).

Timestamps: SQLite keeps ISO-8601 UTC text of fixed width (``2024-05-01T12:00:00.000000+00:00``),
so comparing them as text orders them in time; PostgreSQL keeps ``timestamptz``. They come back
as aware UTC datetimes. JSON columns (``outcome``, ``details``) are text on both, so they come
back exactly as they went in. Text that cannot be stored (a lone surrogate, which is not
Unicode; NUL, which PostgreSQL text cannot hold) is stored as U+FFFD, on both backends alike.

A state change, its audit entry and its outbox entries are written in one transaction.
``transition`` is a compare-and-set: of any number of concurrent callers (threads, processes or
replicas) asking for the same change, exactly one wins; the others get ``None`` and write
nothing.

One open request per email: ``email_key`` is the email lower-cased (by Python, so both backends
agree), and a partial UNIQUE index on it over the open states (pending, executing, unknown)
makes a second open request for the same address impossible, across processes and replicas;
``create`` turns the conflict into :class:`~bot.domain.model.OpenRequestExists`.

The outbox: rows of (request, notice, lane, audit entry) to deliver to Slack, in order per
request and lane. A claimer leases the head of each lane (its oldest entry neither delivered nor
buried), delivers it, then completes, retries (later, with a count and the error) or buries it
(gives up; a buried entry counts as done, so the queue moves on). Delivered and buried rows are
kept for inspection.

The parts, each a module of its own:

    bot/store/rows.py      column lists; the text and JSON a value is stored as; checks
    bot/store/core.py      the cursor protocol, the hooks, the row mapping, the shared steps
    bot/store/requests.py  create, transition (a request's and its item's compare-and-set)
    bot/store/execution.py readings of the provider's view, lease renewals, late answers
    bot/store/queries.py   the sweeps', the audit export's, the Home tab's and the metrics' reads
    bot/store/outbox.py    the outbox queue
    bot/store/buttons.py   messages posted with buttons
"""

from __future__ import annotations

from bot.store.buttons import ButtonMethods
from bot.store.execution import ExecutionRecords
from bot.store.outbox import OutboxMethods
from bot.store.queries import QueryMethods
from bot.store.rows import MAX_ERROR_CHARS
from bot.store.runner import RunnerMethods
from bot.store.steps import StepMethods

__all__ = ["MAX_ERROR_CHARS", "BaseSQLStore"]


class BaseSQLStore(
    RunnerMethods, StepMethods, ExecutionRecords, QueryMethods, OutboxMethods, ButtonMethods
):
    """The Store, written once against a DB-API cursor; subclasses supply the connection.

    A subclass implements :meth:`_write` (a cursor inside one transaction, committed on success
    and rolled back on error) and :meth:`_read`, sets the locking clauses its SQL dialect has
    (``_FOR_UPDATE``, ``_CLAIM_LOCK``), tells unique violations apart
    (:meth:`_unique_violation`), and may override the ``_time_*`` and :meth:`_sql` hooks.

    Concurrency relies on each backend's own guarantees: SQLite runs every write transaction
    under its single write lock (``BEGIN IMMEDIATE``), so a read followed by a write inside it
    cannot interleave with another writer; PostgreSQL (READ COMMITTED) locks the request's row
    (``SELECT … FOR NO KEY UPDATE``) before it reads the state it will compare-and-set, skips
    outbox rows another claimer holds (``FOR UPDATE SKIP LOCKED``), and relies on the partial
    unique index for "one open request per email".
    """
