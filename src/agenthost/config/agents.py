"""`[agents.<name>]`: the agents served, and how each of their tools is executed and approved."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agenthost.config.base import IMPORT_PATH, Section
from agenthost.config.costs import RunLimits
from agenthost.config.roles import Risk
from agenthost.config.security import RedactionSettings

__all__ = ["AgentConfig", "ToolConfig"]


class ToolConfig(Section):
    """`[agents.<name>.tools.<tool>]`: how agenthost executes one of the agent's tools."""

    execution: Literal["at_least_once", "at_most_once"] = Field(
        "at_least_once",
        description=(
            "`at_least_once` (idempotent reads): after a crash inside the call, it runs again. "
            "`at_most_once` (side effects): it never runs twice; after a crash inside the call the "
            "agent gets a `tool_outcome_unknown` failure instead."
        ),
    )
    risk: Risk | None = Field(
        None,
        description="`low` runs automatically; `medium` and `high` wait for approval; `critical` waits "
        'for approval by an operator or admin. Unset: `low` if `approval = "never"`, `high` if '
        '`approval = "required"`, else `default_tool_risk`. Roles above their `max_tool_risk` never '
        "see the tool.",
    )
    approval: Literal["never", "required"] | None = Field(
        None,
        description="Override of the risk's approval rule: `required` makes each call wait for a "
        "decision (`POST .../approvals/{id}`), `never` runs it without one (not for `critical`).",
    )
    approval_timeout_seconds: float | None = Field(
        None, gt=0, description="Deny the call automatically after this long; default `[durability]`'s."
    )

    @model_validator(mode="after")
    def _critical_needs_approval(self) -> ToolConfig:
        if self.risk == "critical" and self.approval == "never":
            msg = 'a critical tool always needs approval; remove approval = "never" or lower its risk'
            raise ValueError(msg)
        return self


class AgentConfig(Section):
    """`[agents.<name>]`: an agent served by this process."""

    path: str = Field(description="Import path `module:attribute` of a `pydantic_ai.Agent`.")
    model: str | None = Field(
        None, description="A name from `[models]`, or a pydantic-ai model string like `openai:gpt-4o`."
    )
    description: str = Field("", description="Shown in listings.")
    prompt_version: str | None = Field(
        None,
        max_length=128,
        description="Label of the agent's prompt (a git tag, a registry version) in audit entries; "
        "unset: a fingerprint of its instructions and system prompts.",
    )
    deps_factory: str | None = Field(
        None, description="Import path of a callable returning the agent's `deps` for each run."
    )
    tools: dict[str, ToolConfig] = Field(
        default_factory=dict, description="Per-tool execution semantics and approval, by tool name."
    )
    limits: RunLimits | None = Field(
        None, description="This agent's run limits, replacing `[limits]` (same keys)."
    )
    routing: bool = Field(
        default=False,
        description="Choose each run's model by the complexity of its input (`[routing]` tiers).",
    )
    redaction: RedactionSettings | None = Field(
        None, description="This agent's output redaction, replacing `[redaction]`."
    )

    @field_validator("path", "deps_factory")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not IMPORT_PATH.match(value):
            msg = f"must look like `module:attribute` (got {value!r})"
            raise ValueError(msg)
        return value
