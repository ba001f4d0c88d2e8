"""What a run is asked to do (the workflow's input) and what it produced (its summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agenthost.records import Payer

if TYPE_CHECKING:
    from agenthost.settings import Settings

__all__ = ["RunSpec", "configured_model"]


class RunSpec(BaseModel):
    """The input of the run workflow, recorded by DBOS with the workflow.

    Kept to plain JSON types so a run recorded by one release can be recovered by the next.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    agent: str
    input: str
    user_id: str | None = None
    max_tokens: int | None = None
    model_settings: dict[str, Any] | None = None
    """Sampling parameters for every model call of the run (`SamplingSettings.dump()`)."""
    metadata: dict[str, Any] | None = None
    thread_id: str | None = None
    tier: str | None = None
    """The complexity tier whose model serves this run (agents with `routing = true`)."""
    history: list[Any] | None = None
    """Earlier messages given with the request (pydantic-ai JSON form), e.g. by `/v1/chat/completions`."""
    limits: dict[str, Any] | None = None
    """Limits the request asked for; they only lower the configured ones."""
    priority: str = "interactive"
    """`batch`: the run's model calls go through the provider's batch API."""
    queued: bool = False
    key_id: str | None = None
    """The API key that started the run (budgets, rate limits and the ledger count it)."""
    team: str | None = None
    max_tool_risk: str | None = None
    """The riskiest tool the caller's role may use; riskier tools are not offered to the model."""
    key_budget: dict[str, Any] | None = None
    """The key's own spend limits when the run started (`BudgetLimit` fields)."""
    key_limits: dict[str, Any] | None = None
    key_rate_limits: dict[str, Any] | None = None
    actor: str | None = None
    """The credential that started the run (`key:<id>`, `jwt:<user>`, `admin-key`), for the audit log."""
    actor_user: str | None = None
    """The key's own rate limits (its tokens per minute bind the run's model calls)."""
    """The key's own run limits (`[limits]` fields); they replace the agent's."""

    def payer(self) -> Payer:
        """Who the run's calls are charged to, beside its agent and user."""
        return Payer(self.key_id, self.key_budget, self.team)


def configured_model(settings: Settings, spec: RunSpec) -> str:
    """The `[models]` name serving the run: its tier's, else its agent's, else `default_model`."""
    if spec.tier is not None:
        return str(getattr(settings.routing, spec.tier))
    return settings.agents[spec.agent].model or settings.default_model or ""
