"""The Workflow Builder step "Verify email with approval" (``function_executed``): a request
made for the person the workflow runs for, exactly as the command and form make one.

Bolt acknowledges the event before this runs. The request's final state completes the step
later, through the outbox (bot/slack/render.py). A run whose request cannot be made (a bad
input, not a requester, not allowed by the rules, an open request for the email) fails at
once with the words the command would use. Slack delivers an event again when its ack is late:
a run that asked already gets its own request back from the service, never a second one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from slack_bolt import BoltContext

from bot.domain.inputs import InvalidInput
from bot.domain.model import WorkflowRun
from bot.domain.refusals import Refused
from bot.slack import blocks
from bot.slack.deps import SlackDeps, deps_of
from bot.slack.notifier import DeliveryError
from bot.slack.step import read_inputs

log = logging.getLogger(__name__)

# Attempts at failing a run whose request could not be made, and the pause before each next.
FAIL_ATTEMPTS: Final = 3
FAIL_PAUSE: Final = 1.0


def step_executed(event: dict[str, Any], context: BoltContext) -> None:
    deps = deps_of(context)
    execution_id = event.get("function_execution_id")
    if not isinstance(execution_id, str) or not execution_id:
        log.warning("A function_executed event without its execution id: ignored")
        return
    workflow_run = event.get("workflow_execution_id")
    run = WorkflowRun(
        execution_id, workflow_run if isinstance(workflow_run, str) and workflow_run else None
    )
    try:
        asked = read_inputs(event.get("inputs"))
        request = deps.approvals.submit(
            asked.email, asked.reason, asked.requested_by, asked.operation, workflow=run
        )
    except Refused as refused:
        words = blocks.refusal_words(refused, mentions=False)
    except InvalidInput as exc:
        words = str(exc)
    else:
        log.info("Step run %s made request %s", execution_id, request.id)
        deps.approvals.look_up(request.id)
        return
    log.info("Step run %s: no request made: %s", execution_id, words)
    fail_run(deps, execution_id, words)


def fail_run(deps: SlackDeps, execution_id: str, words: str) -> None:
    """End the run as failed with ``words``; a Slack that does not take it is asked again a
    few times (nothing was stored: a run Slack never hears of times out on Slack's side)."""
    for attempt in range(1, FAIL_ATTEMPTS + 1):
        try:
            deps.notifier.fail_step(execution_id, words)
            return
        except DeliveryError as exc:
            if exc.permanent or attempt == FAIL_ATTEMPTS:
                log.error("Step run %s could not be failed: %s", execution_id, exc)
                return
            log.warning("Step run %s: failing it did not work yet: %s", execution_id, exc)
            time.sleep(FAIL_PAUSE * attempt)
