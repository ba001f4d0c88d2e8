"""Tool policy: each tool's risk level, whether its calls wait for approval, and who may decide.

Example:
    >>> from agenthost.config.agents import ToolConfig
    >>> tool_risk(None, "high"), tool_risk(ToolConfig(approval="never"), "high")
    ('high', 'low')
    >>> approval_required(ToolConfig(risk="medium"), "high")
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agenthost.config.roles import needs_approval

if TYPE_CHECKING:
    from agenthost.config.agents import ToolConfig
    from agenthost.settings import Settings

__all__ = ["agent_tool_risk", "approval_required", "tool_risk"]


def tool_risk(tool: ToolConfig | None, default: str) -> str:
    """The tool's risk: configured, else implied by its `approval`, else `default_tool_risk`."""
    if tool is None:
        return default
    if tool.risk is not None:
        return tool.risk
    if tool.approval == "never":
        return "low"
    if tool.approval == "required":
        return "high"
    return default


def approval_required(tool: ToolConfig | None, default: str) -> bool:
    """Whether each call of the tool waits for a person's decision."""
    if tool is not None and tool.approval is not None:
        return tool.approval == "required"
    return needs_approval(tool_risk(tool, default))


def agent_tool_risk(settings: Settings, agent: str, tool: str) -> str:
    """The risk of `agent`'s tool `tool` under `settings`."""
    config = settings.agents.get(agent)
    return tool_risk(config.tools.get(tool) if config else None, settings.default_tool_risk)
