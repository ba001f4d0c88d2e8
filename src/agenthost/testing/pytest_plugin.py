"""pytest plugin (entry point ``pytest11: agenthost``) providing a mock LLM server.

Fixtures:
  * ``mock_llm_config`` (session): the server's start-up config; override it in a ``conftest.py``
    to load your script, e.g. ``return load_script("tests/llm_script.yaml")``.
  * ``mock_llm_server`` (session): one running :class:`MockLLMServer` for the whole session.
  * ``mock_llm`` (function): that server with stats cleared and knobs back to ``mock_llm_config``.

Example::

    def test_agent(mock_llm):
        mock_llm.configure(scenarios={"hi": {"turns": [{"text": "Hello!"}]}})
        client = openai.OpenAI(base_url=mock_llm.openai_base_url, api_key="k")
        ...
        assert mock_llm.stats()["by_scenario"]["hi"]["calls"] == 1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from agenthost.testing.mock_llm import MockLLMConfig, MockLLMServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def mock_llm_config() -> MockLLMConfig:
    """The session server's start-up config; override to serve your own script."""
    return MockLLMConfig()


@pytest.fixture(scope="session")
def mock_llm_server(mock_llm_config: MockLLMConfig) -> Iterator[MockLLMServer]:
    """One mock LLM server for the whole test session."""
    with MockLLMServer(mock_llm_config) as server:
        yield server


@pytest.fixture
def mock_llm(mock_llm_server: MockLLMServer) -> MockLLMServer:
    """The session's mock LLM server, reset: no stats, start-up knobs and scenarios."""
    mock_llm_server.reset(knobs=True)
    return mock_llm_server
