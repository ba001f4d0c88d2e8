"""Checkpointed steps of a run: model requests and tool calls, each a DBOS step.

agenthost attaches durability to an unmodified user agent at run time:

* `DurableModel` wraps the agent's model; each `request` is a step that streams from the provider
  (publishing text deltas live) and records the call (`ModelStepRecord`): its accounting in clear,
  its response and text deltas sealed with the run's key, so a replay re-emits identical events
  without calling the model again;
* `RunCapability` is a run-time pydantic-ai capability: its `wrap_tool_execute` makes each tool
  call a step (`ToolStepRecord`; pydantic-ai's own `DBOSDurability` does not checkpoint function
  tools, and must be built into the agent), asks for approval where configured, and its
  `handle_deferred_tool_calls` waits durably for the decisions (`approvals.py`).

Step outputs are validated records of plain JSON, never pickled exceptions, so a later release
can read them; what they say about the conversation is sealed (`security/sealing.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from dbos import DBOS
from pydantic_ai import messages as _messages
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ApprovalRequired, ModelAPIError, ModelRetry, ToolFailed
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, RunContext, ToolDefinition
from pydantic_core import to_jsonable_python

from agenthost.config.roles import risk_rank
from agenthost.costs.budgets import Budgets
from agenthost.costs.guard import check_model_call, check_tool_call, estimate_call
from agenthost.costs.savings import call_record
from agenthost.errors import (
    BudgetExceededError,
    BudgetUnavailableError,
    ErrorCode,
    ModelError,
    RateLimitedError,
    ToolError,
    classify,
)
from agenthost.gateway.context import side_calls
from agenthost.gateway.frontdoor import finish_reason_of
from agenthost.gateway.openai_format import text_delta
from agenthost.gateway.pricing import PriceBook
from agenthost.observability.metrics import TOOL_OUTCOME_UNKNOWN as UNKNOWN_OUTCOMES
from agenthost.records import EventType, ModelStepRecord, StepError, ToolStepRecord, UsageRecord
from agenthost.runtime.approvals import ApprovalWait, await_approvals
from agenthost.runtime.state import RunState
from agenthost.security.audit import AuditLog
from agenthost.security.ratelimit import RateLimiter, wait_for_tokens
from agenthost.security.screening import Screener

__all__ = ["DurableModel", "ModelCall", "RunCapability", "StepServices", "model_step", "tool_step"]

_log = structlog.get_logger(__name__)
_RESPONSE = _messages.ModelMessagesTypeAdapter
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class StepServices:
    """What a run's steps use besides the run's own state."""

    budgets: Budgets
    limiter: RateLimiter
    screener: Screener
    audit: AuditLog
    prices: PriceBook
    approvals: ApprovalWait


@dataclass(frozen=True)
class ModelCall:
    """One model request as pydantic-ai makes it: the model and the request's three parts."""

    model: Model
    messages: list[_messages.ModelMessage]
    settings: ModelSettings | None
    parameters: ModelRequestParameters


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def model_step(
    run: RunState, services: StepServices, request: ModelCall, *, estimate_nanousd: int
) -> _messages.ModelResponse:
    """Call the model as a checkpointed step; on replay, re-emit its recorded deltas.

    The call's estimated cost is reserved on the run's budgets inside the step (so a replay
    reserves nothing) and settled at its real cost when it returns."""
    first_seq = run.seq
    executed = False

    async def call() -> dict[str, Any]:
        nonlocal executed
        executed = True
        run.reset_text(first_seq)
        record = await _call_model(run, services, request, estimate_nanousd)
        return record.model_copy(update={"step": DBOS.step_id}).model_dump(mode="json")

    record = ModelStepRecord.model_validate(
        await DBOS.run_step_async({"name": f"model:{request.model.model_name}"}, call)
    )
    content = run.sealer.open(record.sealed) if record.sealed is not None else {"deltas": []}
    if not executed:
        run.reset_text(first_seq)
        for delta in content["deltas"]:
            run.emit_text(delta)
    run.flush_text()
    if record.error is not None or record.call is None:
        error = record.error or StepError(
            code=ErrorCode.MODEL_ERROR, message="the model call recorded nothing"
        )
        details = {**error.model_dump(), "step": record.step, "seq": first_seq}
        if error.code == ErrorCode.BUDGET_EXCEEDED:
            raise BudgetExceededError(error.message, details=details)
        raise ModelError(error.message, code=ErrorCode(error.code), details=details)
    response = _RESPONSE.validate_python([content["response"]])[0]
    assert isinstance(response, _messages.ModelResponse)
    usage = UsageRecord(
        **record.call.model_dump(),
        step=record.step,
        agent=run.spec.agent,
        user_id=run.spec.user_id,
        key_id=run.spec.key_id,
        team=run.spec.team,
        tier=run.spec.tier,
        # A fork's steps before its fork point replay the original run's calls: no new spend.
        ledger=executed or not run.inherited(record.step),
    )
    text = "".join(p.content for p in response.parts if isinstance(p, _messages.TextPart))
    run.add_model_call(usage, text, finish_reason_of(response))
    run.emit(EventType.USAGE, usage.model_dump(mode="json"))
    return response


async def _call_model(
    run: RunState, services: StepServices, request: ModelCall, estimate_nanousd: int
) -> ModelStepRecord:
    """The body of a model step: reserve the budget, wait for tokens, stream the call, settle."""
    budgets = services.budgets
    try:
        reservation = await budgets.reserve(
            run.spec.agent, run.spec.user_id, estimate_nanousd, run.spec.payer()
        )
    except (BudgetExceededError, BudgetUnavailableError) as exc:
        return ModelStepRecord(error=StepError(code=exc.code, message=exc.message, **(exc.details or {})))
    limiter = services.limiter
    overrides = limiter.key_overrides(run.spec.key_rate_limits)
    who = {"key": run.spec.key_id, "user": run.spec.user_id}
    try:
        await wait_for_tokens(limiter, who, overrides)
    except RateLimitedError as exc:
        await budgets.settle(reservation, 0)
        error = StepError(code=exc.code, message=exc.message, retry_after=exc.retry_after)
        return ModelStepRecord(error=error)
    record = await _stream_model(run, services, request)
    await budgets.settle(reservation, record.call.cost.nanousd if record.call else 0)
    if record.call is not None and record.call.tokens:
        await limiter.record_tokens(who, record.call.tokens, overrides)
    return record


async def _stream_model(run: RunState, services: StepServices, request: ModelCall) -> ModelStepRecord:
    model = request.model
    deltas: list[str] = []
    started = time.perf_counter()
    try:
        with side_calls() as summaries:
            async with model.request_stream(request.messages, request.settings, request.parameters) as stream:
                async for event in stream:
                    text = text_delta(event)
                    if text:
                        deltas.append(text)
                        run.emit_text(text)
                response = stream.get()
    except ModelAPIError as exc:
        extra: dict[str, Any] = {"model": model.model_name}
        if (status := getattr(exc, "status_code", None)) is not None:
            extra["status_code"] = status
        error = StepError(code=classify(exc).code, message=str(exc), **extra)
        sealed = run.sealer.seal({"deltas": deltas})
        return ModelStepRecord(error=error, deltas=len(deltas), sealed=sealed, duration_ms=_ms(started))
    duration = _ms(started)
    call = call_record(
        services.prices,
        run.primary,
        response,
        summaries=summaries,  # written to fit the context: part of this step's cost
        model_name=model.model_name,
        duration_ms=duration,
    )
    content = {"response": _RESPONSE.dump_python([response], mode="json")[0], "deltas": deltas}
    return ModelStepRecord(
        call=call, deltas=len(deltas), sealed=run.sealer.seal(content), duration_ms=duration
    )


async def screened_tool_output(screener: Screener, value: Any) -> Any:
    """The tool's result as the model may see it: screened for indirect prompt injection (text,
    or the JSON of structured results), wrapped or withheld per `[screening] tool_output_action`."""
    text = value if isinstance(value, str) else json.dumps(to_jsonable_python(value, fallback=str))
    screened = await screener.aenforce(text, source="tool")
    return value if screened == text else screened


async def tool_step(
    run: RunState,
    services: StepServices,
    call: _messages.ToolCallPart,
    args: dict[str, Any],
    handler: Handler,
) -> Any:
    """Run one tool call as a checkpointed step; a replay returns the recorded result.

    An `at_most_once` tool first records that it is starting, in a step of its own. If a replay
    finds that record but no result, the process died inside the call: the call is not made again,
    and the agent gets a `tool_outcome_unknown` failure.
    """
    name = call.tool_name
    base = {"tool_call_id": call.tool_call_id, "name": name}
    run.emit(EventType.TOOL_CALL, {**base, "args": to_jsonable_python(args, fallback=str)})
    interrupted = False
    resume_step: int | None = None
    if run.tools.config(name).execution == "at_most_once":
        marked_now = False

        async def mark() -> int | None:
            nonlocal marked_now
            marked_now = True
            return DBOS.step_id

        # Resuming a dead run from here runs the tool again: the operator asked for it.
        resume_step = await DBOS.run_step_async({"name": f"tool-start:{name}"}, mark)
        interrupted = not marked_now

    async def body() -> dict[str, Any]:
        step = DBOS.step_id
        if interrupted:
            return _unknown_outcome(run, call, step, resume_step).model_dump(mode="json")
        await services.audit.append(
            "tool.called",
            actor="system",
            actor_user=None,
            subject_user=run.spec.user_id,
            target=run.run_id,
            details={
                "tool": name,
                "args": to_jsonable_python(args, fallback=str),
                "risk": run.tools.risk(name),
            },
            model=run.model_name,
            prompt_version=run.prompt_version,
            dedupe_key=f"tool.called:{run.run_id}:{step}",
        )
        return (
            (await _run_tool(run, services, args, handler))
            .model_copy(update={"step": step})
            .model_dump(mode="json")
        )

    first_seq = run.seq
    record = ToolStepRecord.model_validate(await DBOS.run_step_async({"name": f"tool:{name}"}, body))
    run.add_tool_call(record.duration_ms)
    return _tool_outcome(run, base, record, resume_step, first_seq)


async def _run_tool(
    run: RunState, services: StepServices, args: dict[str, Any], handler: Handler
) -> ToolStepRecord:
    started = time.perf_counter()
    try:
        value = await screened_tool_output(services.screener, await handler(args))
    except ModelRetry as exc:
        return ToolStepRecord(outcome="retry", sealed=run.sealer.seal(exc.message), duration_ms=_ms(started))
    except ToolFailed as exc:
        return ToolStepRecord(outcome="failed", sealed=run.sealer.seal(str(exc)), duration_ms=_ms(started))
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        return ToolStepRecord(
            outcome="error",
            sealed=run.sealer.seal(message),
            error_type=type(exc).__name__,
            duration_ms=_ms(started),
        )
    return ToolStepRecord(
        outcome="ok",
        sealed=run.sealer.seal(to_jsonable_python(value, fallback=str)),
        duration_ms=_ms(started),
    )


def _unknown_outcome(
    run: RunState, call: _messages.ToolCallPart, step: int | None, started_step: int | None
) -> ToolStepRecord:
    """The step of an at-most-once call the process died inside: reported once (in the step, so
    a later replay of the recorded outcome does not report it again)."""
    name = call.tool_name
    message = (
        f"{ErrorCode.TOOL_OUTCOME_UNKNOWN}: the server stopped while `{name}` was running; it may or may "
        "not have taken effect, and it is not run again automatically"
    )
    UNKNOWN_OUTCOMES.labels(run.spec.agent, name).inc()
    _log.warning(
        ErrorCode.TOOL_OUTCOME_UNKNOWN,
        run_id=run.run_id,
        agent=run.spec.agent,
        tool=name,
        tool_call_id=call.tool_call_id,
        step=step,
        started_step=started_step,
    )
    return ToolStepRecord(outcome="unknown", sealed=run.sealer.seal(message), step=step)


def _tool_outcome(
    run: RunState, base: dict[str, Any], record: ToolStepRecord, resume_step: int | None, first_seq: int
) -> Any:
    """Emit the tool's result and hand it to pydantic-ai: a value, a retry, a failure or an error."""
    name = base["name"]
    content = run.sealer.open(record.sealed) if record.sealed is not None else None
    if record.outcome == "ok":
        run.emit(
            EventType.TOOL_RESULT,
            {**base, "outcome": "ok", "result": content, "duration_ms": record.duration_ms},
        )
        return content
    error: Any = content
    if record.outcome == "error":
        error = {"type": record.error_type, "message": content}
    run.emit(
        EventType.TOOL_RESULT,
        {**base, "outcome": record.outcome, "error": error, "duration_ms": record.duration_ms},
    )
    if record.outcome == "retry":
        raise ModelRetry(str(content))
    if record.outcome == "error":
        details = {**error, "tool": name, "step": resume_step or record.step, "seq": first_seq}
        raise ToolError(f"tool {name!r} raised {record.error_type}: {content}", details=details)
    raise ToolFailed(str(content))


class DurableModel(WrapperModel):
    """The agent's model, with each request made as a DBOS step of the run."""

    def __init__(self, wrapped: Model, run: RunState, services: StepServices) -> None:
        super().__init__(wrapped)
        self._run = run
        self._services = services

    async def request(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        run = self._run
        output = (model_settings or {}).get("max_tokens") or run.limits.output_tokens_estimate
        prices = self._services.prices
        tokens, nanousd = estimate_call(prices, self.wrapped, messages, model_request_parameters, output)
        check_model_call(run.limits, run.totals(), tokens, nanousd)
        request = ModelCall(self.wrapped, messages, model_settings, model_request_parameters)
        return await model_step(run, self._services, request, estimate_nanousd=nanousd)


class RunCapability(AbstractCapability[Any]):
    """Run-time capability: tool calls as steps, approval where configured, durable approval waits."""

    def __init__(self, run: RunState, services: StepServices) -> None:
        super().__init__()
        self._run = run
        self._services = services

    async def prepare_tools(
        self,
        ctx: RunContext[Any],  # noqa: ARG002
        tool_defs: list[ToolDefinition],
    ) -> list[ToolDefinition]:
        """Offer the model only the tools the caller's role may use (by each tool's risk)."""
        ceiling = self._run.spec.max_tool_risk
        if ceiling is None:
            return tool_defs
        allowed = risk_rank(ceiling)
        return [t for t in tool_defs if risk_rank(self._run.tools.risk(t.name)) <= allowed]

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: _messages.ToolCallPart,
        tool_def: ToolDefinition,  # noqa: ARG002
        args: dict[str, Any],
        handler: Handler,
    ) -> Any:
        if self._run.tools.approval_required(call.tool_name) and not ctx.tool_call_approved:
            # pydantic-ai collects the call as a deferred approval request, then asks
            # `handle_deferred_tool_calls` below for the decisions, and re-runs approved calls here.
            raise ApprovalRequired(metadata={"agenthost": "approval"})
        check_tool_call(self._run.limits, self._run.totals())
        return await tool_step(self._run, self._services, call, args, handler)

    async def handle_deferred_tool_calls(
        self,
        ctx: RunContext[Any],  # noqa: ARG002
        *,
        requests: DeferredToolRequests,
    ) -> DeferredToolResults | None:
        if not requests.approvals:
            return None
        return await await_approvals(self._run, self._services.approvals, requests)
