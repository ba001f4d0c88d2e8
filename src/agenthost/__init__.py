"""agenthost: a self-hosted production runtime for Pydantic AI agents.

Point it at an ordinary `pydantic_ai.Agent` and get an HTTP service with durable runs, SSE
streaming and background runs. See the README for the quickstart.

Importing `agenthost` loads only its version; the names below load their modules on first use,
so `import agenthost.testing` (the mock LLM, for agent authors' tests) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenthost._version import __version__

if TYPE_CHECKING:
    from agenthost.errors import AgentHostError, ConfigError
    from agenthost.settings import Settings, load_settings

__all__ = ["AgentHostError", "ConfigError", "Settings", "__version__", "load_settings"]

_LAZY = {
    "AgentHostError": "agenthost.errors",
    "ConfigError": "agenthost.errors",
    "Settings": "agenthost.settings",
    "load_settings": "agenthost.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'agenthost' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module), name)
