"""Cost control: `[limits]` (per run), `[ledger]`, `[budgets]`, `[alerts]` and `[batch]`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agenthost.config.base import Section

__all__ = ["AlertSettings", "BatchSettings", "BudgetLimit", "BudgetSettings", "LedgerSettings", "RunLimits"]


class RunLimits(Section):
    """`[limits]`: what one run may use (per agent: `[agents.<name>.limits]`); unset = no limit."""

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


class LedgerSettings(Section):
    """`[ledger]`: the spend ledger (one row per model call), kept apart from conversations."""

    retention_days: int = Field(
        2557, ge=1, description="Rows older than this are deleted (default: 7 years, for financial records)."
    )


class BudgetLimit(Section):
    """A spend limit per UTC day and per UTC month; unset = no limit for that period."""

    daily_usd: float | None = Field(None, gt=0, description="Spend per UTC day, in USD.")
    monthly_usd: float | None = Field(None, gt=0, description="Spend per UTC month, in USD.")


class BudgetSettings(Section):
    """`[budgets]`: spend limits shared by every replica (database counters, or Redis when set)."""

    total: BudgetLimit = Field(default_factory=BudgetLimit, description="All spend together.")
    per_user: BudgetLimit = Field(
        default_factory=BudgetLimit, description="Each user (`user_id` of runs and completions) on its own."
    )
    per_agent: BudgetLimit = Field(default_factory=BudgetLimit, description="Each agent on its own.")
    per_key: BudgetLimit = Field(
        default_factory=BudgetLimit,
        description="Each API key on its own (a key's own `budgets` replace this for it).",
    )
    per_team: BudgetLimit = Field(default_factory=BudgetLimit, description="Each team (key or JWT owner).")
    teams: dict[str, BudgetLimit] = Field(
        default_factory=dict, description="Limits of named teams, replacing `per_team` for them."
    )
    users: dict[str, BudgetLimit] = Field(
        default_factory=dict, description="Limits of named users, replacing `per_user` for them."
    )
    agents: dict[str, BudgetLimit] = Field(
        default_factory=dict, description="Limits of named agents, replacing `per_agent` for them."
    )
    on_store_error: Literal["closed", "open"] = Field(
        "closed",
        description="When the budget store (Redis) cannot be reached: refuse calls (`closed`) or let "
        "them through unbudgeted (`open`, logged).",
    )


class AlertSettings(Section):
    """`[alerts]`: spend alerts, each fired once per threshold and period, logged and sent to webhooks."""

    budget_thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0],
        description="Fractions of each budget at which an alert fires (once per period).",
    )
    hourly_spend_usd: float = Field(
        10.0, ge=0, description="Alert when all spend in one UTC hour exceeds this (once per hour); 0: off."
    )
    run_cost_usd: float = Field(
        0.5, ge=0, description="Alert when one run costs more than this (cost-per-run anomaly); 0: off."
    )
    webhooks: list[str] = Field(
        default_factory=list, description="URLs that get each alert as Slack-compatible JSON (`text`)."
    )
    webhook_attempts: int = Field(5, ge=1, le=20, description="Delivery attempts per webhook, with backoff.")
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one delivery attempt.")


class BatchSettings(Section):
    """`[batch]`: runs with `"priority": "batch"` call models through the providers' batch APIs."""

    collect_seconds: float = Field(
        10.0, gt=0, description="How long calls are collected before they are sent as one batch."
    )
    max_requests: int = Field(1000, ge=1, description="A batch is sent at once when it has this many calls.")
    poll_seconds: float = Field(30.0, gt=0, description="How often a submitted batch's status is asked for.")
    discount: float = Field(
        0.5, ge=0, le=1, description="Price of a batched call as a fraction of list price (providers: 50 %)."
    )
