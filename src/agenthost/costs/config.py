"""Settings sections of cost control (part of `agenthost.settings.Settings`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LedgerSettings", "RunLimits"]


class RunLimits(BaseModel):
    """`[limits]`: what one run may use (per agent: `[agents.<name>.limits]`); unset = no limit."""

    model_config = ConfigDict(extra="forbid")

    max_cost_usd: float | None = Field(1.0, gt=0, description="Spend per run, in USD.")
    max_model_steps: int | None = Field(15, ge=1, description="Model calls per run.")
    max_tool_calls: int | None = Field(50, ge=0, description="Tool calls per run.")
    max_tokens: int | None = Field(10_000, ge=1, description="Input plus output tokens per run.")
    max_seconds: float | None = Field(
        None,
        gt=0,
        description="Time spent in model and tool calls per run (approval waits and downtime excluded).",
    )
    output_tokens_estimate: int = Field(
        512,
        ge=1,
        description="Output tokens assumed for a model call that sets no `max_tokens`, when checking "
        "limits before the call.",
    )


class LedgerSettings(BaseModel):
    """`[ledger]`: the spend ledger (one row per model call), kept apart from conversations."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(
        2557, ge=1, description="Rows older than this are deleted (default: 7 years, for financial records)."
    )
