"""The Anthropic Messages protocol, through the official `anthropic` SDK over a real socket."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agenthost.testing.mock_llm.tokens import count_tokens, tokenize

if TYPE_CHECKING:
    import anthropic
    import httpx

    from agenthost.testing import MockLLMServer

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_SCENARIO = {
    "weather": {
        "turns": [
            {"text": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"text": "Result: {last_tool_result} (turn {turn})"},
        ]
    }
}


def test_text_reply_and_usage(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model="claude-test",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there, mock!"}],
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-test"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Mock reply to: Hello there, mock!"
    assert message.usage.input_tokens == count_tokens("Be brief.") + count_tokens("Hello there, mock!") == 5
    assert message.usage.output_tokens == 6
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_input_tokens_count_blocks_tool_use_tool_results_and_tools(
    anthropic_client: anthropic.Anthropic,
) -> None:
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "weather please"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "on it"},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris, France"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]}
            ],
        },
    ]
    message = anthropic_client.messages.create(
        model="m",
        max_tokens=100,
        system=[{"type": "text", "text": "You are a weather bot."}],
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    expected = (
        count_tokens("You are a weather bot.")
        + count_tokens("weather please")
        + count_tokens("on it")
        + count_tokens(json.dumps({"city": "Paris, France"}))
        + count_tokens("sunny")
        + count_tokens(json.dumps([WEATHER_TOOL]))
    )
    assert message.usage.input_tokens == expected
    # The tool-result-only user message is not "what the user said": the echo is the real prompt.
    assert message.content[0].text == "Mock reply to: weather please"

    counted = anthropic_client.messages.count_tokens(
        model="m",
        system=[{"type": "text", "text": "You are a weather bot."}],
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assert counted.input_tokens == expected


def test_raw_stream_events_and_usage(anthropic_client: anthropic.Anthropic) -> None:
    events = list(
        anthropic_client.messages.create(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "stream  me"}], stream=True
        )
    )
    types = [event.type for event in events]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 1
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == 2
    assert start.message.usage.output_tokens == 1
    deltas = [
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert deltas == tokenize("Mock reply to: stream  me")
    final = events[-2]
    assert final.type == "message_delta"
    assert final.delta.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(deltas) == 5


def test_stream_helper_accumulates_the_same_message(anthropic_client: anthropic.Anthropic) -> None:
    kwargs: Any = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "same either way"}],
    }
    plain = anthropic_client.messages.create(**kwargs)
    with anthropic_client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    assert text == streamed.content[0].text == plain.content[0].text
    assert streamed.usage.input_tokens == plain.usage.input_tokens
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.id == plain.id


def test_tool_use_non_stream_then_tool_result_turn(
    mock_llm: MockLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    messages: Any = [{"role": "user", "content": "weather in Paris?"}]
    first = anthropic_client.messages.create(
        model="weather", max_tokens=100, messages=messages, tools=[WEATHER_TOOL]
    )
    assert first.stop_reason == "tool_use"
    assert [block.type for block in first.content] == ["text", "tool_use"]
    tool_use = first.content[1]
    assert tool_use.type == "tool_use"
    assert tool_use.id == "toolu_0_0"
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Paris"}
    assert first.usage.output_tokens == count_tokens("Checking.") + count_tokens(
        json.dumps({"city": "Paris"})
    )

    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "22C"}]},
    ]
    second = anthropic_client.messages.create(model="weather", max_tokens=100, messages=messages)
    assert second.content[0].text == "Result: 22C (turn 1)"
    assert second.stop_reason == "end_turn"


def test_tool_use_stream(mock_llm: MockLLMServer, anthropic_client: anthropic.Anthropic) -> None:
    mock_llm.configure(scenarios=TOOL_SCENARIO)
    events = list(
        anthropic_client.messages.create(
            model="weather", max_tokens=100, messages=[{"role": "user", "content": "q"}], stream=True
        )
    )
    starts = [e for e in events if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [(0, "text"), (1, "tool_use")]
    block = starts[1].content_block
    assert block.type == "tool_use"
    assert (block.id, block.name) == ("toolu_0_0", "get_weather")
    partial = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json.loads("".join(partial)) == {"city": "Paris"}
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "tool_use"
    assert delta.usage.output_tokens == count_tokens("Checking.") + len(partial)

    with anthropic_client.messages.stream(
        model="weather", max_tokens=100, messages=[{"role": "user", "content": "q"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[1].type == "tool_use"
    assert final.content[1].input == {"city": "Paris"}


def test_max_tokens_truncates_and_reports_max_tokens(anthropic_client: anthropic.Anthropic) -> None:
    kwargs: Any = {"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "a b c d"}]}
    message = anthropic_client.messages.create(**kwargs)
    assert message.content[0].text == "Mock reply to:"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    with anthropic_client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3


def test_beta_endpoint_and_query_string(anthropic_client: anthropic.Anthropic, http: httpx.Client) -> None:
    message = anthropic_client.beta.messages.create(
        model="m", max_tokens=50, messages=[{"role": "user", "content": "beta"}]
    )
    assert message.content[0].text == "Mock reply to: beta"
    response = http.post(
        "/v1/messages?beta=true",
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "raw"}]},
    )
    assert response.status_code == 200
    assert response.json()["content"] == [{"type": "text", "text": "Mock reply to: raw"}]


def test_stop_sequences_end_the_reply_and_are_named(anthropic_client: anthropic.Anthropic) -> None:
    """The reply ends before the first stop sequence it contains; `stop_reason` and
    `stop_sequence` say so, streamed and not."""
    messages: Any = [{"role": "user", "content": "Hello there"}]
    message = anthropic_client.messages.create(
        model="m", max_tokens=100, messages=messages, stop_sequences=["zzz", "to:"]
    )
    assert message.content[0].text == "Mock reply"  # type: ignore[union-attr]
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "to:"
    with anthropic_client.messages.stream(
        model="m", max_tokens=100, messages=messages, stop_sequences=["reply"]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == "reply"
