"""The Workflow Builder step "Verify email with approval" (``function_executed``): a request
made for the person the workflow runs for, exactly as the command and form make one.

The event is acknowledged once what it asks is stored (a request, or the run's failure), so a
replica that dies before makes Slack deliver it again. The request's final state completes the step
later, through the outbox (bot/slack/render.py). A run whose request cannot be made (a bad
input, not a requester, not allowed by the rules, an open request for the email) fails at
once with the words the command would use, kept until Slack takes them
(bot/slack/step_failures.py). Slack delivers an event again when its ack is late:
a run that asked already gets its own request back from the service, never a second one.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.domain.inputs import InvalidInput
from bot.domain.model import WorkflowRun
from bot.domain.refusals import Refusal, Refused
from bot.slack import blocks
from bot.slack.deps import SlackDeps, deps_of
from bot.slack.step import read_inputs

log = logging.getLogger(__name__)


def step_executed(event: dict[str, Any], context: BoltContext, ack: Ack) -> None:
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
        words = _refused_words(deps, refused)
    except InvalidInput as exc:
        words = str(exc)
    else:
        ack()  # the request is stored: Slack need not deliver the event again
        log.info("Step run %s made request %s", execution_id, request.id)
        deps.approvals.look_up(request.id)
        return
    log.info("Step run %s: no request made: %s", execution_id, words)
    deps.step_failures.record(execution_id, words)
    ack()  # the failure is stored: sent now, and by every round until Slack takes it
    deps.step_failures.deliver_due()


def _refused_words(deps: SlackDeps, refused: Refused) -> str:
    """The command's words for a refusal; an open request for the email is pointed to (with a
    link to its message where Slack gives one), as the workflow's user cannot be sent one."""
    if refused.code is Refusal.OPEN_REQUEST and refused.request is not None:
        open_one = refused.request
        where = deps.notifier.permalink(open_one) or f"request {open_one.id}"
        return (
            f"This address already has an open request ({where}). A new one can be made once "
            "it is done."
        )
    return blocks.refusal_words(refused, mentions=False)
