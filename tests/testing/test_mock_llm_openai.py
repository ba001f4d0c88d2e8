"""The OpenAI Chat Completions protocol, through the official `openai` SDK over a real socket."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from agenthost.testing.mock_llm.tokens import count_tokens, tokenize

if TYPE_CHECKING:
    import httpx
    import openai

    from agenthost.testing import MockLLMServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_SCENARIO = {
    "weather": {
        "turns": [
            {
                "text": "Let me look that up.",
                "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
            },
            {"text": "Result: {last_tool_result}"},
        ]
    }
}


def test_text_reply_and_usage(openai_client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello there, mock!"},
    ]
    response = openai_client.chat.completions.create(model="gpt-test", messages=messages)

    choice = response.choices[0]
    assert choice.message.content == "Mock reply to: Hello there, mock!"
    assert choice.finish_reason == "stop"
    assert response.model == "gpt-test"
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.created > 0
    assert response.usage is not None
    assert (
        response.usage.prompt_tokens
        == count_tokens("You are terse.") + count_tokens("Hello there, mock!")
        == 6
    )
    assert response.usage.completion_tokens == count_tokens("Mock reply to: Hello there, mock!") == 6
    assert response.usage.total_tokens == 12


def test_default_reply_echo_is_truncated_to_200_chars(openai_client: openai.OpenAI) -> None:
    long_text = "x" * 500
    response = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": long_text}]
    )
    assert response.choices[0].message.content == "Mock reply to: " + "x" * 200


def test_prompt_tokens_count_history_tool_calls_and_tool_definitions(openai_client: openai.OpenAI) -> None:
    arguments = '{"city": "Paris, France"}'
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "weather please"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny and warm"},
    ]
    response = openai_client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])

    expected = (
        count_tokens("weather please")
        + count_tokens(arguments)
        + count_tokens("sunny and warm")
        + count_tokens(json.dumps([WEATHER_TOOL]))
    )
    assert response.usage is not None
    assert response.usage.prompt_tokens == expected


def test_stream_sends_one_token_per_chunk_and_usage_when_asked(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "stream   this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    expected_text = "Mock reply to: stream   this please"
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == tokenize(expected_text)
    assert "".join(contents) == expected_text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == len(contents) == 6
    assert usage_chunk.usage.prompt_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.id for c in chunks} == {chunks[0].id}


def test_stream_without_include_usage_has_no_usage_chunk(openai_client: openai.OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_raw_stream_ends_with_done(http: httpx.Client) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n") if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    for line in lines[:-1]:
        assert json.loads(line.removeprefix("data: "))["object"] == "chat.completion.chunk"


def test_tool_calls_non_stream(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    response = openai_client.chat.completions.create(
        model="weather",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id == "call_0_0"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert response.usage is not None
    assert response.usage.completion_tokens == count_tokens("Let me look that up.") + count_tokens(
        call.function.arguments
    )


def test_tool_calls_stream_and_second_turn(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    stream = openai_client.chat.completions.create(
        model="weather",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    starts = [tc for d in deltas for tc in d.tool_calls or () if tc.id]
    assert [(tc.index, tc.id, tc.function and tc.function.name) for tc in starts] == [
        (0, "call_0_0", "get_weather")
    ]
    arguments = "".join(
        tc.function.arguments or "" for d in deltas for tc in d.tool_calls or () if tc.function and not tc.id
    )
    assert json.loads(arguments) == {"city": "Paris"}
    argument_chunks = [tc for d in deltas for tc in d.tool_calls or () if not tc.id]
    assert len(argument_chunks) == count_tokens(arguments)
    text = "".join(d.content or "" for d in deltas)
    assert text == "Let me look that up."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == count_tokens(text) + count_tokens(arguments)

    messages += [
        {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {
                    "id": "call_0_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0_0", "content": "22C and sunny"},
    ]
    second = openai_client.chat.completions.create(model="weather", messages=messages)
    assert second.choices[0].message.content == "Result: 22C and sunny"
    assert second.choices[0].finish_reason == "stop"


def test_identical_requests_get_identical_ids(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    first, second = (
        openai_client.chat.completions.create(model="weather", messages=[{"role": "user", "content": "q"}])
        for _ in range(2)
    )
    assert first.id == second.id
    assert first.choices[0].message.tool_calls == second.choices[0].message.tool_calls


def test_max_tokens_truncates_text_and_reports_length(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "one two three four five"}]
    response = openai_client.chat.completions.create(model="m", messages=messages, max_tokens=4)
    assert response.choices[0].message.content == "Mock reply to: one"
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None
    assert response.usage.completion_tokens == 4

    chunks = list(
        openai_client.chat.completions.create(
            model="m",
            messages=messages,
            max_completion_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2


def test_max_tokens_drops_a_tool_call_that_does_not_fit(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    response = openai_client.chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "q"}], max_tokens=5
    )
    choice = response.choices[0]
    assert choice.message.content == "Let me look that up."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "length"
    assert response.usage is not None
    assert response.usage.completion_tokens == 5


def test_models_endpoint(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    ids = [model.id for model in openai_client.models.list()]
    assert ids == ["mock", "weather"]


def test_stop_ends_the_reply_with_finish_reason_stop(openai_client: openai.OpenAI) -> None:
    """OpenAI's `stop` ends the text before the first sequence it contains; `finish_reason` is `stop`."""
    reply = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hello there"}], stop=["to:"]
    )
    assert reply.choices[0].message.content == "Mock reply"
    assert reply.choices[0].finish_reason == "stop"
