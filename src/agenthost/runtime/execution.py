"""One run of an agent inside the durable workflow.

`RunExecution` is created by the workflow, so a recovered run rebuilds it identically: every
number it hands out (event ids, step counts) depends only on the steps replayed, never on time.
How a run ends:

* `succeeded`: the agent produced its output;
* `failed`: the agent stopped by rule (a usage limit, its output never validated);
* `dead`: a model call or a tool failed, or the run crashed its server too often; the error says
  where, and `POST /v1/runs/{id}/resume` retries it from that step;
* `cancelled`: a client cancelled it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError
from pydantic_ai import messages as _messages
from pydantic_ai.exceptions import AgentRunError, UsageLimitExceeded, UserError
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.costs.guard import RunTotals, effective_limits
from agenthost.errors import BudgetExceededError, ModelError, ToolError
from agenthost.gateway.batch import BatchModel
from agenthost.gateway.cache import cache_scope
from agenthost.gateway.chain import primary_model
from agenthost.gateway.pricing import CostStatus
from agenthost.observability.metrics import RUNS_FINISHED
from agenthost.runtime.approvals import await_approvals
from agenthost.runtime.events import RunEvent
from agenthost.runtime.spec import configured_model
from agenthost.runtime.steps import DurableModel, RunCapability
from agenthost.security.policy import approval_required, tool_risk
from agenthost.settings import ToolConfig
from agenthost.storage.ledger import LedgerStore

if TYPE_CHECKING:
    from agenthost.runtime.registry import AgentEntry
    from agenthost.runtime.runtime import Runtime
    from agenthost.runtime.spec import RunSpec

__all__ = ["RunExecution"]

_log = structlog.get_logger(__name__)

_MESSAGES = _messages.ModelMessagesTypeAdapter
_DEFAULT_TOOL = ToolConfig()


class RunExecution:
    """Executes one run and owns its event numbering and running totals."""

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
        self.prompt_version: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.active_seconds = 0.0
        self.last_text = ""
        self._fork_step: int | None = None
        # The agent's own model: savings are measured against its list price.
        self.primary = primary_model(runtime.registry.get(spec.agent).model)
        agent_config = runtime.settings.agents.get(spec.agent)
        self.limits = effective_limits(
            runtime.settings.limits,
            agent_config.limits if agent_config else None,
            spec.limits,
            spec.key_limits,
        )
        self._tools = agent_config.tools if agent_config is not None else {}
        self.thread_id = spec.thread_id
        self._text = runtime.redaction.stream(spec.agent)

    async def _cost_anomaly(self) -> None:
        """Alert (once per run) when the run cost more than `[alerts] run_cost_usd`, and check
        the hour's spend."""
        if self.cost_nanousd:
            await self.runtime.budgets.check_hourly_spend(LedgerStore(self.runtime.engine))
        threshold = self.runtime.settings.alerts.run_cost_usd
        if not threshold or self.cost_nanousd <= threshold * 1e9:
            return
        message = f"run {self.run_id} of agent {self.spec.agent} cost ${self.cost_nanousd / 1e9:,.4f}"
        data = {"run_id": self.run_id, "agent": self.spec.agent, "cost_nanousd": self.cost_nanousd}
        await self.runtime.alerts.fire(f"run_cost:{self.run_id}", "run_cost", message, data)

    async def inherited(self, step: int | None) -> bool:
        """Whether `step` was copied from the run this one was forked from (read once, if needed)."""
        if self._fork_step is None:
            row = await self.runtime.store.get(self.run_id)
            self._fork_step = (row or {}).get("fork_step") or 0
        return step is not None and step < self._fork_step

    def totals(self) -> RunTotals:
        """What the run has used so far (from its recorded steps), for the guard."""
        tokens = self.input_tokens + self.output_tokens
        return RunTotals(self.cost_nanousd, self.model_steps, self.tool_steps, tokens, self.active_seconds)

    def emit(self, type_: str, data: dict[str, Any], *, live: bool = True) -> RunEvent:
        """Queue an event for storage and (unless `live` is False) publish it now.

        Its number is the next in the run. A run's last event is published only after the final
        write, so whoever sees it live can read the finished run.
        """
        fields = _REDACTED_FIELDS.get(type_)
        if fields:
            redaction = self.runtime.redaction
            data = {k: redaction.value(self.spec.agent, v) if k in fields else v for k, v in data.items()}
        self.seq += 1
        event = RunEvent(self.run_id, self.seq, type_, data)
        if live:
            self.runtime.bus.publish(event)
        self.runtime.writer.add(event)
        return event

    def emit_text(self, delta: str) -> None:
        """Emit streamed model text, redacted; text that may still be part of an entity is held
        back until the next delta or `flush_text`."""
        text = delta if self._text is None else self._text.feed(delta)
        if text:
            self.emit("text.delta", {"delta": text})

    def flush_text(self) -> None:
        """Emit the text held back at the end of a model call."""
        if self._text is not None and (text := self._text.flush()):
            self.emit("text.delta", {"delta": text})

    def reset_text(self) -> None:
        """Drop held text: the model call is made (or replayed) again from its start."""
        if self._text is not None:
            self._text.reset()

    async def flush_events(self) -> None:
        """Store the events emitted so far now (before a long wait)."""
        await self.runtime.writer.flush()

    def tool_config(self, name: str) -> ToolConfig:
        return self._tools.get(name, _DEFAULT_TOOL)

    def tool_risk(self, name: str) -> str:
        return tool_risk(self._tools.get(name), self.runtime.settings.default_tool_risk)

    def approval_required(self, name: str) -> bool:
        return approval_required(self._tools.get(name), self.runtime.settings.default_tool_risk)

    async def await_approvals(self, requests: DeferredToolRequests) -> DeferredToolResults:
        return await await_approvals(self, requests)

    async def execute(self) -> dict[str, Any]:
        entry = self.runtime.registry.get(self.spec.agent)
        if self.spec.queued:
            await self.runtime.store.mark_started(self.run_id, datetime.now(UTC))
        if self.thread_id is not None:
            # A fork of a thread's run replays the thread's history but does not add to it.
            row = await self.runtime.store.get(self.run_id)
            if row is None or row["thread_id"] != self.thread_id:
                self.thread_id = None
        self.model_name = entry.model_label
        self.prompt_version = entry.prompt_version
        self.runtime.bus.open(self.run_id)
        self.emit(
            "run.started", {"agent": entry.name, "model": entry.model_label, "thread_id": self.spec.thread_id}
        )
        try:
            output, new_messages = await self._run_agent(entry)
        except (asyncio.CancelledError, DBOSWorkflowCancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and self.run_id not in self.runtime.cancelled:
                raise  # shutdown: nothing is written, DBOS recovers the run on the next start
            self.runtime.cancelled.discard(self.run_id)
            last = self.emit("run.cancelled", {"status": "cancelled"}, live=False)
            await self._finish({"status": "cancelled"}, last=last)
            await self.runtime.approvals.close_pending(
                self.run_id, "cancelled", "the run was cancelled", _now()
            )
            raise
        except Exception as exc:
            status, error = _classify(exc)
            error.setdefault("seq", self.seq)
            last = self.emit(
                f"run.{'failed' if status == 'failed' else 'dead'}",
                {"status": status, "error": error, **self._totals()},
                live=False,
            )
            values: dict[str, Any] = {"status": status, "error": error, **self._counted()}
            if isinstance(exc, BudgetExceededError) and self.last_text:
                # What it produced before the limit.
                values["output"] = self.runtime.redaction.value(self.spec.agent, self.last_text)
            summary = await self._finish(values, last=last)
            _log.warning(
                "run_ended", run_id=self.run_id, status=status, code=error["code"], message=error["message"]
            )
            await self.runtime.approvals.close_pending(
                self.run_id, "cancelled", f"the run is {status}", _now()
            )
            return summary
        output = self.runtime.redaction.value(self.spec.agent, output)
        last = self.emit(
            "run.completed", {"status": "succeeded", "output": output, **self._totals()}, live=False
        )
        return await self._finish(
            {"status": "succeeded", "output": output, **self._counted()}, new_messages, last=last
        )

    async def _run_agent(self, entry: AgentEntry) -> tuple[Any, list[Any]]:
        deps = await entry.make_deps()
        settings: ModelSettings | None = None
        if self.spec.max_tokens is not None:
            settings = ModelSettings(max_tokens=self.spec.max_tokens)
        history = await self._thread_history()
        agent = entry.agent
        model = entry.model
        if self.spec.tier is not None:
            model = self.runtime.registry.gateway.tier_model(self.spec.tier)
            self.model_name = model.model_name
        if self.spec.priority == "batch":
            model = BatchModel(
                model, configured_model(self.runtime.settings, self.spec), self.runtime.batcher
            )
        # Never cache the answers of an agent whose tools have side effects: a cached answer would
        # skip a tool call that should have happened.
        side_effects = any(
            t.execution == "at_most_once" or self.approval_required(name) for name, t in self._tools.items()
        )
        cache_scope(enabled=not side_effects, tenant=self.spec.user_id)
        with agent.parallel_tool_call_execution_mode("sequential"):
            async with agent.iter(
                self.spec.input,
                model=DurableModel(model, self),
                deps=deps,
                model_settings=settings,
                message_history=history,
                capabilities=[RunCapability(self)],
            ) as agent_run:
                async for _node in agent_run:
                    pass
        result = agent_run.result
        assert result is not None
        # The run's usage is not pydantic-ai's `result.usage`: that counts only what ran in this
        # process (a replayed tool step never calls the tool), so after a recovery it falls short.
        # `_counted` adds up the recorded steps, replayed or executed.
        new_messages = _MESSAGES.dump_python(result.new_messages(), mode="json") if self.thread_id else []
        return to_jsonable_python(result.output), new_messages

    async def _thread_history(self) -> list[_messages.ModelMessage] | None:
        """The thread's messages so far, read once in a step so that a replay sees the same."""
        thread_id = self.spec.thread_id
        if thread_id is None:
            return _MESSAGES.validate_python(self.spec.history) if self.spec.history else None
        threads = self.runtime.threads

        async def load() -> list[Any]:
            return await threads.history(thread_id)

        stored = await DBOS.run_step_async({"name": "thread:load"}, load)
        return _MESSAGES.validate_python(stored) if stored else None

    def _counted(self) -> dict[str, int]:
        """The run's usage columns, from its recorded steps (replayed ones included)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.model_steps,
            "tool_calls": self.tool_steps,
        }

    def _totals(self) -> dict[str, Any]:
        """The usage, cost and step count of a run's last event."""
        return {
            "model": self.model_name,
            "usage": {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
                "requests": self.model_steps,
                "tool_calls": self.tool_steps,
            },
            "cost": {
                "usd": self.cost_nanousd / 1e9,
                "nanousd": self.cost_nanousd,
                "status": self.cost_status,
            },
            "steps": self.model_steps + self.tool_steps,
        }

    async def _finish(
        self, values: dict[str, Any], new_messages: list[Any] | None = None, *, last: RunEvent
    ) -> dict[str, Any]:
        """Write the final state, the remaining events and the thread's new messages together."""
        completed = datetime.now(UTC)
        values = {
            **values,
            "model": self.model_name,
            "cost_nanousd": self.cost_nanousd,
            "cost_status": self.cost_status,
            "steps": self.model_steps + self.tool_steps,
            "completed_at": completed,
        }
        thread_id = self.thread_id

        async def append_thread(conn: AsyncConnection) -> None:
            if thread_id is not None and new_messages:
                await self.runtime.threads.append(conn, thread_id, self.run_id, new_messages, completed)

        writer = self.runtime.writer
        async with writer.lock:
            events = [event.row() for event in writer.take(self.run_id)]
            await self.runtime.store.finish(self.run_id, values, events, also=append_thread)
        self.runtime.bus.close(self.run_id)
        RUNS_FINISHED.labels(self.spec.agent, values["status"]).inc()
        await self._cost_anomaly()
        self.runtime.bus.publish(last)
        return {key: value for key, value in values.items() if key != "completed_at"}


# Event fields that carry model output or tool data, redacted before they are stored or sent.
_REDACTED_FIELDS: dict[str, frozenset[str]] = {
    "tool.call": frozenset({"args"}),
    "tool.result": frozenset({"result", "error"}),
    "approval.required": frozenset({"args"}),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _classify(exc: Exception) -> tuple[str, dict[str, Any]]:
    """`dead` (resumable: an external failure) or `failed` (the agent stopped by rule), and why."""
    if isinstance(exc, BudgetExceededError):
        return "failed", {"code": exc.code, "message": exc.message, **(exc.details or {})}
    if isinstance(exc, ModelError) and exc.code == "context_length_exceeded":
        return "failed", {"code": exc.code, "message": exc.message, **(exc.details or {})}
    if isinstance(exc, (ModelError, ToolError)):
        return "dead", {"code": exc.code, "message": exc.message, **(exc.details or {})}
    if isinstance(exc, UsageLimitExceeded):
        return "failed", {"code": "usage_limit_exceeded", "message": str(exc)}
    if isinstance(exc, (AgentRunError, UserError)):
        return "failed", {"code": "agent_error", "message": str(exc), "type": type(exc).__name__}
    return "dead", {
        "code": "run_failed",
        "message": str(exc) or type(exc).__name__,
        "type": type(exc).__name__,
    }
