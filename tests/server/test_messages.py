"""`/v1/messages` with the official anthropic SDK, unmodified: agents and gateway models, streamed
and not, tools on a gateway model, truthful stop reasons, Anthropic's error envelope."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from tests.harness import ADMIN_KEY, Server

from agenthost.testing import MockLLMServer
from agenthost.testing.mock_llm.stats import conversation_key

TOOLS = [
    {
        "name": "get_order",
        "description": "look an order up",
        "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
]


@pytest.fixture
def client(server: Server, mock: MockLLMServer) -> anthropic.Anthropic:
    """A client of the shared server; the mock LLM is reset (no fault left by another test)."""
    return anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0)


def _text(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def test_gateway_message(client: anthropic.Anthropic, mock: MockLLMServer) -> None:
    """System and messages reach the gateway model; the answer is an Anthropic Message."""
    reply = client.messages.create(
        model="mock",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello anthropic door"}],
    )
    assert _text(reply) == "Mock reply to: hello anthropic door"
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens == 6
    extra = reply.model_extra or {}
    usage = reply.usage
    assert extra["agenthost"]["cost"]["nanousd"] == usage.input_tokens * 150 + usage.output_tokens * 600
    assert mock.stats()["total_calls"] == 1
    client.close()


def test_stop_reason_max_tokens(client: anthropic.Anthropic, mock: MockLLMServer) -> None:
    """A reply cut by `max_tokens` says `max_tokens`, streamed and not."""
    messages = [{"role": "user", "content": "a question with a long answer"}]
    reply = client.messages.create(model="mock-anthropic", max_tokens=2, messages=messages)  # type: ignore[arg-type]
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens == 2
    with client.messages.stream(model="mock", max_tokens=2, messages=messages) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    client.close()


def test_gateway_stream(client: anthropic.Anthropic) -> None:
    """The stream has Anthropic's events in order; the SDK assembles the message."""
    with client.messages.stream(
        model="mock-anthropic", max_tokens=100, messages=[{"role": "user", "content": "stream me please"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in kinds
    assert "content_block_stop" in kinds
    assert _text(final) == "Mock reply to: stream me please"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6
    client.close()


def test_gateway_tools_round_trip(client: anthropic.Anthropic) -> None:
    """Tools reach a gateway model; its tool_use comes back, and a tool_result answers it."""
    question = {"role": "user", "content": "[order] where is it"}
    first = client.messages.create(model="mock", max_tokens=100, tools=TOOLS, messages=[question])  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert uses[0].name == "get_order"
    assert uses[0].input == {"order_id": "1234"}
    follow_up = client.messages.create(
        model="mock",
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            question,  # type: ignore[list-item]
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "shipped yesterday"}
                ],
            },
        ],
    )
    assert _text(follow_up) == "Your order status: shipped yesterday"
    assert follow_up.stop_reason == "end_turn"
    with client.messages.stream(model="mock", max_tokens=100, tools=TOOLS, messages=[question]) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    streamed = [block for block in final.content if block.type == "tool_use"]
    assert streamed[0].input == {"order_id": "1234"}
    assert final.stop_reason == "tool_use"
    client.close()


def test_agent_message_and_stream(client: anthropic.Anthropic, mock: MockLLMServer) -> None:
    """An agent answers through a durable run, streamed and not; earlier messages are history."""
    reply = client.messages.create(
        model="plain",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "now this"}]},
        ],
    )
    assert _text(reply) == "Mock reply to: now this"
    extra = reply.model_extra or {}
    assert extra["agenthost"]["run_id"].startswith("run_")
    conversations = mock.stats()["by_conversation"]
    assert any(c["by_turn"] == {"1": 1} for c in conversations.values())
    with client.messages.stream(
        model="plain", max_tokens=100, messages=[{"role": "user", "content": "stream an agent"}]
    ) as stream:
        final = stream.get_final_message()
    assert _text(final) == "Mock reply to: stream an agent"
    assert final.stop_reason == "end_turn"
    client.close()


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("plain", {"tools": TOOLS}, "tools"),
        ("plain", {"system": "you are a pirate"}, "system"),
        ("plain", {"top_k": 5}, "top_k"),  # the gateway's only: an agent's provider may have none
        ("mock", {"top_k": 5}, "top_k"),  # an openai-provider model has no top_k
        ("mock", {"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ],
)
def test_unsupported_parameters_are_refused(
    client: anthropic.Anthropic, mock: MockLLMServer, model: str, params: dict[str, object], param: str
) -> None:
    """A parameter the door cannot honour for the model is a 400 in Anthropic's envelope naming it."""
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=model,
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_body=params,  # this SDK version has no temperature/top_p/top_k arguments
        )
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "unsupported_parameter"
    assert param in body["error"]["message"]
    assert body["request_id"] == refused.value.response.headers["x-request-id"]
    assert mock.stats()["total_calls"] == 0
    client.close()


def test_errors_use_anthropics_envelope(server: Server) -> None:
    """Validation (max_tokens is required) and authentication errors are Anthropic-shaped; the
    `anthropic-version` header is accepted."""
    headers = {"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}
    missing = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.json()["error"]["message"]
    unknown = httpx.post(
        f"{server.url}/v1/messages", json={**body, "max_tokens": 5, "model": "nope"}, headers=headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"
    assert unknown.json()["error"]["code"] == "model_not_found"
    not_json = httpx.post(f"{server.url}/v1/messages", content=b"max_tokens=5", headers=headers)
    assert not_json.status_code == 415
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert not_json.json()["error"]["code"] == "unsupported_media_type"
    bad_key = httpx.post(
        f"{server.url}/v1/messages", json={**body, "max_tokens": 5}, headers={"x-api-key": "wrong-key"}
    )
    assert bad_key.status_code == 401
    assert bad_key.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid API key", "code": "invalid_api_key"},
        "request_id": bad_key.headers["x-request-id"],
    }


def test_stop_sequences_reach_the_model_and_stop_reason_says_so(client: anthropic.Anthropic) -> None:
    """`stop_sequences` go to a gateway model; an Anthropic model's `stop_sequence` stop is told
    apart from a natural end, streamed and not; `top_k` and `temperature` reach an Anthropic model."""
    messages = [{"role": "user", "content": "cut me"}]
    reply = client.messages.create(
        model="mock-anthropic",
        max_tokens=50,
        stop_sequences=["reply"],
        messages=messages,  # type: ignore[arg-type]
        extra_body={"top_k": 5, "temperature": 0.5},
    )
    assert _text(reply).strip() == "Mock"  # the text before the stop sequence
    assert reply.stop_reason == "stop_sequence"
    with client.messages.stream(
        model="mock-anthropic",
        max_tokens=50,
        stop_sequences=["reply"],
        messages=messages,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence"
    client.close()


@pytest.mark.parametrize("agent", ["claude", "plain"])
def test_an_agent_honours_sampling_parameters(
    client: anthropic.Anthropic, mock: MockLLMServer, agent: str
) -> None:
    """`temperature`, `top_p` and `stop_sequences` sent for an agent reach the model its run calls,
    whatever that model's provider (Anthropic's or OpenAI's wire); the stop sequence cuts the answer."""
    prompt = f"sample me through messages for {agent}"
    reply = client.messages.create(
        model=agent,
        max_tokens=50,
        stop_sequences=["reply"],
        messages=[{"role": "user", "content": prompt}],
        extra_body={"temperature": 0.5, "top_p": 0.8},
    )
    assert _text(reply).strip() == "Mock"
    sampling = mock.stats()["by_conversation"][conversation_key(prompt)]["sampling"]
    assert sampling == {"temperature": 0.5, "top_p": 0.8, "stop_sequences": ["reply"]}
    client.close()


def test_a_failed_agent_stream_ends_with_an_error_event(client: anthropic.Anthropic) -> None:
    """An agent whose every model fails: the stream ends with Anthropic's `error` event, which
    the SDK raises; not streamed, it is a 503 `overloaded_error`."""
    messages = [{"role": "user", "content": "hello"}]
    with (
        pytest.raises(anthropic.APIError, match="all models unavailable"),
        client.messages.stream(model="hopeless", max_tokens=50, messages=messages) as stream,  # type: ignore[arg-type]
    ):
        stream.get_final_message()
    with pytest.raises(anthropic.APIStatusError) as unavailable:
        client.messages.create(model="hopeless", max_tokens=50, messages=messages)  # type: ignore[arg-type]
    assert unavailable.value.status_code == 503
    body = unavailable.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "overloaded_error"
    client.close()
