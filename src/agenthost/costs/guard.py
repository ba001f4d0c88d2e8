"""Run guards: per-run limits on cost, model steps, tool calls, tokens and active time.

The guard is asked before every model call, with an estimate of that call (the prompt's tokens,
estimated from the messages, plus its maximum output), and before every tool call. A call that
would cross a limit is not made: the run ends `failed` with `budget_exceeded`, naming the limit,
and keeps what it produced (events, steps, the text so far). So a limit is crossed by at most
the error of one call's estimate.

Limits come from `[limits]`, lowered or raised per agent by `[agents.<name>.limits]`, and may
only be lowered by a request (`"limits": {...}` in the body). Every quantity the guard compares
is recomputed from recorded steps on replay, so a recovered run stops where the original would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.usage import RequestUsage

from agenthost.config.costs import RunLimits
from agenthost.errors import BudgetExceededError
from agenthost.gateway.chain import primary_model
from agenthost.gateway.context import estimate_tokens
from agenthost.gateway.pricing import PriceBook

__all__ = ["BudgetExceededError", "Limits", "RunTotals", "effective_limits", "estimate_call"]


@dataclass(frozen=True)
class Limits:
    """The limits one run is held to; None means no limit."""

    max_cost_nanousd: int | None
    max_model_steps: int | None
    max_tool_calls: int | None
    max_tokens: int | None
    max_seconds: float | None
    output_tokens_estimate: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_cost_usd": None if self.max_cost_nanousd is None else self.max_cost_nanousd / 1e9,
            "max_model_steps": self.max_model_steps,
            "max_tool_calls": self.max_tool_calls,
            "max_tokens": self.max_tokens,
            "max_seconds": self.max_seconds,
        }


def _lowest(*values: Any) -> Any:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def effective_limits(
    defaults: RunLimits,
    agent: RunLimits | None,
    requested: dict[str, Any] | None,
    key: dict[str, Any] | None = None,
) -> Limits:
    """The agent's limits (its own, else the defaults) with the API key's own limits replacing
    them field by field, lowered by what the request asks for (a caller can never raise them)."""
    base = agent if agent is not None else defaults
    if key:
        base = RunLimits.model_validate({**base.model_dump(), **key})
    asked = requested or {}
    cost = _lowest(base.max_cost_usd, asked.get("max_cost_usd"))
    return Limits(
        max_cost_nanousd=None if cost is None else round(cost * 1e9),
        max_model_steps=_lowest(base.max_model_steps, asked.get("max_model_steps")),
        max_tool_calls=_lowest(base.max_tool_calls, asked.get("max_tool_calls")),
        max_tokens=_lowest(base.max_tokens, asked.get("max_tokens")),
        max_seconds=_lowest(base.max_seconds, asked.get("max_seconds")),
        output_tokens_estimate=base.output_tokens_estimate,
    )


@dataclass
class RunTotals:
    """What a run has used so far, from its recorded steps."""

    cost_nanousd: int = 0
    model_steps: int = 0
    tool_calls: int = 0
    tokens: int = 0
    seconds: float = 0.0


def estimate_call(
    prices: PriceBook,
    model: Model,
    messages: list[ModelMessage],
    parameters: ModelRequestParameters,
    output_tokens: int,
) -> tuple[int, int]:
    """(tokens, nano-USD) a call may use: its estimated prompt plus `output_tokens`, priced as the
    model the gateway tries first."""
    prompt = estimate_tokens(messages, parameters)
    primary = primary_model(model)
    usage = RequestUsage(input_tokens=prompt, output_tokens=output_tokens)
    return prompt + output_tokens, prices.price(primary.model_name, primary.system, usage).nanousd


def _exceeded(limit: str, value: Any, would_be: Any, unit: str = "") -> BudgetExceededError:
    return BudgetExceededError(
        f"run limit {limit} = {value}{unit} would be exceeded (next call would bring it to {would_be}{unit})",
        details={"limit": limit, "limit_value": value, "would_be": would_be},
    )


def check_model_call(limits: Limits, totals: RunTotals, estimate_tokens: int, estimate_nanousd: int) -> None:
    """Raise `BudgetExceededError` if the next model call, as estimated, would cross a limit."""
    if limits.max_model_steps is not None and totals.model_steps + 1 > limits.max_model_steps:
        raise _exceeded("max_model_steps", limits.max_model_steps, totals.model_steps + 1)
    if limits.max_tokens is not None and totals.tokens + estimate_tokens > limits.max_tokens:
        raise _exceeded("max_tokens", limits.max_tokens, totals.tokens + estimate_tokens)
    cost = totals.cost_nanousd + estimate_nanousd
    if limits.max_cost_nanousd is not None and cost > limits.max_cost_nanousd:
        raise _exceeded("max_cost_usd", limits.max_cost_nanousd / 1e9, round(cost / 1e9, 9), " USD")
    _check_time(limits, totals)


def check_tool_call(limits: Limits, totals: RunTotals) -> None:
    """Raise `BudgetExceededError` if one more tool call would cross a limit."""
    if limits.max_tool_calls is not None and totals.tool_calls + 1 > limits.max_tool_calls:
        raise _exceeded("max_tool_calls", limits.max_tool_calls, totals.tool_calls + 1)
    _check_time(limits, totals)


def _check_time(limits: Limits, totals: RunTotals) -> None:
    if limits.max_seconds is not None and totals.seconds > limits.max_seconds:
        raise _exceeded("max_seconds", limits.max_seconds, round(totals.seconds, 3), " s")
