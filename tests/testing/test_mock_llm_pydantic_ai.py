"""pydantic-ai agents running a scripted two-turn tool conversation against both protocols."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from agenthost.testing.mock_llm.tokens import count_tokens

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from agenthost.testing import MockLLMServer

WEATHER = {
    "weather": {
        "turns": [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"text": "The forecast: {last_tool_result}."},
        ]
    }
}
EXPECTED = "The forecast: sunny in Paris."


def _model(server: MockLLMServer, protocol: str) -> Model:
    if protocol == "openai":
        return OpenAIChatModel(
            "weather", provider=OpenAIProvider(base_url=server.openai_base_url, api_key="k")
        )
    return AnthropicModel(
        "weather", provider=AnthropicProvider(base_url=server.anthropic_base_url, api_key="k")
    )


def _agent(server: MockLLMServer, protocol: str, calls: list[str]) -> Agent[None, str]:
    agent = Agent(_model(server, protocol), system_prompt="You forecast weather.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        calls.append(city)
        return f"sunny in {city}"

    return agent


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_agent_runs_a_scripted_tool_conversation(mock_llm: MockLLMServer, protocol: str) -> None:
    mock_llm.configure(scenarios=WEATHER)
    calls: list[str] = []
    result = await _agent(mock_llm, protocol, calls).run("What's the weather in Paris?")

    assert result.output == EXPECTED
    assert calls == ["Paris"]
    responses = [m for m in result.all_messages() if isinstance(m, ModelResponse)]
    [tool_call] = [p for p in responses[0].parts if isinstance(p, ToolCallPart)]
    assert tool_call.tool_name == "get_weather"
    assert tool_call.args_as_dict() == {"city": "Paris"}
    assert tool_call.tool_call_id == ("call_0_0" if protocol == "openai" else "toolu_0_0")
    usage = result.usage
    assert usage.requests == 2
    assert usage.output_tokens == count_tokens(json.dumps({"city": "Paris"})) + count_tokens(EXPECTED)
    assert usage.input_tokens > 0

    stats = mock_llm.stats()
    assert stats["by_protocol"][protocol] == 2
    assert stats["by_scenario"]["weather"] == {"calls": 2, "faults": 0, "by_turn": {"0": 1, "1": 1}}


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_agent_streams_the_same_result(mock_llm: MockLLMServer, protocol: str) -> None:
    mock_llm.configure(scenarios=WEATHER)
    agent = _agent(mock_llm, protocol, [])
    plain = await agent.run("What's the weather in Paris?")
    async with agent.run_stream("What's the weather in Paris?") as streamed:
        chunks = [text async for text in streamed.stream_text(delta=True)]
        output = await streamed.get_output()
    assert output == "".join(chunks) == EXPECTED
    assert len(chunks) >= 1
    assert streamed.usage.input_tokens == plain.usage.input_tokens
    assert streamed.usage.output_tokens == plain.usage.output_tokens
