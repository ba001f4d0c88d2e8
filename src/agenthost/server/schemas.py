"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from agenthost.config.security import ScreeningSettings
from agenthost.records import SamplingSettings
from agenthost.server.openapi import INPUT_TEXT_MARK

__all__ = [
    "INPUT_TEXT",
    "MAX_AUDIT_SEQ",
    "MAX_EVENT_SEQ",
    "MAX_INT64",
    "MAX_OUTPUT_TOKENS",
    "MAX_STEP",
    "MIN_INT64",
    "AgentInfo",
    "Readiness",
    "RunAccepted",
    "RunCreate",
    "RunList",
    "RunView",
    "SeedRunCreate",
    "input_chars_limit",
    "run_view",
]

MAX_INPUT_CHARS = 200_000
"""Longest run input any request may carry; the limit in force is `input_chars_limit(settings)`."""
INPUT_TEXT: JsonDict = {INPUT_TEXT_MARK: True}
"""Marks the fields that carry a run's input: the OpenAPI document shows the limit in force
as their `maxLength` (`server.openapi.install_openapi`)."""
# Every integer a client sends is bounded before use: a value past what a column holds fails in
# the database driver (a 500, or an SSE stream cut after its 200) instead of as a 4xx.
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
MAX_EVENT_SEQ = 2**31 - 1
"""Largest run event number: `run_events.seq` is an INTEGER (32-bit on Postgres)."""
MAX_AUDIT_SEQ = MAX_INT64
"""Largest audit entry number: `audit_log.seq` is a BIGINT."""
MAX_STEP = 2**31 - 1
"""Largest step number (`runs.fork_step` and DBOS's step ids are INTEGERs)."""
MAX_OUTPUT_TOKENS = 1_000_000
"""Largest `max_tokens` a client may ask of one model call."""

Metadata = dict[str, str | int | float | bool | None]


def _integral(value: object) -> object:
    # Request bodies are strict (`"5"` is not a number), but JSON does not tell 5 from 5.0.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _bounded_metadata(value: Metadata | None) -> Metadata | None:
    # Labels are stored as JSON and handed back; an integer past 64 bits is not one a client can
    # read back reliably (JavaScript, most JSON libraries), so it is refused rather than stored.
    for key, item in (value or {}).items():
        if isinstance(item, int) and not MIN_INT64 <= item <= MAX_INT64:
            msg = f"metadata value {key!r} must be an integer between -2**63 and 2**63-1"
            raise ValueError(msg)
    return value


class LimitsRequest(BaseModel):
    """Run limits a request asks for; each only lowers the configured limit.

    Request bodies are read strictly (`strict=True`): JSON types as the OpenAPI document says
    (`"5"` is not an integer, `1` is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_cost_usd: float | None = Field(None, gt=0, le=1_000_000)
    max_model_steps: int | None = Field(None, ge=1, le=100_000)
    max_tool_calls: int | None = Field(None, ge=0, le=100_000)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000_000)
    max_seconds: float | None = Field(None, gt=0, le=31_536_000)

    _ints = field_validator("max_model_steps", "max_tool_calls", "max_tokens", mode="before")(_integral)


class RunCreate(BaseModel):
    """Body of `POST /v1/agents/{agent}/run|stream|runs`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str = Field(
        min_length=1,
        max_length=MAX_INPUT_CHARS,
        description="The user's message (at most `[screening] max_input_chars` characters; longer "
        "input, or input with control characters, is refused with 400 `input_rejected`).",
        json_schema_extra=INPUT_TEXT,
    )
    user_id: str | None = Field(None, min_length=1, max_length=256, description="End user, for filtering.")
    max_tokens: int | None = Field(
        None, ge=1, le=MAX_OUTPUT_TOKENS, description="Cap on output tokens per model call."
    )
    metadata: Metadata | None = Field(None, description="Free-form labels stored with the run.")
    thread_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="Conversation thread: the thread's earlier messages are given to the agent.",
    )
    if_busy: Literal["queue", "reject"] = Field(
        "queue", description="A run already in progress on the thread: wait behind it, or answer 409."
    )
    tier: Literal["simple", "medium", "complex"] | None = Field(
        None, description="Force the complexity tier of an agent that routes (otherwise it is classified)."
    )
    limits: LimitsRequest | None = Field(
        None, description="Lower this run's limits (the configured ones can never be raised)."
    )
    priority: Literal["interactive", "batch"] = Field(
        "interactive",
        description="`batch`: model calls go through the provider's batch API (cheaper, slower: "
        "minutes to hours); for background runs.",
    )
    temperature: float | None = Field(
        None, ge=0, le=2, description="Sampling temperature of every model call of the run."
    )
    top_p: float | None = Field(
        None, ge=0, le=1, description="Nucleus sampling of every model call of the run."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,  # a seed every provider that has one accepts (Gemini's is 32-bit)
        description="Sampling seed of every model call (providers that have one).",
    )
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        None, max_length=16, description="Stop sequences of every model call of the run."
    )

    _metadata = field_validator("metadata")(_bounded_metadata)
    _ints = field_validator("max_tokens", "seed", mode="before")(_integral)

    def sampling(self) -> SamplingSettings:
        """The sampling parameters every model call of the run uses (over the agent's own)."""
        return SamplingSettings(
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop_sequences=self.stop
        )


class SeedRunCreate(BaseModel):
    """Body of the seed-compatible `/agent/*` aliases: `prompt` instead of `input`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(
        min_length=1,
        max_length=MAX_INPUT_CHARS,
        description="The user's message (`input` is accepted too); limits as for `input`.",
        json_schema_extra=INPUT_TEXT,
    )
    user_id: str | None = Field(None, min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    model: str | None = Field(
        None, max_length=256, description="Recorded; the agent's configured model runs."
    )
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_bounded_metadata)
    _ints = field_validator("max_tokens", mode="before")(_integral)

    @model_validator(mode="before")
    @classmethod
    def _accept_input(cls, data: Any) -> Any:
        # Clients written against either API work: `input` is accepted as a synonym.
        if isinstance(data, dict) and "prompt" not in data and "input" in data:
            data = {**data, "prompt": data["input"]}
            del data["input"]
        return data


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    requests: int
    tool_calls: int


class Cost(BaseModel):
    usd: float = Field(description="Total price in US dollars.")
    nanousd: int = Field(description="The same, exact, in units of 1e-9 USD.")
    status: Literal["none", "priced", "free", "unknown_model", "partial"] = Field(
        description="`unknown_model`/`partial`: some calls had no known price and count as 0."
    )


class RunError(BaseModel):
    code: str
    message: str
    step: int | None = Field(None, description="The checkpointed step that failed (`dead` runs).")
    limit: str | None = Field(None, description="The limit or budget that stopped a `budget_exceeded` run.")


class RunView(BaseModel):
    """A run: status, and once finished, output, usage, cost, latency and steps."""

    id: str
    object: Literal["run"] = "run"
    agent: str
    status: Literal["queued", "running", "waiting_approval", "succeeded", "failed", "dead", "cancelled"]
    user_id: str | None
    thread_id: str | None
    tier: str | None = Field(None, description="Complexity tier the run was routed to, if its agent routes.")
    input: str
    output: Any = None
    error: RunError | None = None
    model: str | None
    usage: Usage
    cost: Cost
    latency_ms: float | None = Field(description="From acceptance to completion.")
    steps: int = Field(description="Checkpointed model and tool steps.")
    metadata: dict[str, Any] | None
    forked_from: str | None = Field(None, description="The run this one was forked from.")
    fork_step: int | None = Field(None, description="The step it was forked at.")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class RunAccepted(BaseModel):
    """A run that is still going: poll `location` or follow `events`."""

    id: str
    object: Literal["run"] = "run"
    status: str
    location: str
    events: str


class RunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RunView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class Readiness(BaseModel):
    """`GET /ready`: 200 when every check is `ok`, 503 otherwise."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description="`database`, `durability`: `ok` or the error; `agents`: how many."
    )
    breakers: dict[str, Any] = Field(description="Circuit breaker state per model (open ones do not fail).")


class AgentInfo(BaseModel):
    name: str
    description: str
    model: str
    default: bool
    prompt_version: str | None


def input_chars_limit(screening: ScreeningSettings) -> int:
    """The longest run input the server accepts: `[screening] max_input_chars` while screening
    is on (longer is a 400 `input_rejected`), never more than `MAX_INPUT_CHARS` (a 422)."""
    if not screening.enabled:
        return MAX_INPUT_CHARS
    return min(screening.max_input_chars, MAX_INPUT_CHARS)


def run_view(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of a run row (see `RunView`)."""
    created = row["created_at"]
    completed = row.get("completed_at")
    input_tokens = row.get("input_tokens") or 0
    output_tokens = row.get("output_tokens") or 0
    nanousd = row.get("cost_nanousd") or 0
    error = row.get("error")
    return {
        "id": row["id"],
        "object": "run",
        "agent": row["agent"],
        "status": row["status"],
        "user_id": row.get("user_id"),
        "thread_id": row.get("thread_id"),
        "tier": row.get("tier"),
        "input": (row.get("input") or {}).get("text", ""),
        "output": row.get("output"),
        "error": {
            "code": error["code"],
            "message": error["message"],
            "step": error.get("step"),
            "limit": error.get("limit"),
        }
        if error
        else None,
        "model": row.get("model"),
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "requests": row.get("requests") or 0,
            "tool_calls": row.get("tool_calls") or 0,
        },
        "cost": {"usd": nanousd / 1e9, "nanousd": nanousd, "status": row.get("cost_status") or "none"},
        "latency_ms": round((completed - created).total_seconds() * 1000, 3) if completed else None,
        "steps": row.get("steps") or 0,
        "metadata": row.get("metadata"),
        "forked_from": row.get("forked_from"),
        "fork_step": row.get("fork_step"),
        "created_at": created.isoformat(),
        "started_at": row["started_at"].isoformat() if row.get("started_at") else None,
        "completed_at": completed.isoformat() if completed else None,
    }


def seed_view(row: dict[str, Any]) -> dict[str, Any]:
    """A run with the seed tutorials' field names added beside agenthost's own."""
    view = run_view(row)
    view.update(
        response=view["output"], tokens_used=view["usage"]["total_tokens"], cost_usd=view["cost"]["usd"]
    )
    return view


class ApprovalDecision(BaseModel):
    """Body of `POST /v1/runs/{id}/approvals/{approval_id}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Literal["approve", "deny"]
    reason: str | None = Field(None, max_length=2000, description="Shown to the model on a denial.")
    by: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The person this decision is made for, recorded as `decided_for` (the decider is "
        "always the authenticated caller). Only roles that see all runs (operator, admin) may name "
        "someone other than themselves; for others it is a 403.",
    )


class ForkRequest(BaseModel):
    """Body of `POST /v1/runs/{id}/fork`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    from_step: int = Field(
        ge=1, le=MAX_STEP, description="First step to execute again; earlier steps replay."
    )

    _ints = field_validator("from_step", mode="before")(_integral)


def approval_view(row: dict[str, Any]) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row["id"],
        "object": "approval",
        "run_id": row["run_id"],
        "agent": row["agent"],
        "user_id": row["user_id"],
        "tool_call_id": row["tool_call_id"],
        "tool": row["tool_name"],
        "args": row["args"],
        "status": row["status"],
        "requested_at": iso(row["requested_at"]),
        "expires_at": iso(row["expires_at"]),
        "decided_at": iso(row["decided_at"]),
        "decided_by": row["decided_by"],
        "decided_for": row.get("decided_for"),
        "reason": row["reason"],
    }
