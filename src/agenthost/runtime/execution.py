"""One run of an agent inside the durable workflow.

`RunExecution` is created by the workflow, so a recovered run rebuilds it identically: every
number it hands out (event ids, step counts, in `RunState`) depends only on the steps replayed,
never on time. How a run ends (`errors.classify` decides between `failed` and `dead`):

* `succeeded`: the agent produced its output;
* `failed`: the agent stopped by rule (a limit, its output never validated, the context overflowed);
* `dead`: a model call or a tool failed, or the run crashed its server too often; the error says
  where, and `POST /v1/runs/{id}/resume` retries it from that step;
* `cancelled`: a client cancelled it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from dbos import DBOS
from dbos import error as dbos_error
from pydantic_ai import messages as _messages
from pydantic_ai.settings import ModelSettings
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.costs.guard import effective_limits
from agenthost.errors import AgentHostError, BudgetExceededError, classify
from agenthost.gateway.batch import BatchModel
from agenthost.gateway.cache import cache_scope
from agenthost.gateway.chain import primary_model
from agenthost.observability.metrics import RUNS_FINISHED
from agenthost.records import EventType, RunStatus, SamplingSettings
from agenthost.runtime.approvals import ApprovalWait
from agenthost.runtime.environment import RunEnvironment
from agenthost.runtime.events import RunEvent
from agenthost.runtime.spec import RunSpec, configured_model
from agenthost.runtime.state import RunState
from agenthost.runtime.steps import DurableModel, RunCapability, StepServices
from agenthost.security.sealing import Sealer
from agenthost.storage.runs import RunStart

__all__ = ["RunExecution"]

_log = structlog.get_logger(__name__)
_MESSAGES = _messages.ModelMessagesTypeAdapter


class RunExecution:
    """Executes one run: builds its state, runs the agent on durable steps, writes its end."""

    def __init__(self, env: RunEnvironment, run_id: str, spec: RunSpec, start: RunStart) -> None:
        self.env = env
        self.run_id = run_id
        self.spec = spec
        self.entry = env.registry.get(spec.agent)
        settings = env.settings
        agent_config = settings.agents.get(spec.agent)
        policies = env.policies
        self.state = RunState(
            run_id=run_id,
            spec=spec,
            limits=effective_limits(
                settings.limits, agent_config.limits if agent_config else None, spec.limits, spec.key_limits
            ),
            tools=env.tool_policy(spec.agent),
            primary=primary_model(self.entry.model),
            sealer=Sealer(start.data_key),
            sink=env.events,
            redaction=policies.redaction,
            fork_step=start.fork_step,
            model_name=self.entry.model_label,
            prompt_version=self.entry.prompt_version,
        )
        self.services = StepServices(
            budgets=policies.budgets,
            limiter=policies.limiter,
            screener=policies.screener,
            audit=policies.audit,
            prices=env.registry.gateway.prices,
            approvals=ApprovalWait(env.stores.approvals, env.stores.runs),
        )
        # A fork of a thread's run replays the thread's history but does not add to it.
        self.thread_id = spec.thread_id if start.thread_id == spec.thread_id else None

    async def execute(self) -> dict[str, Any]:
        """Run the agent to its end; the run's summary (what the workflow returns)."""
        state, env = self.state, self.env
        if self.spec.queued:
            await env.stores.runs.mark_started(self.run_id, datetime.now(UTC))
        env.bus.open(self.run_id)
        state.emit(
            EventType.RUN_STARTED,
            {"agent": self.entry.name, "model": self.entry.model_label, "thread_id": self.spec.thread_id},
        )
        try:
            output, new_messages = await self._run_agent()
        except (asyncio.CancelledError, dbos_error.DBOSWorkflowCancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and self.run_id not in env.local.cancelled:
                raise  # shutdown: nothing is written, DBOS recovers the run on the next start
            env.local.cancelled.discard(self.run_id)
            last = state.emit(EventType.RUN_CANCELLED, {"status": RunStatus.CANCELLED}, live=False)
            await self._finish({"status": RunStatus.CANCELLED}, last=last)
            await env.stores.approvals.close_pending(
                self.run_id, "cancelled", "the run was cancelled", _now()
            )
            raise
        except Exception as exc:
            return await self._failed(exc)
        output = env.policies.redaction.value(self.spec.agent, output)
        last = state.emit(
            EventType.RUN_COMPLETED,
            {"status": RunStatus.SUCCEEDED, "output": output, **state.summary()},
            live=False,
        )
        values = {"status": RunStatus.SUCCEEDED, "output": output, **state.usage_columns()}
        return await self._finish(values, new_messages, last=last)

    async def _failed(self, exc: Exception) -> dict[str, Any]:
        """End the run `failed` or `dead` (by `classify`), keeping what it produced so far."""
        state = self.state
        status = classify(exc).run_status
        error = _error(exc)
        error.setdefault("seq", state.seq)
        event = EventType.RUN_FAILED if status == "failed" else EventType.RUN_DEAD
        last = state.emit(event, {"status": status, "error": error, **state.summary()}, live=False)
        values: dict[str, Any] = {"status": status, "error": error, **state.usage_columns()}
        if isinstance(exc, BudgetExceededError) and state.last_text:
            # What it produced before the limit.
            values["output"] = self.env.policies.redaction.value(self.spec.agent, state.last_text)
        summary = await self._finish(values, last=last)
        _log.warning(
            "run_ended", run_id=self.run_id, status=status, code=error["code"], message=error["message"]
        )
        await self.env.stores.approvals.close_pending(
            self.run_id, "cancelled", f"the run is {status}", _now()
        )
        return summary

    async def _run_agent(self) -> tuple[Any, list[Any]]:
        env, state, entry = self.env, self.state, self.entry
        deps = await entry.make_deps()
        settings = _model_settings(self.spec)
        history = await self._thread_history()
        model = entry.model
        if self.spec.tier is not None:
            model = env.registry.gateway.tier_model(self.spec.tier)
            state.model_name = model.model_name
        if self.spec.priority == "batch":
            model = BatchModel(model, configured_model(env.settings, self.spec), env.batcher)
        # Never cache the answers of an agent whose tools have side effects: a cached answer would
        # skip a tool call that should have happened.
        cache_scope(enabled=not state.tools.side_effects, tenant=self.spec.user_id)
        with entry.agent.parallel_tool_call_execution_mode("sequential"):
            async with entry.agent.iter(
                self.spec.input,
                model=DurableModel(model, state, self.services),
                deps=deps,
                model_settings=settings,
                message_history=history,
                capabilities=[RunCapability(state, self.services)],
            ) as agent_run:
                async for _node in agent_run:
                    pass
        result = agent_run.result
        assert result is not None
        # The run's usage is not pydantic-ai's `result.usage`: that counts only what ran in this
        # process (a replayed tool step never calls the tool), so after a recovery it falls short.
        # `RunState` adds up the recorded steps, replayed or executed.
        # Earlier messages sent with the request join the thread too, before the run's own.
        added = [*(self.spec.history or []), *_MESSAGES.dump_python(result.new_messages(), mode="json")]
        return to_jsonable_python(result.output), added if self.thread_id else []

    async def _thread_history(self) -> list[_messages.ModelMessage] | None:
        """The thread's messages so far (read once in a step, sealed, so that a replay sees the
        same), then the earlier messages sent with the request."""
        thread_id = self.spec.thread_id
        sent = _MESSAGES.validate_python(self.spec.history) if self.spec.history else []
        if thread_id is None:
            return sent or None
        threads, state = self.env.stores.threads, self.state

        async def load() -> dict[str, str]:
            return state.seal(await threads.history(thread_id))

        stored = state.open(await DBOS.run_step_async({"name": "thread:load"}, load))
        return [*(_MESSAGES.validate_python(stored) if stored else []), *sent] or None

    async def _finish(
        self, values: dict[str, Any], new_messages: list[Any] | None = None, *, last: RunEvent
    ) -> dict[str, Any]:
        """Write the final state, the remaining events and the thread's new messages together;
        the summary DBOS records (sealed: it holds the output)."""
        env, state = self.env, self.state
        completed = datetime.now(UTC)
        values = {
            **values,
            "model": state.model_name,
            "cost_nanousd": state.cost_nanousd,
            "cost_status": state.cost_status,
            "steps": state.model_steps + state.tool_steps,
            "completed_at": completed,
        }
        thread_id = self.thread_id

        async def append_thread(conn: AsyncConnection) -> None:
            if thread_id is not None and new_messages:
                await env.stores.threads.append(conn, thread_id, self.run_id, new_messages, completed)

        writer = env.writer
        async with writer.lock:
            events = [event.row() for event in writer.take(self.run_id)]
            await env.stores.runs.finish(self.run_id, values, events, also=append_thread)
        env.bus.close(self.run_id)
        RUNS_FINISHED.labels(self.spec.agent, values["status"]).inc()
        await self._cost_anomaly()
        env.bus.publish(last)
        summary = {key: value for key, value in values.items() if key != "completed_at"}
        return {"status": str(values["status"]), **state.seal(to_jsonable_python(summary))}

    async def _cost_anomaly(self) -> None:
        """Alert (once per run) when the run cost more than `[alerts] run_cost_usd`, and check
        the hour's spend."""
        state, policies = self.state, self.env.policies
        if state.cost_nanousd:
            await policies.budgets.check_hourly_spend(self.env.stores.ledger)
        threshold = self.env.settings.alerts.run_cost_usd
        if not threshold or state.cost_nanousd <= threshold * 1e9:
            return
        message = f"run {self.run_id} of agent {self.spec.agent} cost ${state.cost_nanousd / 1e9:,.4f}"
        data = {"run_id": self.run_id, "agent": self.spec.agent, "cost_nanousd": state.cost_nanousd}
        await policies.alerts.fire(f"run_cost:{self.run_id}", "run_cost", message, data)


def _model_settings(spec: RunSpec) -> ModelSettings | None:
    """The run-level model settings (merged by pydantic-ai over the agent's own): the request's
    sampling parameters and its `max_tokens`."""
    sampling = SamplingSettings.model_validate(spec.model_settings or {}).dump() or {}
    settings = ModelSettings()
    settings.update(cast("ModelSettings", sampling))  # SamplingSettings fields are ModelSettings keys
    if spec.max_tokens is not None:
        settings["max_tokens"] = spec.max_tokens
    return settings or None


def _now() -> datetime:
    return datetime.now(UTC)


def _error(exc: Exception) -> dict[str, Any]:
    """What a failed run records of its exception: code and message, with agenthost's details."""
    failure = classify(exc)
    if isinstance(exc, AgentHostError):
        return {"code": exc.code, "message": exc.message, **(exc.details or {})}
    error: dict[str, Any] = {"code": failure.code, "message": str(exc) or type(exc).__name__}
    if failure.code != "usage_limit_exceeded":
        error["type"] = type(exc).__name__
    return error
