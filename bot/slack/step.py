"""The Workflow Builder step "Verify email with approval": its declaration (inputs, outputs), its
inputs read as untrusted, and the outputs a final request completes it with.

Slack runs the step by sending ``function_executed`` (bot/slack/listeners/step.py makes the
request, as the command and form do); the request's final state completes it through the
outbox (bot/slack/render.py, Notice.COMPLETE_STEP). Sources: docs/research/workflow-step.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bot.domain.inputs import InvalidInput
from bot.domain.model import Action, AuditEntry, Operation, State, VerificationRequest
from bot.domain.outcomes import Cleared

# The step's callback_id, as the manifest declares it and Slack sends it.
STEP_CALLBACK_ID: Final = "verify_email"
STEP_TITLE: Final = "Verify email with approval"
STEP_DESCRIPTION: Final = (
    "Asks the approvers in the approval channel to clear (or resend) a stuck email "
    "verification; completes once the request is decided and carried out."
)

# The states a step completes in: final ones (an unknown outcome waits for Retry or Resolved).
COMPLETING_STATES: Final = frozenset(
    {
        State.SUCCEEDED,
        State.FAILED,
        State.RESOLVED,
        State.REJECTED,
        State.EXPIRED,
        State.CANCELLED,
    }
)

# The manifest's declaration (manifest v1: each parameter by name, ``is_required`` on each).
INPUTS: Final[dict[str, dict[str, Any]]] = {
    "email": {
        "type": "string",
        "title": "Email",
        "description": "The address whose verification is stuck",
        "is_required": True,
    },
    "reason": {
        "type": "string",
        "title": "Reason",
        "description": "Why, or a ticket reference (shown to the approvers, kept in the audit)",
        "is_required": True,
    },
    "requested_by": {
        "type": "slack#/types/user_id",
        "title": "Requested by",
        "description": "The person the workflow runs for: asks as they would with the command",
        "is_required": True,
    },
    "operation": {
        "type": "string",
        "title": "Operation",
        "description": "confirm (clear the stuck verification, the default) or resend",
        "hint": "confirm or resend",
        "is_required": False,
    },
}
OUTPUTS: Final[dict[str, dict[str, Any]]] = {
    "state": {
        "type": "string",
        "title": "State",
        "description": "succeeded, failed, resolved, rejected, expired or cancelled",
        "is_required": True,
    },
    "decided_by": {
        "type": "slack#/types/user_id",
        "title": "Decided by",
        "description": "Who approved, rejected, resolved or cancelled it (none: expired)",
        "is_required": False,
    },
    "cleared_domains": {
        "type": "string",
        "title": "Cleared domains",
        "description": "The domains the provider cleared, comma-separated",
        "is_required": False,
    },
    "clients_notified": {
        "type": "string",
        "title": "Clients notified",
        "description": "The provider's clients it notified, comma-separated",
        "is_required": False,
    },
    "provider_request_id": {
        "type": "string",
        "title": "Provider request id",
        "description": "The provider's requestId of the call that decided it",
        "is_required": False,
    },
    "request_link": {
        "type": "string",
        "title": "Request link",
        "description": "A link to the request message in the approval channel",
        "is_required": False,
    },
    "retries": {
        "type": "integer",
        "title": "Retries",
        "description": "How often an approver retried an outcome nobody knew",
        "is_required": True,
    },
    "note": {
        "type": "string",
        "title": "Note",
        "description": "The rejecter's reason, or why an unknown outcome was closed as resolved",
        "is_required": False,
    },
}

# Longest a text input may be before it is refused (Slack's own limits are larger).
_MAX_INPUT = 2000


@dataclass(frozen=True)
class StepInputs:
    """What a step run asked for, read from its untrusted inputs."""

    email: str
    reason: str
    requested_by: str
    operation: Operation


def read_inputs(inputs: object) -> StepInputs:
    """The step's inputs, checked for shape only (the service validates their meaning, as for
    the form); raises InvalidInput with words for the workflow's user."""
    if not isinstance(inputs, dict):
        raise InvalidInput("The step received no inputs.")

    def text(name: str, *, required: bool = True) -> str:
        value = inputs.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise InvalidInput(f"The step's input {name} is missing.")
            return ""
        if not isinstance(value, str):
            raise InvalidInput(f"The step's input {name} is not text.")
        if len(value) > _MAX_INPUT:
            raise InvalidInput(f"The step's input {name} is too long.")
        return value.strip()

    requested_by = text("requested_by")
    if not (requested_by[:1] in ("U", "W") and requested_by[1:].isalnum()):
        raise InvalidInput("The step's input requested_by is not a Slack user.")
    operation_word = text("operation", required=False).lower() or Operation.CONFIRM.value
    try:
        operation = Operation(operation_word)
    except ValueError:
        raise InvalidInput(
            f"The step's input operation must be confirm or resend, not {operation_word[:40]!r}."
        ) from None
    return StepInputs(text("email"), text("reason"), requested_by, operation)


def outputs_of(
    request: VerificationRequest, trail: list[AuditEntry], link: str | None
) -> dict[str, Any]:
    """What a final request completes its step with (``trail``: its audit log)."""
    outputs: dict[str, Any] = {
        "state": request.state.value,
        "retries": sum(1 for e in trail if e.action == Action.RETRY.value),
    }
    if request.decided_by:
        outputs["decided_by"] = request.decided_by
    outcome = request.items[0].outcome if len(request.items) == 1 else None
    if isinstance(outcome, Cleared):
        outputs["cleared_domains"] = ", ".join(outcome.cleared_domains)
        outputs["clients_notified"] = ", ".join(str(c) for c in outcome.clients_notified)
    provider_request_id = getattr(outcome, "provider_request_id", None)
    if isinstance(provider_request_id, str) and provider_request_id:
        outputs["provider_request_id"] = provider_request_id
    if link:
        outputs["request_link"] = link
    if request.decision_note:
        outputs["note"] = request.decision_note
    return outputs
