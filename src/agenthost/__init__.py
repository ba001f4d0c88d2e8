"""agenthost: a self-hosted production runtime for Pydantic AI agents.

Point it at an ordinary `pydantic_ai.Agent` and get an HTTP service with durable runs, SSE
streaming and background runs. See the README for the quickstart.
"""

from agenthost._version import __version__
from agenthost.errors import AgentHostError, ConfigError
from agenthost.settings import Settings, load_settings

__all__ = ["AgentHostError", "ConfigError", "Settings", "__version__", "load_settings"]
