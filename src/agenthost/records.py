"""Typed records that cross layer boundaries: what a run emits, what a model call and a step
produced, who pays for a call and who may see a row.

This module is a leaf of the architecture (it imports no other agenthost package), so every
layer can speak these types: the gateway produces `CallRecord`s, the runtime wraps them in
`UsageRecord`s and step records, storage turns them into ledger rows, the server renders them.

Money is integer nano-dollars (1e-9 USD), so sums are exact on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACTIVE_STATUSES",
    "ERASED",
    "SAVINGS",
    "TERMINAL_STATUSES",
    "Attribution",
    "CallRecord",
    "Cost",
    "CostStatus",
    "EventType",
    "ModelStepRecord",
    "Payer",
    "RunStatus",
    "SamplingSettings",
    "Savings",
    "StepError",
    "ToolOutcome",
    "ToolStepRecord",
    "UsageRecord",
    "Visibility",
]


class EventType(StrEnum):
    """The type of a run event (the SSE `event:` field)."""

    RUN_STARTED = "run.started"
    TEXT_DELTA = "text.delta"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    APPROVAL_REQUIRED = "approval.required"
    APPROVAL_RESOLVED = "approval.resolved"
    USAGE = "usage"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_DEAD = "run.dead"
    RUN_CANCELLED = "run.cancelled"

    @property
    def terminal(self) -> bool:
        """Whether this is a run's last event: every reader stops at it."""
        return self in _TERMINAL_EVENTS

    @property
    def failure(self) -> bool:
        """Whether the run ended without its output (failed, dead or cancelled)."""
        return self.terminal and self is not EventType.RUN_COMPLETED


_TERMINAL_EVENTS = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_DEAD, EventType.RUN_CANCELLED}
)


class RunStatus(StrEnum):
    """A run's status: `queued` -> `running` (<-> `waiting_approval`) -> one of the ends."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.DEAD}
)
ACTIVE_STATUSES: frozenset[str] = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_APPROVAL})

CostStatus = Literal["none", "priced", "free", "cached", "unknown_model", "partial"]
"""How a cost was established: `priced` (from a price list), `free` (the local model), `cached`
(answered by agenthost's response cache), `unknown_model` (no price known: amount 0, never a
silent zero), `partial` (some calls of a run were priced, some unknown), `none` (no call yet)."""

ERASED = "[erased]"
"""What replaces erased free text (and an erased user's id in the audit log)."""

SAVINGS = ("routing", "response_cache", "prompt_cache", "batch")
"""The reasons a call can cost less than list price on the agent's own model (`Savings`)."""


class _Record(BaseModel):
    """Records are immutable and reject unknown fields, so a wrong shape fails where it is made."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Cost(_Record):
    nanousd: int = 0
    status: CostStatus = "none"

    @property
    def usd(self) -> float:
        return self.nanousd / 1e9


class Savings(_Record):
    """What a call saved against list price on the agent's primary model, in nano-USD (negative
    when a choice cost more); see `costs/savings.py`."""

    routing: int = 0
    response_cache: int = 0
    prompt_cache: int = 0
    batch: int = 0


class CallRecord(_Record):
    """What one model call produced: who served it, the tokens by kind, its price and savings."""

    model: str | None = None
    provider: str | None = None
    cached: bool = False
    """Answered by agenthost's response cache (exact or semantic): nothing was spent."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Cost = Field(default_factory=Cost)
    saved: Savings = Field(default_factory=Savings)
    duration_ms: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Attribution:
    """Whom a call is charged to and reported under (the ledger's and the report's dimensions)."""

    agent: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    team: str | None = None
    tier: str | None = None


class UsageRecord(CallRecord):
    """A call as a run reports it: the data of its `usage` event, and its ledger row's source."""

    step: int | None = None
    agent: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    team: str | None = None
    tier: str | None = None
    ledger: bool = True
    """False for calls a fork replays from the run it was forked from (paid for there)."""

    @property
    def attribution(self) -> Attribution:
        return Attribution(self.agent, self.user_id, self.key_id, self.team, self.tier)


class StepError(_Record):
    """Why a step failed, in what it records: a stable code and a message."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: str
    message: str


class ModelStepRecord(_Record):
    """What a model step records in DBOS (validated when written and when read back).

    `sealed` holds what the call said (the response and its text deltas), encrypted with the run's
    data key (`security/sealing.py`): erasing the key erases the content. The rest is accounting.
    """

    step: int | None = None
    call: CallRecord | None = None
    """None when the call was not made or failed."""
    error: StepError | None = None
    deltas: int = 0
    """How many text deltas the call streamed (replays re-emit exactly these)."""
    sealed: str | None = None
    duration_ms: float = 0.0


ToolOutcome = Literal["ok", "retry", "failed", "error", "unknown"]


class ToolStepRecord(_Record):
    """What a tool step records in DBOS: the outcome in clear, the value or error sealed."""

    step: int | None = None
    outcome: ToolOutcome
    sealed: str | None = None
    error_type: str | None = None
    """The exception class of an `error` outcome."""
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Payer:
    """The API key and team a call is charged to, beside its agent and user."""

    key_id: str | None = None
    key_budget: Mapping[str, Any] | None = None
    """The key's own daily/monthly limits (`BudgetLimit` fields), if it has any."""
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which rows (runs, threads, approvals, spend) a caller may see, as a value stores apply.

    `all`: every row. `team`: the caller's own and its team's. `own`: rows of the caller's user,
    or, for a credential without a user (a service key), the rows made with that key.
    """

    scope: Literal["all", "team", "own"] = "all"
    user_id: str | None = None
    key_id: str | None = None
    team: str | None = None

    @property
    def everything(self) -> bool:
        return self.scope == "all"

    def sees(self, row: Mapping[str, Any]) -> bool:
        """Whether a row keyed like a run (user_id, key_id, team) is visible."""
        if self.scope == "all":
            return True
        if self.scope == "team" and self.team is not None and row.get("team") == self.team:
            return True
        if self.user_id is not None:
            return row.get("user_id") == self.user_id
        return self.key_id is not None and row.get("key_id") == self.key_id


class SamplingSettings(BaseModel):
    """Sampling parameters a request asked of every model call of its run, under pydantic-ai's
    `ModelSettings` names (the front doors' `temperature`, `top_p`, `seed`, `stop`/`stop_sequences`).

    Stored in a run's spec as `dump()`; unknown keys of a later release are ignored on recovery."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    stop_sequences: list[str] | None = None

    def dump(self) -> dict[str, Any] | None:
        """The parameters that were given (plain JSON), or None when none were."""
        values = self.model_dump(exclude_none=True)
        if not values.get("stop_sequences"):
            values.pop("stop_sequences", None)
        return values or None
