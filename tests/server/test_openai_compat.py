"""`/v1/chat/completions` and `/v1/models` with the official openai SDK, unmodified."""

from __future__ import annotations

import json

import openai
import pytest
from tests.harness import ADMIN_KEY, Server

from agenthost.testing import MockLLMServer
from agenthost.testing.mock_llm.stats import conversation_key


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


def test_models_retrieve(client: openai.OpenAI) -> None:
    """`GET /v1/models/{id}` answers one model; an unknown one is a 404 in the error shape."""
    assert client.models.retrieve("support").owned_by == "agenthost:agent"
    assert client.models.retrieve("mock").owned_by == "agenthost:gateway"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert missing.value.code == "model_not_found"
    client.close()


@pytest.mark.parametrize("model", ["mock", "plain"])
def test_finish_reason_length_streamed_and_not(
    client: openai.OpenAI, mock: MockLLMServer, model: str
) -> None:
    """A reply cut by `max_tokens` finishes with `length` (gateway model and agent, both ways),
    and the `agenthost` object has the same shape streamed and not."""
    messages = [{"role": "user", "content": "a question with a long answer"}]
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=2)  # type: ignore[arg-type]
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    streamed = (chunks[-1].model_extra or {})["agenthost"]
    whole = (reply.model_extra or {})["agenthost"]
    assert set(streamed) == set(whole) == {"run_id", "served_by", "cost"}
    assert set(streamed["cost"]) == set(whole["cost"]) == {"usd", "nanousd", "status"}
    assert streamed["cost"]["nanousd"] == whole["cost"]["nanousd"] > 0
    assert streamed["served_by"] == whole["served_by"] == "gpt-4o-mini"
    client.close()


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("mock", {"n": 2}, "n"),
        ("mock", {"logprobs": True}, "logprobs"),
        ("mock", {"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ("mock", {"response_format": {"type": "json_object"}}, "response_format"),
        (
            "plain",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
            "response_format",
        ),
        (
            "plain",
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
            "tools",
        ),
        ("plain", {"extra_body": {"not_a_parameter": 1}}, "not_a_parameter"),
    ],
)
def test_unsupported_parameters_are_refused(
    client: openai.OpenAI, mock: MockLLMServer, model: str, params: dict[str, object], param: str
) -> None:
    """A parameter the door cannot honour for the model (agent or gateway) is a 400 naming it in
    the message and in `param`; no model is called."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], **params)  # type: ignore[call-overload]
    assert refused.value.code == "unsupported_parameter"
    assert refused.value.param == param
    assert param in refused.value.message
    assert mock.stats()["total_calls"] == 0
    client.close()


def test_an_agent_honours_sampling_parameters(client: openai.OpenAI, mock: MockLLMServer) -> None:
    """`temperature`, `top_p`, `seed` and `stop` sent for an agent reach the model its run calls
    (the stop sequence cuts the answer); the same `Idempotency-Key` with other settings is a 409."""
    prompt = "sample me through chat"
    messages = [{"role": "user", "content": prompt}]
    key = {"Idempotency-Key": f"sampling-{id(client)}"}
    reply = client.chat.completions.create(
        model="plain",
        messages=messages,  # type: ignore[arg-type]
        temperature=0.3,
        top_p=0.9,
        seed=7,
        stop="reply",
        extra_headers=key,
    )
    assert (reply.choices[0].message.content or "").strip() == "Mock"  # cut at the stop sequence
    assert (reply.model_extra or {})["agenthost"]["run_id"].startswith("run_")
    sampling = mock.stats()["by_conversation"][conversation_key(prompt)]["sampling"]
    assert sampling == {"temperature": 0.3, "top_p": 0.9, "seed": 7, "stop_sequences": ["reply"]}
    with pytest.raises(openai.ConflictError) as reused:
        client.chat.completions.create(
            model="plain",
            messages=messages,  # type: ignore[arg-type]
            temperature=0.5,
            top_p=0.9,
            seed=7,
            stop="reply",
            extra_headers=key,
        )
    assert reused.value.code == "idempotency_key_reused"
    assert mock.stats()["total_calls"] == 1
    client.close()


def test_gateway_honours_n_1_stop_and_tool_choice(client: openai.OpenAI, mock: MockLLMServer) -> None:
    """Parameters a gateway model can honour go to the provider: `n=1`, `stop`, `tool_choice`,
    `seed`, `response_format` text."""
    reply = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "[order] where is it"}],
        n=1,
        stop=["never-said"],
        seed=7,
        response_format={"type": "text"},
        tool_choice="auto",
        tools=[{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}],
    )
    # Accepted and sent (the mock LLM plays its script whatever `tool_choice` says).
    assert reply.choices[0].finish_reason == "tool_calls"
    cut = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "cut me"}], stop="reply"
    )
    assert (cut.choices[0].message.content or "").strip() == "Mock"
    assert cut.choices[0].finish_reason == "stop"
    structured = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "structured"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {}}},
        },
    )
    assert structured.choices[0].finish_reason == "stop"
    assert mock.stats()["total_calls"] == 3
    client.close()
