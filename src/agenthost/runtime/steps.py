"""Checkpointed steps of a run: model requests and tool calls, each a DBOS step.

agenthost attaches durability to an unmodified user agent at run time:

* `DurableModel` wraps the agent's model; each `request` is a step that streams from the provider
  (publishing text deltas live) and records the response, the deltas and the price, so a replay
  re-emits identical events without calling the model again;
* `RunCapability` is a run-time pydantic-ai capability: its `wrap_tool_execute` makes each tool
  call a step (pydantic-ai's own `DBOSDurability` does not checkpoint function tools, and must be
  built into the agent), asks for approval where configured, and its
  `handle_deferred_tool_calls` waits durably for the decisions.

Step outputs are plain JSON-able data, never pickled exceptions, so a later release can read them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from dbos import DBOS
from pydantic_ai import messages as _messages
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ApprovalRequired, ModelAPIError, ModelHTTPError, ModelRetry, ToolFailed
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, RunContext, ToolDefinition
from pydantic_core import to_jsonable_python

from agenthost.config.roles import risk_rank
from agenthost.costs.guard import check_model_call, check_tool_call, estimate_call
from agenthost.costs.savings import savings
from agenthost.errors import (
    BudgetExceededError,
    BudgetUnavailableError,
    ModelError,
    RateLimitedError,
    ToolError,
)
from agenthost.gateway.chain import AllModelsUnavailableError
from agenthost.gateway.context import ContextOverflowError, side_calls
from agenthost.gateway.openai_format import text_delta
from agenthost.gateway.pricing import call_fields, combine_status
from agenthost.observability.metrics import TOOL_OUTCOME_UNKNOWN as UNKNOWN_OUTCOMES
from agenthost.security.ratelimit import RateLimit, RateLimiter, wait_for_tokens

if TYPE_CHECKING:
    from agenthost.runtime.execution import RunExecution

__all__ = ["TOOL_OUTCOME_UNKNOWN", "DurableModel", "RunCapability", "model_step", "tool_step"]

_log = structlog.get_logger(__name__)
_RESPONSE = _messages.ModelMessagesTypeAdapter
TOOL_OUTCOME_UNKNOWN = "tool_outcome_unknown"
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def model_step(
    run: RunExecution,
    model: Model,
    messages: list[_messages.ModelMessage],
    settings: ModelSettings | None,
    parameters: ModelRequestParameters,
    *,
    estimate_nanousd: int,
) -> _messages.ModelResponse:
    """Call the model as a checkpointed step; on replay, re-emit its recorded deltas.

    The call's estimated cost is reserved on the run's budgets inside the step (so a replay
    reserves nothing) and settled at its real cost when it returns."""
    first_seq = run.seq
    executed = False

    async def call() -> dict[str, Any]:
        nonlocal executed
        executed = True
        run.seq = first_seq
        run.reset_text()
        budgets = run.runtime.budgets
        try:
            reservation = await budgets.reserve(
                run.spec.agent, run.spec.user_id, estimate_nanousd, run.spec.payer()
            )
        except (BudgetExceededError, BudgetUnavailableError) as exc:
            error = {"code": exc.code, "message": exc.message, **(exc.details or {})}
            return {"error": error, "deltas": [], "duration_ms": 0.0, "step": DBOS.step_id}
        limiter, who, overrides = _rate_scope(run)
        try:
            await wait_for_tokens(limiter, who, overrides)
        except RateLimitedError as exc:
            await budgets.settle(reservation, 0)
            error = {"code": exc.code, "message": exc.message, "retry_after": exc.retry_after}
            return {"error": error, "deltas": [], "duration_ms": 0.0, "step": DBOS.step_id}
        record = await _stream_model(run, model, messages, settings, parameters)
        await budgets.settle(reservation, record.get("cost_nanousd", 0))
        if record.get("tokens"):
            await limiter.record_tokens(who, record["tokens"], overrides)
        record["step"] = DBOS.step_id
        return record

    record = await DBOS.run_step_async({"name": f"model:{model.model_name}"}, call)
    if not executed:
        run.seq = first_seq
        run.reset_text()
        for delta in record["deltas"]:
            run.emit_text(delta)
    run.flush_text()
    if "error" in record:
        error = {**record["error"], "step": record.get("step"), "seq": first_seq}
        if error["code"] == BudgetExceededError.default_code:
            raise BudgetExceededError(record["error"]["message"], details=error)
        raise ModelError(record["error"]["message"], code=record["error"]["code"], details=error)
    response = _RESPONSE.validate_python([record["response"]])[0]
    assert isinstance(response, _messages.ModelResponse)
    run.model_steps += 1
    run.input_tokens += response.usage.input_tokens
    run.output_tokens += response.usage.output_tokens
    run.active_seconds += record["duration_ms"] / 1000
    text = "".join(p.content for p in response.parts if isinstance(p, _messages.TextPart))
    run.last_text = text or run.last_text
    run.model_name = response.model_name or run.model_name
    run.cost_nanousd += record["cost_nanousd"]
    run.cost_status = combine_status(run.cost_status, record["cost_status"])
    # A fork's steps before its fork point replay the original run's calls: no new spend.
    paid_here = executed or not await run.inherited(record.get("step"))
    run.emit(
        "usage",
        {
            **call_fields(response),
            "step": record.get("step"),
            "agent": run.spec.agent,
            "user_id": run.spec.user_id,
            "key_id": run.spec.key_id,
            "team": run.spec.team,
            "tier": run.spec.tier,
            "ledger": paid_here,
            "saved": savings(
                run.runtime.registry.gateway.prices, run.primary, response, record["cost_nanousd"]
            ),
            "cost": {"nanousd": record["cost_nanousd"], "status": record["cost_status"]},
            "duration_ms": record["duration_ms"],
        },
    )
    return response


_ERROR_CODES: dict[type[Exception], str] = {
    AllModelsUnavailableError: "all_models_unavailable",
    ContextOverflowError: "context_length_exceeded",
}


async def _stream_model(
    run: RunExecution,
    model: Model,
    messages: list[_messages.ModelMessage],
    settings: ModelSettings | None,
    parameters: ModelRequestParameters,
) -> dict[str, Any]:
    deltas: list[str] = []
    started = time.perf_counter()
    try:
        with side_calls() as summaries:
            async with model.request_stream(messages, settings, parameters) as stream:
                async for event in stream:
                    text = text_delta(event)
                    if text:
                        deltas.append(text)
                        run.emit_text(text)
                response = stream.get()
    except ModelAPIError as exc:
        code = _ERROR_CODES.get(type(exc), "model_error")
        error: dict[str, Any] = {"code": code, "message": str(exc), "model": model.model_name}
        if isinstance(exc, ModelHTTPError):
            error["status_code"] = exc.status_code
        return {"error": error, "deltas": deltas, "duration_ms": _ms(started)}
    prices = run.runtime.registry.gateway.prices
    price = prices.of(response, model.model_name)
    # Summaries written to fit the context are part of this step's cost.
    price = prices.total([price, *(prices.of(summary) for summary in summaries)])
    return {
        "tokens": response.usage.input_tokens + response.usage.output_tokens,
        "response": _RESPONSE.dump_python([response], mode="json")[0],
        "deltas": deltas,
        "cost_nanousd": price.nanousd,
        "cost_status": price.status,
        "duration_ms": _ms(started),
    }


async def screened_tool_output(run: RunExecution, value: Any) -> Any:
    """The tool's result as the model may see it: screened for indirect prompt injection (text,
    or the JSON of structured results), wrapped or withheld per `[screening] tool_output_action`."""
    screener = run.runtime.screener
    text = value if isinstance(value, str) else json.dumps(to_jsonable_python(value, fallback=str))
    screened = await screener.aenforce(text, source="tool")
    return value if screened == text else screened


def _rate_scope(run: RunExecution) -> tuple[RateLimiter, dict[str, str | None], dict[str, RateLimit] | None]:
    """The run's rate-limit identities (its key and user) and its key's own limits."""
    limiter = run.runtime.limiter
    overrides = limiter.key_overrides(run.spec.key_rate_limits)
    return limiter, {"key": run.spec.key_id, "user": run.spec.user_id}, overrides


async def tool_step(
    run: RunExecution, call: _messages.ToolCallPart, args: dict[str, Any], handler: Handler
) -> Any:
    """Run one tool call as a checkpointed step; a replay returns the recorded result.

    An `at_most_once` tool first records that it is starting, in a step of its own. If a replay
    finds that record but no result, the process died inside the call: the call is not made again,
    and the agent gets a `tool_outcome_unknown` failure.
    """
    name = call.tool_name
    base = {"tool_call_id": call.tool_call_id, "name": name}
    run.emit("tool.call", {**base, "args": to_jsonable_python(args, fallback=str)})
    interrupted = False
    resume_step: int | None = None
    if run.tool_config(name).execution == "at_most_once":
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
            message = (
                f"{TOOL_OUTCOME_UNKNOWN}: the server stopped while `{name}` was running; it may or may "
                "not have taken effect, and it is not run again automatically"
            )
            # Inside the step, so that a later replay of the recorded outcome does not report it again.
            UNKNOWN_OUTCOMES.labels(run.spec.agent, name).inc()
            _log.warning(
                TOOL_OUTCOME_UNKNOWN,
                run_id=run.run_id,
                agent=run.spec.agent,
                tool=name,
                tool_call_id=call.tool_call_id,
                step=step,
                started_step=resume_step,
            )
            return {"outcome": "unknown", "error": message, "duration_ms": 0.0, "step": step}
        await run.runtime.audit.append(
            "tool.called",
            actor="system",
            actor_user=None,
            subject_user=run.spec.user_id,
            target=run.run_id,
            details={
                "tool": name,
                "args": to_jsonable_python(args, fallback=str),
                "risk": run.tool_risk(name),
            },
            model=run.model_name,
            prompt_version=run.prompt_version,
            dedupe_key=f"tool.called:{run.run_id}:{step}",
        )
        started = time.perf_counter()
        try:
            value = await screened_tool_output(run, await handler(args))
        except ModelRetry as exc:
            return {"outcome": "retry", "error": exc.message, "duration_ms": _ms(started), "step": step}
        except ToolFailed as exc:
            return {"outcome": "failed", "error": str(exc), "duration_ms": _ms(started), "step": step}
        except Exception as exc:
            error = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
            return {"outcome": "error", "error": error, "duration_ms": _ms(started), "step": step}
        return {"outcome": "ok", "value": value, "duration_ms": _ms(started), "step": step}

    first_seq = run.seq
    record = await DBOS.run_step_async({"name": f"tool:{name}"}, body)
    run.tool_steps += 1
    run.active_seconds += record["duration_ms"] / 1000
    return _tool_outcome(run, base, record, resume_step, first_seq)


def _tool_outcome(
    run: RunExecution, base: dict[str, Any], record: dict[str, Any], resume_step: int | None, first_seq: int
) -> Any:
    """Emit the tool's result and hand it to pydantic-ai: a value, a retry, a failure or an error."""
    name = base["name"]
    outcome = record["outcome"]
    if outcome == "ok":
        result = to_jsonable_python(record["value"], fallback=str)
        run.emit(
            "tool.result", {**base, "outcome": "ok", "result": result, "duration_ms": record["duration_ms"]}
        )
        return record["value"]
    run.emit(
        "tool.result",
        {**base, "outcome": outcome, "error": record["error"], "duration_ms": record["duration_ms"]},
    )
    if outcome == "retry":
        raise ModelRetry(record["error"])
    if outcome == "error":
        details = {**record["error"], "tool": name, "step": resume_step or record["step"], "seq": first_seq}
        raise ToolError(
            f"tool {name!r} raised {record['error']['type']}: {record['error']['message']}", details=details
        )
    raise ToolFailed(record["error"])


class DurableModel(WrapperModel):
    """The agent's model, with each request made as a DBOS step of the run."""

    def __init__(self, wrapped: Model, run: RunExecution) -> None:
        super().__init__(wrapped)
        self._run = run

    async def request(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        run = self._run
        output = (model_settings or {}).get("max_tokens") or run.limits.output_tokens_estimate
        prices = run.runtime.registry.gateway.prices
        tokens, nanousd = estimate_call(prices, self.wrapped, messages, model_request_parameters, output)
        check_model_call(run.limits, run.totals(), tokens, nanousd)
        return await model_step(
            run, self.wrapped, messages, model_settings, model_request_parameters, estimate_nanousd=nanousd
        )


class RunCapability(AbstractCapability[Any]):
    """Run-time capability: tool calls as steps, approval where configured, durable approval waits."""

    def __init__(self, run: RunExecution) -> None:
        super().__init__()
        self._run = run

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
        return [t for t in tool_defs if risk_rank(self._run.tool_risk(t.name)) <= allowed]

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: _messages.ToolCallPart,
        tool_def: ToolDefinition,  # noqa: ARG002
        args: dict[str, Any],
        handler: Handler,
    ) -> Any:
        if self._run.approval_required(call.tool_name) and not ctx.tool_call_approved:
            # pydantic-ai collects the call as a deferred approval request, then asks
            # `handle_deferred_tool_calls` below for the decisions, and re-runs approved calls here.
            raise ApprovalRequired(metadata={"agenthost": "approval"})
        check_tool_call(self._run.limits, self._run.totals())
        return await tool_step(self._run, call, args, handler)

    async def handle_deferred_tool_calls(
        self,
        ctx: RunContext[Any],  # noqa: ARG002
        *,
        requests: DeferredToolRequests,
    ) -> DeferredToolResults | None:
        if not requests.approvals:
            return None
        return await self._run.await_approvals(requests)
