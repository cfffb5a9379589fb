"""Custom steps (Workflow Builder steps an app provides): a way to run one, and the
functions.* Web API methods that end a run, as Slack documents them.

* `define_function(callback_id, definition)` registers a step as the manifest's `functions`
  entry declares it (manifest v1: `{name: {type, title, is_required, ...}}`; v2:
  `{"properties": {...}, "required": [...]}`). Optional: an undefined step runs too, its
  event lists no parameters and any outputs object is accepted.
* `run_function(callback_id, inputs, ...)` starts a run as a workflow would: a new
  `function_execution_id` (Fx…) and a run-scoped token (`bot_access_token`, xwfp-…), and
  returns the `function_executed` Events API envelope to deliver to the app (POST it as JSON,
  or send it in a Socket Mode `events_api` envelope).
* `functions.completeSuccess` (`function_execution_id`, `outputs`: an object, JSON text in a
  form body) and `functions.completeError` (`function_execution_id`, `error`: the text Slack
  shows the workflow's user) end a run once: `function_execution_not_found` for an id Slack
  never issued, `execution_not_in_running_state` for a run already ended (Slack's reference
  describes both; which one a second completion gets is not said: `answer_completed_with()`
  picks), `access_denied` for another run's token, `parameter_validation_failed` when the
  outputs break a defined step's output parameters, `invalid_arguments` for a missing id,
  outputs or error. Neither method needs a scope.
* Tokens: the run's token works for this run (and, as a workflow token, like the bot token for
  other methods) until the run ends (`token_revoked`) or `function_token_ttl` passes
  (`token_expired`); see `auth`. The app's bot token completes any run unless
  `let_bot_token_complete(False)`: Slack's reference lists bot tokens (no scope) for both
  methods and does not say the run's token is the only one; Bolt uses the run's token.
* `completions(execution_id)` reads back what ended a run (at most one, as Slack accepts one),
  `execution(execution_id)` the run itself, `function_scope(execution_id)` the fields Slack
  adds to an interaction with a message the run's token posted.

Sources: docs/research/workflow-step.md.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import time
from typing import Any

from bot.standins import payloads
from bot.standins.slack.state import (
    Answer,
    Completion,
    FunctionExecution,
    Params,
    Workspace,
    error_answer,
)

# A value of each primitive or Slack type as completeSuccess's outputs may carry it.
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "slack#/types/user_id": (str,),
    "slack#/types/channel_id": (str,),
    "slack#/types/usergroup_id": (str,),
    "slack#/types/timestamp": (int, float),
    "slack#/types/date": (str,),
    "slack#/types/message_ts": (str,),
}


def parameters_of(declared: Any) -> list[dict[str, Any]]:
    """A manifest's `input_parameters` / `output_parameters` (v1 or v2 shape) as the
    function_executed event lists them: `[{name, type, title, description, is_required}]`."""
    if not isinstance(declared, dict):
        return []
    if isinstance(declared.get("properties"), dict):  # manifest v2
        required = set(declared.get("required") or ())
        items = declared["properties"].items()
    else:  # manifest v1: each parameter says is_required itself
        required = {n for n, p in declared.items() if isinstance(p, dict) and p.get("is_required")}
        items = declared.items()
    listed = []
    for name, parameter in items:
        entry = {"type": parameter.get("type"), "name": name}
        for key in ("title", "description"):
            if key in parameter:
                entry[key] = parameter[key]
        entry["is_required"] = name in required
        listed.append(entry)
    return listed


def output_problems(parameters: list[dict[str, Any]], outputs: dict[str, Any]) -> list[str]:
    """Why `outputs` break the declared output parameters (empty: they do not)."""
    known = {p["name"]: p for p in parameters}
    problems = [f"unknown output {name!r}" for name in outputs if name not in known]
    for name, parameter in known.items():
        if name not in outputs or outputs[name] is None:
            if parameter.get("is_required"):
                problems.append(f"missing required output {name!r}")
            continue
        expected = _PYTHON_TYPES.get(str(parameter.get("type")))
        value = outputs[name]
        wrong_bool = isinstance(value, bool) and bool not in (expected or ())
        if expected is not None and (not isinstance(value, expected) or wrong_bool):
            problems.append(f"output {name!r} is not of type {parameter.get('type')}")
    return problems


class FunctionMethods(Workspace):
    """Custom step runs and the functions.* methods of `FakeSlack`."""

    # ------------------------------------------------------------------ set up

    def define_function(self, callback_id: str, definition: dict[str, Any]) -> None:
        """Declare a step as the manifest's `functions[callback_id]` does (title, description,
        input_parameters, output_parameters): its events list them, its outputs are checked."""
        with self._cond:
            self._functions[callback_id] = copy.deepcopy(definition)

    def let_bot_token_complete(self, allowed: bool) -> None:
        """Whether the app's bot token may complete a run (default True); when not, it gets
        `access_denied` and only the run's own token completes it."""
        with self._cond:
            self._bot_token_completes = allowed

    def answer_completed_with(self, error: str) -> None:
        """The error a run already ended answers to a second completion with a token still
        good (the bot token): "execution_not_in_running_state" (default) or
        "function_execution_not_found" (the example in Slack's reference)."""
        with self._cond:
            self._completed_error = error

    # ------------------------------------------------------------------ runs

    def run_function(
        self,
        callback_id: str,
        inputs: dict[str, Any],
        *,
        workflow: str | None = None,
        user: str | None = None,
        enterprise_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a run of the step `callback_id` with `inputs`, as a workflow does; returns the
        `function_executed` envelope to deliver to the app.

        `workflow` (the workflow's name) and `user` (who it ran for) are kept with the run for
        the reader (`execution()`): the event carries neither, as on Slack. `enterprise_id`:
        the org of an org-level install, in the envelope.
        """
        with self._cond:
            execution = FunctionExecution(
                execution_id=f"Fx{secrets.token_hex(6).upper()}",
                workflow_execution_id=f"Wx{secrets.token_hex(6).upper()}",
                callback_id=callback_id,
                inputs=copy.deepcopy(inputs),
                token=f"xwfp-{next(self._counter)}-{secrets.token_hex(16)}",
                issued=time.monotonic(),
                workflow=workflow,
                user=user,
            )
            self._executions[execution.execution_id] = execution
            self._function_tokens[execution.token] = execution.execution_id
            definition = self._functions.get(callback_id, {})
            self._cond.notify_all()
        return payloads.function_executed_payload(
            callback_id=callback_id,
            inputs=inputs,
            function_execution_id=execution.execution_id,
            workflow_execution_id=execution.workflow_execution_id,
            bot_access_token=execution.token,
            title=definition.get("title"),
            description=str(definition.get("description", "")),
            input_parameters=parameters_of(definition.get("input_parameters")),
            output_parameters=parameters_of(definition.get("output_parameters")),
            team_id=self.team_id,
            api_app_id=self.app_id,
            bot_user_id=self.bot_user_id,
            enterprise_id=enterprise_id,
        )

    def expire_function_token(self, execution_id: str) -> None:
        """Let the run's token expire now, as it does `function_token_ttl` after it was issued."""
        with self._cond:
            self._executions[execution_id].token_expired = True

    # --------------------------------------------------------------- reading back

    def completions(self, execution_id: str) -> list[Completion]:
        """What ended the run: [] while it runs, else its one completion."""
        with self._cond:
            found = self._executions[execution_id].completion
            return [] if found is None else [found]

    def execution(self, execution_id: str) -> FunctionExecution:
        """The run as Slack holds it now (a copy); KeyError for an id never issued."""
        with self._cond:
            return dataclasses.replace(self._executions[execution_id])

    def executions(self) -> list[FunctionExecution]:
        """Every run so far, oldest first (copies)."""
        with self._cond:
            return [dataclasses.replace(e) for e in self._executions.values()]

    def function_scope(self, execution_id: str) -> dict[str, Any]:
        """The fields Slack adds to an interaction payload (block_actions, view_submission)
        when the message or view was posted with the run's token: merge them into a payload
        from `payloads` (`payload | fake.function_scope(id)`); Bolt then gives its listener the
        run's `complete` / `fail` and uses the run's token."""
        with self._cond:
            execution = self._executions[execution_id]
            return {
                "function_data": {
                    "execution_id": execution.execution_id,
                    "function": {"callback_id": execution.callback_id},
                    "inputs": copy.deepcopy(execution.inputs),
                },
                "bot_access_token": execution.token,
                "interactivity": {
                    "interactivity_pointer": f"{time.time():.6f}.{secrets.token_hex(8)}"
                },
            }

    # ------------------------------------------------------------------ methods

    def _functions_complete_success(self, params: Params, token: str | None) -> Answer:
        outputs = params.get("outputs")
        if not isinstance(outputs, dict):
            return error_answer("invalid_arguments", messages=["outputs must be an object"])
        execution, problem = self._completable(params, token)
        if execution is None:
            return error_answer(problem or "function_execution_not_found")
        definition = self._functions.get(execution.callback_id)
        if definition is not None:
            declared = parameters_of(definition.get("output_parameters"))
            if problems := output_problems(declared, outputs):
                return error_answer("parameter_validation_failed", messages=problems)
        return self._complete(execution, str(token), outputs=copy.deepcopy(outputs))

    def _functions_complete_error(self, params: Params, token: str | None) -> Answer:
        error = params.get("error")
        if not isinstance(error, str) or not error:
            return error_answer("invalid_arguments", messages=["error must be a string"])
        execution, problem = self._completable(params, token)
        if execution is None:
            return error_answer(problem or "function_execution_not_found")
        return self._complete(execution, str(token), error=error)

    def _completable(
        self, params: Params, token: str | None
    ) -> tuple[FunctionExecution | None, str | None]:
        """The run these params name, if `token` may end it now; else (None, the error)."""
        execution_id = params.get("function_execution_id")
        if not isinstance(execution_id, str) or not execution_id:
            return None, "invalid_arguments"
        execution = self._executions.get(execution_id)
        if execution is None:
            return None, "function_execution_not_found"
        if token in self._function_tokens and token != execution.token:
            return None, "access_denied"  # "This actor does not have access to this execution"
        if token == self.bot_token and not self._bot_token_completes:
            return None, "access_denied"
        if not execution.running:
            return None, self._completed_error
        return execution, None

    def _complete(
        self,
        execution: FunctionExecution,
        token: str,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Answer:
        now = time.time()
        execution.completion = Completion(execution.execution_id, outputs, error, token, now)
        return {"ok": True}
