"""`/v1/chat/completions` and `/v1/models` with the official openai SDK, unmodified."""

from __future__ import annotations

import json

import openai
import pytest
from tests.harness import ADMIN_KEY, Server

from agenthost.testing import MockLLMServer


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def test_models_lists_agents_and_gateway_models(client: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models["support"] == "agenthost:agent"
    assert models["plain"] == "agenthost:agent"
    assert models["mock"] == "agenthost:gateway"
    assert models["mock-anthropic"] == "agenthost:gateway"
    client.close()


def test_passthrough_completion(client: openai.OpenAI, mock: MockLLMServer) -> None:
    reply = client.chat.completions.create(
        model="mock",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello gateway"}],
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "Mock reply to: hello gateway"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    assert reply.model == "mock"
    extra = reply.model_extra or {}
    usage = reply.usage
    assert extra["agenthost"]["cost"]["nanousd"] == usage.prompt_tokens * 150 + usage.completion_tokens * 600
    assert mock.stats()["total_calls"] == 1
    client.close()


def test_passthrough_stream_with_usage(client: openai.OpenAI, mock: MockLLMServer) -> None:
    stream = client.chat.completions.create(
        model="mock-anthropic",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert mock.stats()["by_protocol"]["anthropic"] == 1
    client.close()


def test_passthrough_tool_calls(client: openai.OpenAI, mock: MockLLMServer) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "description": "look an order up",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            },
        }
    ]
    reply = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "[order] where is it"}], tools=tools
    )
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_order"
    assert json.loads(call.function.arguments) == {"order_id": "1234"}
    assert reply.choices[0].finish_reason == "tool_calls"
    follow_up = client.chat.completions.create(
        model="mock",
        tools=tools,
        messages=[
            {"role": "user", "content": "[order] where is it"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "shipped yesterday"},
        ],
    )
    assert follow_up.choices[0].message.content == "Your order status: shipped yesterday"
    streamed = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "[order] stream it"}], tools=tools, stream=True
    )
    deltas = [c.choices[0].delta for c in streamed if c.choices]
    calls = [d.tool_calls[0] for d in deltas if d.tool_calls]
    assert calls[0].function is not None
    assert calls[0].function.name == "get_order"
    arguments = "".join((c.function.arguments or "") for c in calls if c.function)
    assert json.loads(arguments) == {"order_id": "1234"}
    client.close()


def test_agent_completion_and_stream(client: openai.OpenAI, mock: MockLLMServer) -> None:
    reply = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "[order] status?"}]
    )
    assert reply.choices[0].message.content is not None
    assert "delayed in transit" in reply.choices[0].message.content
    extra = reply.model_extra or {}
    assert extra["agenthost"]["run_id"].startswith("run_")
    stream = client.chat.completions.create(
        model="plain",
        messages=[
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "now this"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: now this"
    assert chunks[-1].usage is not None
    # The earlier turn reached the model as history: one assistant message before this request.
    conversations = mock.stats()["by_conversation"]
    assert any(c["by_turn"] == {"1": 1} for c in conversations.values())
    client.close()


def test_errors_in_openai_shape(client: openai.OpenAI, mock: MockLLMServer) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="mock", messages=[])
    mock.configure(fault={"kind": "bad_request"})
    with pytest.raises(openai.APIStatusError) as rejected:
        client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "x"}])
    assert rejected.value.status_code == 502
    mock.configure(fault={"kind": "stream_cut"})
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": "cut this stream in half please"}],
                stream=True,
            )
        )
    client.close()


def test_a_streamed_agent_completion_that_fails_ends_with_an_error_and_done(server: Server) -> None:
    """An agent whose every model fails: the run ends `dead`, and the stream says so (an error
    chunk) and ends (`[DONE]`) instead of stopping without either."""
    with server.client() as http:
        body = {"model": "hopeless", "messages": [{"role": "user", "content": "hello"}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["code"] == "all_models_unavailable"
    # The SDK sees the same stream as an API error, not as a silent empty answer.
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    with pytest.raises(openai.APIError, match="all models unavailable"):
        list(
            client.chat.completions.create(
                model="hopeless", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    client.close()
