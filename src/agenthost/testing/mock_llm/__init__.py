"""A mock LLM server speaking the OpenAI Chat Completions and Anthropic Messages protocols.

See :mod:`agenthost.testing` for the public entry points.
"""

from agenthost.testing.mock_llm.app import create_mock_app
from agenthost.testing.mock_llm.config import (
    FaultPolicy,
    FaultSpec,
    MockLLMConfig,
    Scenario,
    ToolCallSpec,
    Turn,
    load_script,
)
from agenthost.testing.mock_llm.server import MockLLMServer, serve

__all__ = [
    "FaultPolicy",
    "FaultSpec",
    "MockLLMConfig",
    "MockLLMServer",
    "Scenario",
    "ToolCallSpec",
    "Turn",
    "create_mock_app",
    "load_script",
    "serve",
]
