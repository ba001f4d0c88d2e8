"""Test helpers shipped with agenthost: a mock LLM server speaking the OpenAI and Anthropic protocols.

Example::

    from agenthost.testing import MockLLMConfig, MockLLMServer, Scenario, Turn

    script = {"greet": Scenario(match="hello", turns=(Turn(text="Hi there!"),))}
    with MockLLMServer(MockLLMConfig(scenarios=script)) as server:
        ...  # point an OpenAI client at server.openai_base_url, Anthropic at server.anthropic_base_url

In pytest, the ``mock_llm`` fixture (from the bundled plugin) gives a running, freshly reset server.
"""

from agenthost.testing.mock_llm import (
    FaultPolicy,
    FaultSpec,
    MockLLMConfig,
    MockLLMServer,
    Scenario,
    ToolCallSpec,
    Turn,
    create_mock_app,
    load_script,
    serve,
)

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
