"""`/v1/responses` with the official openai SDK, unmodified: agents and gateway models, streamed
and not, conversations through `previous_response_id`, function tools on a gateway model."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.responses import Response
from tests.harness import ADMIN_KEY, Server

from agenthost.testing import MockLLMServer
from agenthost.testing.mock_llm.stats import conversation_key

TOOLS = [
    {
        "type": "function",
        "name": "get_order",
        "description": "look an order up",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
]


@pytest.fixture
def client(server: Server, mock: MockLLMServer) -> openai.OpenAI:
    """A client of the shared server; the mock LLM is reset (no fault left by another test)."""
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def test_gateway_response(client: openai.OpenAI, mock: MockLLMServer) -> None:
    """A string input and instructions reach the gateway model; the answer is a Response object."""
    reply = client.responses.create(model="mock", input="hello responses", instructions="be brief")
    assert isinstance(reply, Response)
    assert reply.output_text == "Mock reply to: hello responses"
    assert reply.status == "completed"
    assert reply.usage is not None
    assert reply.usage.output_tokens == 5
    extra = reply.model_extra or {}
    usage = reply.usage
    assert extra["agenthost"]["cost"]["nanousd"] == usage.input_tokens * 150 + usage.output_tokens * 600
    assert extra["agenthost"]["run_id"] is None
    assert mock.stats()["total_calls"] == 1
    client.close()


def test_gateway_response_cut_by_max_output_tokens_is_incomplete(
    client: openai.OpenAI, mock: MockLLMServer
) -> None:
    """A reply cut by `max_output_tokens` is `incomplete` with reason `max_output_tokens`."""
    reply = client.responses.create(model="mock", input="a long question please", max_output_tokens=2)
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage is not None
    assert reply.usage.output_tokens == 2
    client.close()


def test_gateway_stream_events(client: openai.OpenAI) -> None:
    """The stream has the Responses events in order, numbered, and ends with the full response."""
    events = list(client.responses.create(model="mock-anthropic", input="stream me please", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Mock reply to: stream me please"
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == text
    client.close()


def test_gateway_function_tools_round_trip(client: openai.OpenAI) -> None:
    """Function tools reach a gateway model; its call comes back as a function_call item, and a
    function_call_output item answers it."""
    first = client.responses.create(model="mock", input="[order] where is it", tools=TOOLS)  # type: ignore[arg-type]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_order"
    assert json.loads(calls[0].arguments) == {"order_id": "1234"}
    follow_up = client.responses.create(
        model="mock",
        tools=TOOLS,  # type: ignore[arg-type]
        input=[
            {"role": "user", "content": "[order] where is it"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_order",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "shipped yesterday"},
        ],
    )
    assert follow_up.output_text == "Your order status: shipped yesterday"
    streamed = list(
        client.responses.create(model="mock", input="[order] stream it", tools=TOOLS, stream=True)  # type: ignore[arg-type]
    )
    done = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    assert json.loads(done[0].arguments) == {"order_id": "1234"}
    client.close()


def test_agent_conversation_through_previous_response_id(client: openai.OpenAI, server: Server) -> None:
    """An agent's response is its run; `previous_response_id` continues the same thread, so the
    second run sees the first exchange as history."""
    first = client.responses.create(model="plain", input="remember the word kumquat")
    assert first.id.startswith("run_")
    assert first.output_text == "Mock reply to: remember the word kumquat"
    assert first.conversation is not None
    second = client.responses.create(model="plain", input="what was the word?", previous_response_id=first.id)
    assert second.output_text == "Mock reply to: what was the word?"
    assert second.conversation is not None
    assert second.conversation.id == first.conversation.id
    with server.client() as http:
        thread = http.get(f"/v1/threads/{first.conversation.id}").json()
    assert [turn["role"] for turn in thread["turns"]] == ["user", "assistant", "user", "assistant"]
    assert [run["id"] for run in thread["runs"]] == [first.id, second.id]
    # The stored response reads back.
    again = client.responses.retrieve(second.id)
    assert again.output_text == second.output_text
    # Continuing from the first (no longer the latest) response branches: a new thread that holds
    # the conversation as it was at the first response, without the second exchange.
    branch = client.responses.create(model="plain", input="a branch", previous_response_id=first.id)
    assert branch.output_text == "Mock reply to: a branch"
    assert branch.conversation is not None
    assert branch.conversation.id != first.conversation.id
    with server.client() as http:
        branched = http.get(f"/v1/threads/{branch.conversation.id}").json()
    assert [turn["text"] for turn in branched["turns"] if turn["role"] == "user"] == [
        "remember the word kumquat",
        "a branch",
    ]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="plain", input="x", previous_response_id="run_doesnotexist")
    client.close()


def test_agent_stream(client: openai.OpenAI) -> None:
    """A streamed agent response: the run's text as deltas, then `response.completed` with the run."""
    events = list(client.responses.create(model="plain", input="stream an agent", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Mock reply to: stream an agent"
    completed = events[-1]
    assert completed.type == "response.completed"
    extra = completed.response.model_extra or {}
    assert extra["agenthost"]["run_id"] == completed.response.id
    assert completed.response.usage is not None
    client.close()


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("plain", {"tools": TOOLS}, "tools"),
        ("plain", {"store": False}, "store"),
        ("mock", {"previous_response_id": "run_x"}, "previous_response_id"),
        ("mock", {"reasoning": {"effort": "low"}}, "reasoning"),
        ("mock", {"include": ["message.output_text.logprobs"]}, "include"),
    ],
)
def test_unsupported_parameters_are_refused(
    client: openai.OpenAI, mock: MockLLMServer, model: str, params: dict[str, object], param: str
) -> None:
    """A parameter the door cannot honour for the model is a 400 naming it, and nothing is called."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model, input="x", **params)  # type: ignore[call-overload]
    assert refused.value.code == "unsupported_parameter"
    assert refused.value.param == param
    assert param in refused.value.message
    assert mock.stats()["total_calls"] == 0
    client.close()


def test_a_failed_agent_stream_ends_with_response_failed(client: openai.OpenAI) -> None:
    """An agent whose every model fails: the stream says so (`error`, then `response.failed` with
    the code) instead of stopping without an end."""
    events = list(client.responses.create(model="hopeless", input="hello", stream=True))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "all_models_unavailable"
    with pytest.raises(openai.APIStatusError) as unavailable:
        client.responses.create(model="hopeless", input="hello")
    assert unavailable.value.status_code == 503
    client.close()


@pytest.mark.parametrize("model", ["mock", "plain"])
def test_the_sdk_stream_helper_assembles_the_response(client: openai.OpenAI, model: str) -> None:
    """`client.responses.stream()` (which checks each event against the response it assembles)
    accepts the stream of a gateway model's tool call and of an agent's text."""
    tools: dict[str, object] = {"tools": TOOLS} if model == "mock" else {}
    with client.responses.stream(model=model, input="[order] where is it", **tools) as stream:  # type: ignore[arg-type]
        final = stream.get_final_response()
    if model == "mock":
        call = next(item for item in final.output if item.type == "function_call")
        assert json.loads(call.arguments) == {"order_id": "1234"}
    else:
        assert final.output_text
        assert final.status == "completed"
    client.close()


def test_an_agent_honours_sampling_parameters(client: openai.OpenAI, mock: MockLLMServer) -> None:
    """`temperature` and `top_p` sent for an agent reach the model its run calls, streamed or not."""
    reply = client.responses.create(
        model="plain", input="sample me through responses", temperature=0.2, top_p=0.5
    )
    assert reply.status == "completed"
    assert reply.output_text == "Mock reply to: sample me through responses"
    seen = mock.stats()["by_conversation"][conversation_key("sample me through responses")]
    assert seen["sampling"] == {"temperature": 0.2, "top_p": 0.5}
    with client.responses.stream(model="plain", input="sample me streamed", temperature=1.5) as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert mock.stats()["by_conversation"][conversation_key("sample me streamed")]["sampling"] == {
        "temperature": 1.5
    }
    client.close()


def test_idempotency_key_returns_the_first_run(client: openai.OpenAI, mock: MockLLMServer) -> None:
    """A repeated agent request under one `Idempotency-Key` (chat or responses) answers with the
    run the first one started; the model is called once per key."""
    key = {"Idempotency-Key": f"door-{id(client)}"}
    first = client.responses.create(model="plain", input="only once", extra_headers=key)
    again = client.responses.create(model="plain", input="only once", extra_headers=key)
    assert again.id == first.id
    assert again.conversation == first.conversation
    chat_key = {"Idempotency-Key": f"chat-{id(client)}"}
    messages = [{"role": "user", "content": "only once too"}]
    one = client.chat.completions.create(model="plain", messages=messages, extra_headers=chat_key)  # type: ignore[arg-type]
    two = client.chat.completions.create(model="plain", messages=messages, extra_headers=chat_key)  # type: ignore[arg-type]
    assert (one.model_extra or {})["agenthost"]["run_id"] == (two.model_extra or {})["agenthost"]["run_id"]
    assert mock.stats()["total_calls"] == 2
    client.close()
