"""The application service: one method per decision, and the narrow ports it works through.

Listeners parse what Slack sent, acknowledge it, call one method here and render the answer;
the maintenance loop calls the sweeps. Each method owns the whole sequence of its decision:
who may do it, the compare-and-set in the store (with its audit entry, and whatever the edge
tells of it, in the same transaction), the provider call, and asking delivery to send what was
queued. Decisions return what happened; what Slack is told of each is not chosen here
(bot/slack/notices.py).

It works through the ports in bot/domain/ports.py.
"""

from __future__ import annotations

from bot.domain.core import (
    HOME_COUNT_CAP,
    HOME_LISTED,
    HOME_PENDING_SCAN,
    INTERIM_AFTER,
    INTERIM_HOLD,
    MAX_RACE_RETRIES,
    READBACK_HOLD,
    ApprovalPolicy,
)
from bot.domain.execution import Retried
from bot.domain.queries import HomeData, StatusReport
from bot.domain.sweeps import Sweeps

__all__ = [
    "HOME_COUNT_CAP",
    "HOME_LISTED",
    "HOME_PENDING_SCAN",
    "INTERIM_AFTER",
    "INTERIM_HOLD",
    "MAX_RACE_RETRIES",
    "READBACK_HOLD",
    "ApprovalPolicy",
    "Approvals",
    "HomeData",
    "Retried",
    "StatusReport",
]


class Approvals(Sweeps):
    """Creates requests and carries out every decision about them: the queries, the approval,
    the execution, bulk requests and the sweeps, one module each (bot/domain/queries.py,
    approval.py, execution.py, bulk.py, sweeps.py, over core.py)."""
