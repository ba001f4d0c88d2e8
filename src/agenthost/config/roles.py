"""Roles and tool risk: who may use which agents, tools and admin endpoints.

A caller's role (from its API key or its JWT) decides:

* `agents`: which agents it may run (`"*"` = all; a key's own `agents` scope narrows it further);
* `run`: whether it may start runs and make model calls at all (`readonly` may only read);
* `max_tool_risk`: the riskiest tool offered to the model for its runs; tools above it are
  removed from the tool list before the model sees it (pydantic-ai `prepare_tools`);
* `approve_max_risk`: the riskiest tool call it may approve (critical calls need an operator or
  admin: a plain user cannot approve them, even on its own run);
* `sees`: whose runs, threads, approvals and costs it sees: its own, its team's, or all;
* `models`: which gateway models it may call directly through `/v1/chat/completions`;
* `admin`: key management, the audit log, erasing any user's data.

Each tool has a risk level (`[agents.<a>.tools.<t>] risk`); a tool with no configuration gets
`default_tool_risk` (`high` unless configured). `low` runs automatically; `medium` and `high`
wait for approval; `critical` waits for approval by a role whose `approve_max_risk` is critical.

Example:
    >>> roles = resolve_roles({})
    >>> roles["user"].may_use_tool("high"), roles["user"].may_approve("critical")
    (True, False)
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from agenthost.config.base import Section

__all__ = [
    "BUILTIN_ROLES",
    "RISK_ORDER",
    "Risk",
    "Role",
    "needs_approval",
    "resolve_roles",
    "risk_rank",
]

Risk = Literal["low", "medium", "high", "critical"]
RiskOrNone = Literal["none", "low", "medium", "high", "critical"]
RISK_ORDER: tuple[str, ...] = ("none", "low", "medium", "high", "critical")


def risk_rank(risk: str) -> int:
    """Position of a risk level, `none` lowest."""
    return RISK_ORDER.index(risk)


def needs_approval(risk: str) -> bool:
    """`low` runs automatically; everything above waits for a human decision."""
    return risk_rank(risk) > risk_rank("low")


class Role(Section):
    """`[roles.<name>]`: what callers with this role may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[str] = Field(
        default_factory=lambda: ["*"], description='Agents this role may run; `["*"]` means all.'
    )
    models: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Gateway models this role may call directly (the front doors: `/v1/chat/completions`, "
        '`/v1/responses`, `/v1/messages`); `["*"]`: all.',
    )
    run: bool = Field(default=True, description="May start runs and make model calls (false: read only).")
    max_tool_risk: RiskOrNone = Field(
        "high", description="Riskiest tool offered to the model in this role's runs (`none`: no tools)."
    )
    approve_max_risk: RiskOrNone = Field(
        "high", description="Riskiest tool call this role may approve (`none`: may not approve)."
    )
    sees: Literal["own", "team", "all"] = Field(
        "own", description="Whose runs, threads, approvals and costs this role sees."
    )
    admin: bool = Field(default=False, description="Key management, the audit log, erasing any user's data.")

    def may_run(self, agent: str) -> bool:
        """Whether this role may start runs of `agent`."""
        return self.run and ("*" in self.agents or agent in self.agents)

    def may_call_model(self, model: str) -> bool:
        """Whether this role may call the gateway model `model` directly."""
        return self.run and ("*" in self.models or model in self.models)

    def may_use_tool(self, risk: str) -> bool:
        """Whether tools of this risk are offered to the model for this role."""
        return risk_rank(risk) <= risk_rank(self.max_tool_risk)

    def may_approve(self, risk: str) -> bool:
        """Whether this role may decide a pending call of a tool with this risk."""
        return self.approve_max_risk != "none" and risk_rank(risk) <= risk_rank(self.approve_max_risk)


BUILTIN_ROLES: dict[str, Role] = {
    "readonly": Role(run=False, max_tool_risk="none", approve_max_risk="none"),
    "user": Role(),
    "operator": Role(max_tool_risk="critical", approve_max_risk="critical", sees="all"),
    "admin": Role(max_tool_risk="critical", approve_max_risk="critical", sees="all", admin=True),
}


def resolve_roles(configured: dict[str, Role]) -> dict[str, Role]:
    """The built-in roles with the configured ones added or replacing them by name."""
    return {**BUILTIN_ROLES, **configured}
