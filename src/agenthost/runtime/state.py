"""A run's state while it executes: its event numbering, running totals, tool policy and seal.

`RunState` is what the durable steps (`steps.py`) and approval waits (`approvals.py`) share with
the run (`execution.py`): they read and advance it, and emit events only through it. Every number
it hands out depends on the steps replayed, never on time, so a recovered run rebuilds it
identically and its events keep their ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.models import Model

from agenthost.config.agents import ToolConfig
from agenthost.costs.guard import Limits, RunTotals
from agenthost.gateway.pricing import combine_status
from agenthost.records import CostStatus, EventType, UsageRecord
from agenthost.runtime.events import EventBus, EventWriter, RunEvent
from agenthost.runtime.spec import RunSpec
from agenthost.security.output import OutputRedaction, StreamRedactor
from agenthost.security.policy import approval_required, tool_risk
from agenthost.security.sealing import Sealer

__all__ = ["EventSink", "RunState", "ToolPolicy"]

_DEFAULT_TOOL = ToolConfig()
# Event fields that carry model output or tool data, redacted before they are stored or sent.
_REDACTED_FIELDS: dict[EventType, frozenset[str]] = {
    EventType.TOOL_CALL: frozenset({"args"}),
    EventType.TOOL_RESULT: frozenset({"result", "error"}),
    EventType.APPROVAL_REQUIRED: frozenset({"args"}),
}


@dataclass(frozen=True)
class EventSink:
    """Where a run's events go: the live bus of this process, and the batched database writer."""

    bus: EventBus
    writer: EventWriter


@dataclass(frozen=True)
class ToolPolicy:
    """How an agent's tools are executed and approved (`[agents.<n>.tools]`, `default_tool_risk`)."""

    tools: dict[str, ToolConfig]
    default_risk: str
    default_approval_timeout: float

    def config(self, name: str) -> ToolConfig:
        return self.tools.get(name, _DEFAULT_TOOL)

    def risk(self, name: str) -> str:
        return tool_risk(self.tools.get(name), self.default_risk)

    def approval_required(self, name: str) -> bool:
        return approval_required(self.tools.get(name), self.default_risk)

    def approval_timeout(self, name: str) -> float:
        return self.config(name).approval_timeout_seconds or self.default_approval_timeout

    @property
    def side_effects(self) -> bool:
        """Whether any tool has effects a cached answer would skip (at-most-once or approved)."""
        return any(t.execution == "at_most_once" or self.approval_required(n) for n, t in self.tools.items())


@dataclass
class RunState:
    """One run's numbering, totals and event emission (see the module docstring)."""

    run_id: str
    spec: RunSpec
    limits: Limits
    tools: ToolPolicy
    primary: Model
    """The agent's own model: savings are measured against its list price."""
    sealer: Sealer
    """Seals what the run's steps record in DBOS (the run's data key)."""
    sink: EventSink
    redaction: OutputRedaction
    fork_step: int = 0
    """Steps before this one were copied from the run this one was forked from (0: not a fork)."""
    seq: int = 0
    model_steps: int = 0
    tool_steps: int = 0
    cost_nanousd: int = 0
    cost_status: CostStatus = "none"
    input_tokens: int = 0
    output_tokens: int = 0
    active_seconds: float = 0.0
    model_name: str | None = None
    prompt_version: str | None = None
    last_text: str = ""
    finish_reason: str = "stop"
    """Why the last model call stopped (`gateway.frontdoor.FinishReason`): the run's finish reason."""
    _text: StreamRedactor | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._text = self.redaction.stream(self.spec.agent)

    # -- what the run has used ---------------------------------------------------------------

    def totals(self) -> RunTotals:
        """What the run has used so far (from its recorded steps), for the guard."""
        tokens = self.input_tokens + self.output_tokens
        return RunTotals(self.cost_nanousd, self.model_steps, self.tool_steps, tokens, self.active_seconds)

    def inherited(self, step: int | None) -> bool:
        """Whether `step` was copied from the run this one was forked from (paid for there)."""
        return step is not None and step < self.fork_step

    def add_model_call(self, usage: UsageRecord, text: str, finish_reason: str = "stop") -> None:
        """Count a model step (executed or replayed), its text and why it stopped."""
        self.model_steps += 1
        self.finish_reason = finish_reason
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.active_seconds += usage.duration_ms / 1000
        self.last_text = text or self.last_text
        self.model_name = usage.model or self.model_name
        self.cost_nanousd += usage.cost.nanousd
        self.cost_status = combine_status(self.cost_status, usage.cost.status)

    def add_tool_call(self, duration_ms: float) -> None:
        """Count a tool step (executed or replayed, whatever its outcome)."""
        self.tool_steps += 1
        self.active_seconds += duration_ms / 1000

    def usage_columns(self) -> dict[str, int]:
        """The run's usage columns, from its recorded steps (replayed ones included)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.model_steps,
            "tool_calls": self.tool_steps,
        }

    def summary(self) -> dict[str, Any]:
        """The usage, cost and step count a run's last event reports."""
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
            "finish_reason": self.finish_reason,
        }

    # -- events ------------------------------------------------------------------------------

    def emit(self, type_: EventType, data: dict[str, Any], *, live: bool = True) -> RunEvent:
        """Queue an event for storage and (unless `live` is False) publish it now.

        Its number is the next in the run. A run's last event is published only after the final
        write, so whoever sees it live can read the finished run.
        """
        fields = _REDACTED_FIELDS.get(type_)
        if fields:
            agent = self.spec.agent
            data = {k: self.redaction.value(agent, v) if k in fields else v for k, v in data.items()}
        self.seq += 1
        event = RunEvent(self.run_id, self.seq, type_, data)
        if live:
            self.sink.bus.publish(event)
        self.sink.writer.add(event)
        return event

    def emit_text(self, delta: str) -> None:
        """Emit streamed model text, redacted; text that may still be part of an entity is held
        back until the next delta or `flush_text`."""
        text = delta if self._text is None else self._text.feed(delta)
        if text:
            self.emit(EventType.TEXT_DELTA, {"delta": text})

    def flush_text(self) -> None:
        """Emit the text held back at the end of a model call."""
        if self._text is not None and (text := self._text.flush()):
            self.emit(EventType.TEXT_DELTA, {"delta": text})

    def reset_text(self, seq: int) -> None:
        """A model call is made (or replayed) again from its start, at event number `seq`."""
        self.seq = seq
        if self._text is not None:
            self._text.reset()

    async def flush_events(self) -> None:
        """Store the events emitted so far now (before a long wait)."""
        await self.sink.writer.flush()

    # -- what DBOS records ---------------------------------------------------------------------

    def seal(self, value: Any) -> dict[str, str]:
        """`value` as a step records it: sealed with the run's key (`security/sealing.py`)."""
        return {"sealed": self.sealer.seal(value)}

    def open(self, recorded: Any) -> Any:
        """What a step recorded, opened (records from before sealing pass as they are)."""
        if isinstance(recorded, dict) and set(recorded) == {"sealed"}:
            return self.sealer.open(recorded["sealed"])
        return recorded
