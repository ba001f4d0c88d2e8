"""One run of an agent inside the durable workflow: every model request and tool call is a DBOS step.

agenthost attaches durability to an unmodified user agent at run time:

* the agent's model is wrapped in `DurableModel`, whose `request` runs as a checkpointed step. The
  step streams from the provider, publishing text deltas live, and records the response, the
  deltas and the price, so a replay re-emits the same events without calling the model again;
* a run-time capability wraps each tool execution in a checkpointed step (pydantic-ai's own
  `DBOSDurability` does not checkpoint function tools, and needs to be built into the agent);
* tools run sequentially inside the workflow, because DBOS numbers steps in the order they start.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError
from pydantic_ai import messages as _messages
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError, ModelRetry, ToolFailed, UsageLimitExceeded
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_core import to_jsonable_python

from agenthost.errors import ModelError
from agenthost.gateway.pricing import CostStatus, combine_status, price_call
from agenthost.runtime.events import RunEvent

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from agenthost.runtime.registry import AgentEntry
    from agenthost.runtime.runtime import Runtime
    from agenthost.runtime.spec import RunSpec

__all__ = ["RunExecution"]

_RESPONSE = _messages.ModelMessagesTypeAdapter


class RunExecution:
    """Executes one run; created by the workflow, so it is rebuilt identically on recovery."""

    def __init__(self, runtime: Runtime, run_id: str, spec: RunSpec) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.spec = spec
        self.seq = 0
        self.model_steps = 0
        self.tool_steps = 0
        self.cost_nanousd = 0
        self.cost_status: CostStatus = "none"
        self.model_name: str | None = None

    def emit(self, type_: str, data: dict[str, Any]) -> RunEvent:
        """Publish an event live and queue it for storage; its number is the next in the run."""
        self.seq += 1
        event = RunEvent(self.run_id, self.seq, type_, data)
        self.runtime.bus.publish(event)
        self.runtime.writer.add(event)
        return event

    async def execute(self) -> dict[str, Any]:
        entry = self.runtime.registry.get(self.spec.agent)
        started = datetime.now(UTC)
        if self.spec.queued:
            await self.runtime.store.mark_started(self.run_id, started)
        self.model_name = entry.model_label
        self.runtime.bus.open(self.run_id)
        self.emit("run.started", {"agent": entry.name, "model": entry.model_label})
        try:
            output, usage = await self._run_agent(entry)
        except (asyncio.CancelledError, DBOSWorkflowCancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and self.run_id not in self.runtime.cancelled:
                raise  # shutdown: nothing is written, DBOS recovers the run on the next start
            self.runtime.cancelled.discard(self.run_id)
            self.emit("run.cancelled", {"status": "cancelled"})
            await self._finish({"status": "cancelled"})
            raise
        except Exception as exc:
            error = _describe_error(exc)
            self.emit("run.failed", {"status": "failed", "error": error, **self._totals(None)})
            return await self._finish({"status": "failed", "error": error})
        totals = self._totals(usage)
        self.emit("run.completed", {"status": "succeeded", "output": output, **totals})
        return await self._finish({"status": "succeeded", "output": output, **_usage_columns(usage)})

    async def _run_agent(self, entry: AgentEntry) -> tuple[Any, dict[str, int]]:
        deps = await entry.make_deps()
        settings: ModelSettings | None = None
        if self.spec.max_tokens is not None:
            settings = ModelSettings(max_tokens=self.spec.max_tokens)
        agent = entry.agent
        with agent.parallel_tool_call_execution_mode("sequential"):
            async with agent.iter(
                self.spec.input,
                model=DurableModel(entry.model, self),
                deps=deps,
                model_settings=settings,
                capabilities=[_ToolSteps(self)],
            ) as agent_run:
                async for _node in agent_run:
                    pass
        result = agent_run.result
        assert result is not None
        usage = result.usage
        return to_jsonable_python(result.output), {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "requests": usage.requests,
            "tool_calls": usage.tool_calls,
        }

    def _totals(self, usage: dict[str, int] | None) -> dict[str, Any]:
        usage = usage or {}
        input_tokens = usage.get("input_tokens", 0)
        output_tokens = usage.get("output_tokens", 0)
        return {
            "model": self.model_name,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "requests": usage.get("requests", self.model_steps),
                "tool_calls": usage.get("tool_calls", self.tool_steps),
            },
            "cost": {
                "usd": self.cost_nanousd / 1e9,
                "nanousd": self.cost_nanousd,
                "status": self.cost_status,
            },
            "steps": self.model_steps + self.tool_steps,
        }

    async def _finish(self, values: dict[str, Any]) -> dict[str, Any]:
        completed = datetime.now(UTC)
        values = {
            **values,
            "model": self.model_name,
            "cost_nanousd": self.cost_nanousd,
            "cost_status": self.cost_status,
            "steps": self.model_steps + self.tool_steps,
            "completed_at": completed,
        }
        writer = self.runtime.writer
        async with writer.lock:
            events = [event.row() for event in writer.take(self.run_id)]
            await self.runtime.store.finish(self.run_id, values, events)
        self.runtime.bus.close(self.run_id)
        return {key: value for key, value in values.items() if key != "completed_at"}

    # --- steps -----------------------------------------------------------------------------

    async def model_step(
        self,
        model: Model,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        """Call the model as a checkpointed step; on replay, re-emit its recorded deltas."""
        first_seq = self.seq
        executed = False

        async def call() -> dict[str, Any]:
            nonlocal executed
            executed = True
            self.seq = first_seq
            return await self._stream_model(model, messages, settings, parameters)

        record = await DBOS.run_step_async({"name": f"model:{model.model_name}"}, call)
        if not executed:
            self.seq = first_seq
            for delta in record["deltas"]:
                self.emit("text.delta", {"delta": delta})
        if "error" in record:
            raise ModelError(record["error"]["message"], details=record["error"])
        response = _RESPONSE.validate_python([record["response"]])[0]
        assert isinstance(response, _messages.ModelResponse)
        self.model_steps += 1
        self.model_name = response.model_name or self.model_name
        self.cost_nanousd += record["cost_nanousd"]
        self.cost_status = combine_status(self.cost_status, record["cost_status"])
        self.emit(
            "usage",
            {
                "model": response.model_name,
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
                "cache_read_tokens": response.usage.cache_read_tokens,
                "cache_write_tokens": response.usage.cache_write_tokens,
                "cost": {"nanousd": record["cost_nanousd"], "status": record["cost_status"]},
                "duration_ms": record["duration_ms"],
            },
        )
        return response

    async def _stream_model(
        self,
        model: Model,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> dict[str, Any]:
        deltas: list[str] = []
        started = time.perf_counter()
        try:
            async with model.request_stream(messages, settings, parameters) as stream:
                async for event in stream:
                    text = _text_of(event)
                    if text:
                        deltas.append(text)
                        self.emit("text.delta", {"delta": text})
                response = stream.get()
        except ModelAPIError as exc:
            # Recorded as data, not as a pickled exception, so replays and upgrades can read it.
            error: dict[str, Any] = {"code": "model_error", "message": str(exc), "model": model.model_name}
            if isinstance(exc, ModelHTTPError):
                error["status_code"] = exc.status_code
            return {"error": error, "deltas": deltas, "duration_ms": _ms(started)}
        price = price_call(response.model_name or model.model_name, response.provider_name, response.usage)
        return {
            "response": _RESPONSE.dump_python([response], mode="json")[0],
            "deltas": deltas,
            "cost_nanousd": price.nanousd,
            "cost_status": price.status,
            "duration_ms": _ms(started),
        }

    async def tool_step(
        self,
        call: _messages.ToolCallPart,
        args: dict[str, Any],
        handler: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> Any:
        """Run one tool call as a checkpointed step; a replay returns the recorded result."""
        base = {"tool_call_id": call.tool_call_id, "name": call.tool_name}
        self.emit("tool.call", {**base, "args": to_jsonable_python(args, fallback=str)})

        async def body() -> tuple[str, Any, float]:
            started = time.perf_counter()
            try:
                return "ok", await handler(args), _ms(started)
            except ModelRetry as exc:
                return "retry", exc.message, _ms(started)
            except ToolFailed as exc:
                return "failed", str(exc), _ms(started)

        outcome, value, duration = await DBOS.run_step_async({"name": f"tool:{call.tool_name}"}, body)
        self.tool_steps += 1
        if outcome == "ok":
            result = to_jsonable_python(value, fallback=str)
            self.emit("tool.result", {**base, "outcome": "ok", "result": result, "duration_ms": duration})
            return value
        self.emit("tool.result", {**base, "outcome": outcome, "error": value, "duration_ms": duration})
        if outcome == "retry":
            raise ModelRetry(value)
        raise ToolFailed(value)


class DurableModel(WrapperModel):
    """The agent's model, with each request made as a DBOS step of the run."""

    def __init__(self, wrapped: Model, execution: RunExecution) -> None:
        super().__init__(wrapped)
        self._execution = execution

    async def request(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        return await self._execution.model_step(
            self.wrapped, messages, model_settings, model_request_parameters
        )


class _ToolSteps(AbstractCapability[Any]):
    """Run-time capability that makes every tool execution a checkpointed step."""

    def __init__(self, execution: RunExecution) -> None:
        super().__init__()
        self._execution = execution

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],  # noqa: ARG002
        *,
        call: _messages.ToolCallPart,
        tool_def: ToolDefinition,  # noqa: ARG002
        args: dict[str, Any],
        handler: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> Any:
        return await self._execution.tool_step(call, args, handler)


def _text_of(event: _messages.ModelResponseStreamEvent) -> str:
    if isinstance(event, _messages.PartStartEvent) and isinstance(event.part, _messages.TextPart):
        return event.part.content
    if isinstance(event, _messages.PartDeltaEvent) and isinstance(event.delta, _messages.TextPartDelta):
        return event.delta.content_delta
    return ""


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _usage_columns(usage: dict[str, int]) -> dict[str, int]:
    return {key: usage[key] for key in ("input_tokens", "output_tokens", "requests", "tool_calls")}


def _describe_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ModelError):
        return {"code": exc.code, "message": exc.message, **(exc.details or {})}
    if isinstance(exc, UsageLimitExceeded):
        return {"code": "usage_limit_exceeded", "message": str(exc)}
    return {"code": "run_failed", "message": str(exc) or type(exc).__name__, "type": type(exc).__name__}
