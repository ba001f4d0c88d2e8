from __future__ import annotations

from typing import TYPE_CHECKING

import anthropic
import httpx
import openai
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agenthost.testing import MockLLMServer


@pytest.fixture
def openai_client(mock_llm: MockLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock_llm.openai_base_url, api_key="k", max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def anthropic_client(mock_llm: MockLLMServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=mock_llm.anthropic_base_url, api_key="k", max_retries=0, timeout=10
    ) as client:
        yield client


@pytest.fixture
def http(mock_llm: MockLLMServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_llm.url, timeout=10) as client:
        yield client
