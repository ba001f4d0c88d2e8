"""The providers' batch APIs in the mock, through the official `openai` and `anthropic` SDKs.

Each request in a batch must be answered exactly as the interactive non-streaming endpoint answers it,
so the round-trip tests compare batch results with what `POST /v1/chat/completions` and
`POST /v1/messages` return for the same body.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletion
from pydantic_ai import ModelRequest
from pydantic_ai.direct import model_request_batch
from pydantic_ai.exceptions import ModelRequestRejectedError
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.providers.anthropic import AnthropicProvider

from agenthost.testing.mock_llm.tokens import count_tokens

if TYPE_CHECKING:
    import httpx
    from anthropic.types.messages import MessageBatch
    from openai.types import Batch

    from agenthost.testing import MockLLMServer

CHAT_URL = "/v1/chat/completions"
OPENAI_ENDED = {"completed", "failed", "cancelled", "expired"}
WEATHER = {
    "weather": {
        "turns": [
            {"text": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"text": "It is {last_tool_result}."},
        ]
    }
}


def _chat(text: str, model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def _message(text: str, model: str = "claude-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}


def _submit_openai(client: openai.OpenAI, bodies: dict[str, Any], **options: Any) -> Batch:
    lines = [
        json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body})
        for custom_id, body in bodies.items()
    ]
    upload = client.files.create(file=("batch.jsonl", "\n".join(lines).encode()), purpose="batch")
    return client.batches.create(
        input_file_id=upload.id, endpoint=CHAT_URL, completion_window="24h", **options
    )


def _wait_openai(client: openai.OpenAI, batch_id: str) -> Batch:
    deadline = time.monotonic() + 10
    while (batch := client.batches.retrieve(batch_id)).status not in OPENAI_ENDED:
        assert time.monotonic() < deadline, batch
        time.sleep(0.02)
    return batch


def _wait_anthropic(client: anthropic.Anthropic, batch_id: str) -> MessageBatch:
    deadline = time.monotonic() + 10
    while (batch := client.messages.batches.retrieve(batch_id)).processing_status != "ended":
        assert time.monotonic() < deadline, batch
        time.sleep(0.02)
    return batch


def _file_lines(client: openai.OpenAI, file_id: str | None) -> dict[str, Any]:
    if file_id is None:
        return {}
    lines = [json.loads(line) for line in client.files.content(file_id).text.splitlines()]
    return {line["custom_id"]: line for line in lines}


def _without_created(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "created"}


def test_openai_round_trip_matches_the_interactive_endpoint(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI, http: httpx.Client
) -> None:
    bodies = {
        "plain": _chat("Hello there, batch!"),
        "system": {
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Summarise the news"},
            ],
            "max_tokens": 3,
        },
    }
    created = _submit_openai(openai_client, bodies, metadata={"run": "r1"})
    assert created.status == "validating"
    assert created.endpoint == CHAT_URL
    assert created.metadata == {"run": "r1"}
    assert created.request_counts is not None
    assert created.request_counts.total == 2
    assert created.output_file_id is None

    # With the default `batch_delay_seconds=0` the first poll finds the batch completed.
    batch = openai_client.batches.retrieve(created.id)
    assert batch.status == "completed"
    assert batch.completed_at is not None
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 2, "completed": 2, "failed": 0}
    assert batch.error_file_id is None
    assert batch.output_file_id is not None
    output = openai_client.files.retrieve(batch.output_file_id)
    assert (output.purpose, output.filename) == ("batch_output", f"{batch.id}_output.jsonl")
    assert openai_client.files.content(batch.input_file_id).text.count("\n") == 1

    lines = _file_lines(openai_client, batch.output_file_id)
    assert set(lines) == set(bodies)
    input_tokens = output_tokens = 0
    for custom_id, body in bodies.items():
        line = lines[custom_id]
        assert line["error"] is None
        assert line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"]
        interactive = http.post(CHAT_URL, json=body).json()
        assert _without_created(line["response"]["body"]) == _without_created(interactive)
        completion = ChatCompletion.model_validate(line["response"]["body"])
        assert completion.usage is not None
        input_tokens += completion.usage.prompt_tokens
        output_tokens += completion.usage.completion_tokens
    assert lines["plain"]["response"]["body"]["choices"][0]["message"]["content"] == (
        "Mock reply to: Hello there, batch!"
    )
    assert lines["system"]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    assert lines["system"]["response"]["body"]["usage"] == {
        "prompt_tokens": count_tokens("You are terse.") + count_tokens("Summarise the news"),
        "completion_tokens": 3,
        "total_tokens": count_tokens("You are terse.") + count_tokens("Summarise the news") + 3,
    }
    assert batch.usage is not None
    assert (batch.usage.input_tokens, batch.usage.output_tokens) == (input_tokens, output_tokens)


def test_anthropic_round_trip_matches_the_interactive_endpoint(
    mock_llm: MockLLMServer, anthropic_client: anthropic.Anthropic, http: httpx.Client
) -> None:
    params = {
        "plain": _message("Hello there, batch!"),
        "system": {**_message("Summarise the news"), "system": "Be brief.", "max_tokens": 3},
    }
    requests: Any = [{"custom_id": custom_id, "params": body} for custom_id, body in params.items()]
    created = anthropic_client.messages.batches.create(requests=requests)
    assert created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 2
    assert created.results_url is None

    batch = anthropic_client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended"
    assert batch.ended_at is not None
    assert batch.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 2,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert batch.results_url == f"{mock_llm.url}/v1/messages/batches/{batch.id}/results"

    results = {item.custom_id: item.result for item in anthropic_client.messages.batches.results(batch.id)}
    raw = [json.loads(line) for line in http.get(batch.results_url).text.splitlines()]
    assert [line["custom_id"] for line in raw] == ["plain", "system"]
    for line in raw:
        assert line["result"]["type"] == "succeeded"
        assert line["result"]["message"] == http.post("/v1/messages", json=params[line["custom_id"]]).json()
    plain = results["plain"]
    assert plain.type == "succeeded"
    assert plain.message.content[0].type == "text"
    assert plain.message.content[0].text == "Mock reply to: Hello there, batch!"
    system = results["system"]
    assert system.type == "succeeded"
    assert system.message.stop_reason == "max_tokens"
    assert system.message.usage.input_tokens == count_tokens("Be brief.") + count_tokens("Summarise the news")
    assert system.message.usage.output_tokens == 3


def test_the_beta_client_and_prompt_cache_share_the_interactive_state(
    mock_llm: MockLLMServer, anthropic_client: anthropic.Anthropic
) -> None:
    # The prompt cache outlives resets, so this test's prefix is its own.
    system: Any = [
        {"type": "text", "text": f"System {uuid.uuid4().hex}", "cache_control": {"type": "ephemeral"}}
    ]
    first = anthropic_client.messages.create(**_message("hi", system=system))
    assert first.usage.cache_creation_input_tokens > 0

    created = anthropic_client.beta.messages.batches.create(
        requests=[{"custom_id": "cached", "params": _message("hi", system=system)}]
    )
    assert anthropic_client.beta.messages.batches.retrieve(created.id).processing_status == "ended"
    [item] = list(anthropic_client.beta.messages.batches.results(created.id))
    assert item.result.type == "succeeded"
    usage = item.result.message.usage
    assert usage.cache_creation_input_tokens == 0
    assert usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_scenario_tool_calls_inside_a_batch(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic
) -> None:
    mock_llm.configure(scenarios=WEATHER)
    tool_call = {"id": "call_0_0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    openai_bodies = {
        "turn-0": _chat("Weather in Paris?", model="weather"),
        "turn-1": {
            "model": "weather",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [tool_call]},
                {"role": "tool", "tool_call_id": "call_0_0", "content": "sunny"},
            ],
        },
    }
    batch = _wait_openai(openai_client, _submit_openai(openai_client, openai_bodies).id)
    lines = _file_lines(openai_client, batch.output_file_id)
    first = ChatCompletion.model_validate(lines["turn-0"]["response"]["body"]).choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.content == "Checking."
    assert first.message.tool_calls is not None
    [call] = first.message.tool_calls
    assert call.type == "function"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_0_0",
        "get_weather",
        {"city": "Paris"},
    )
    second = ChatCompletion.model_validate(lines["turn-1"]["response"]["body"]).choices[0]
    assert (second.finish_reason, second.message.content) == ("stop", "It is sunny.")

    tool_use = {"type": "tool_use", "id": "toolu_0_0", "name": "get_weather", "input": {"city": "Paris"}}
    tool_result = {"type": "tool_result", "tool_use_id": "toolu_0_0", "content": "rainy"}
    messages: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, tool_use]},
        {"role": "user", "content": [tool_result]},
    ]
    requests: Any = [
        {"custom_id": "turn-0", "params": _message("Weather in Paris?", model="weather")},
        {"custom_id": "turn-1", "params": {"model": "weather", "max_tokens": 100, "messages": messages}},
    ]
    created = anthropic_client.messages.batches.create(requests=requests)
    _wait_anthropic(anthropic_client, created.id)
    results = {item.custom_id: item.result for item in anthropic_client.messages.batches.results(created.id)}
    turn_0, turn_1 = results["turn-0"], results["turn-1"]
    assert turn_0.type == "succeeded"
    assert turn_0.message.stop_reason == "tool_use"
    blocks = turn_0.message.content
    assert [block.type for block in blocks] == ["text", "tool_use"]
    assert blocks[1].type == "tool_use"
    assert (blocks[1].id, blocks[1].name, blocks[1].input) == ("toolu_0_0", "get_weather", {"city": "Paris"})
    assert turn_1.type == "succeeded"
    assert turn_1.message.content[0].type == "text"
    assert turn_1.message.content[0].text == "It is rainy."

    stats = mock_llm.stats()
    assert stats["total_calls"] == 0
    assert stats["batches"]["by_scenario"] == {
        "weather": {"calls": 4, "faults": 0, "by_turn": {"0": 2, "1": 2}}
    }


def test_openai_per_request_faults_go_to_the_error_file(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(scenarios={"flaky": {"turns": [{"fault": "overloaded"}]}})
    bodies = {
        "ok": _chat("fine"),
        "limited": _chat("slow down [[mock:fault=rate_limit]]"),
        "refused": _chat("nope [[mock:fault=bad_request]]"),
        "hung": _chat("wait [[mock:fault=timeout]]"),
        "scripted": _chat("anything", model="flaky"),
        "streamed": _chat("stream it", stream=True),
        "broken": {"model": "gpt-test"},
    }
    started = time.monotonic()
    batch = _wait_openai(openai_client, _submit_openai(openai_client, bodies).id)
    # A `timeout` fault in a batch is an error at once, not a 30 s hang.
    assert time.monotonic() - started < 5
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 6)
    assert set(_file_lines(openai_client, batch.output_file_id)) == {"ok"}
    errors = _file_lines(openai_client, batch.error_file_id)
    statuses = {custom_id: line["response"]["status_code"] for custom_id, line in errors.items()}
    assert statuses == {
        "limited": 429,
        "refused": 400,
        "hung": 500,
        "scripted": 529,
        "streamed": 400,
        "broken": 400,
    }
    limited = errors["limited"]
    message = "mock rate_limit fault (scenario 'default', turn 0)"
    assert limited["response"]["body"] == {
        "error": {
            "message": message,
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert limited["error"] == {"code": "rate_limit_exceeded", "message": message}
    assert errors["hung"]["response"]["body"]["error"]["type"] == "server_error"
    assert "`messages` must be a list" in errors["broken"]["error"]["message"]
    assert "stream" in errors["streamed"]["error"]["message"]


def test_fault_header_and_policy_apply_inside_batches(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic
) -> None:
    requests: Any = [{"custom_id": f"r{i}", "params": _message(f"hi {i}")} for i in range(2)]
    created = anthropic_client.messages.batches.create(
        requests=requests, extra_headers={"X-Mock-Fault": "overloaded"}
    )
    assert _wait_anthropic(anthropic_client, created.id).request_counts.errored == 2
    for item in anthropic_client.messages.batches.results(created.id):
        assert item.result.type == "errored"
        assert item.result.error.type == "error"
        assert item.result.error.error.type == "overloaded_error"

    # The policy numbers batch requests like calls: the first fails, the second succeeds.
    mock_llm.configure(fault={"kind": "server_error", "first_n": 1})
    batch = _wait_openai(openai_client, _submit_openai(openai_client, {"a": _chat("a"), "b": _chat("b")}).id)
    assert set(_file_lines(openai_client, batch.error_file_id)) == {"a"}
    assert set(_file_lines(openai_client, batch.output_file_id)) == {"b"}
    assert mock_llm.stats()["batches"]["by_scenario"]["default"]["faults"] == 3


def test_anthropic_errored_result(mock_llm: MockLLMServer, anthropic_client: anthropic.Anthropic) -> None:
    requests: Any = [
        {"custom_id": "ok", "params": _message("fine")},
        {"custom_id": "bad", "params": _message("nope [[mock:fault=bad_request]]")},
        {"custom_id": "streamed", "params": _message("stream", stream=True)},
    ]
    created = anthropic_client.messages.batches.create(requests=requests)
    counts = _wait_anthropic(anthropic_client, created.id).request_counts
    assert (counts.succeeded, counts.errored) == (1, 2)
    results = {item.custom_id: item.result for item in anthropic_client.messages.batches.results(created.id)}
    assert results["ok"].type == "succeeded"
    bad = results["bad"]
    assert bad.type == "errored"
    assert bad.model_dump(exclude_none=True) == {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "mock bad_request fault (scenario 'default', turn 0)",
            },
        },
    }
    assert results["streamed"].type == "errored"


def test_cancel(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic
) -> None:
    mock_llm.configure(batch_delay_seconds=30)
    pending = _submit_openai(openai_client, {"a": _chat("a"), "b": _chat("b")})
    cancelling = openai_client.batches.cancel(pending.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    cancelled = openai_client.batches.retrieve(pending.id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert (cancelled.output_file_id, cancelled.error_file_id) == (None, None)
    assert cancelled.request_counts is not None
    assert (cancelled.request_counts.completed, cancelled.request_counts.failed) == (0, 0)
    with pytest.raises(openai.ConflictError):
        openai_client.batches.cancel(pending.id)

    requests: Any = [{"custom_id": f"r{i}", "params": _message(f"hi {i}")} for i in range(3)]
    created = anthropic_client.messages.batches.create(requests=requests)
    canceling = anthropic_client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = anthropic_client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.canceled, ended.request_counts.processing) == (3, 0)
    results = list(anthropic_client.messages.batches.results(created.id))
    assert [(item.custom_id, item.result.type) for item in results] == [
        ("r0", "canceled"),
        ("r1", "canceled"),
        ("r2", "canceled"),
    ]
    # Cancelling an ended message batch changes nothing.
    assert anthropic_client.messages.batches.cancel(created.id).processing_status == "ended"

    batches = mock_llm.stats()["batches"]
    assert (batches["canceled"], batches["succeeded"], batches["by_scenario"]) == (5, 0, {})


def test_unknown_ids_are_404(
    openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic, http: httpx.Client
) -> None:
    for call in (
        lambda: openai_client.batches.retrieve("batch_nope"),
        lambda: openai_client.batches.cancel("batch_nope"),
        lambda: openai_client.files.retrieve("file-nope"),
        lambda: openai_client.files.content("file-nope"),
        lambda: openai_client.files.delete("file-nope"),
        lambda: openai_client.batches.create(
            input_file_id="file-nope", endpoint=CHAT_URL, completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    for call in (
        lambda: anthropic_client.messages.batches.retrieve("msgbatch_nope"),
        lambda: anthropic_client.messages.batches.cancel("msgbatch_nope"),
        lambda: anthropic_client.messages.batches.results("msgbatch_nope"),
    ):
        with pytest.raises(anthropic.NotFoundError) as caught:
            call()
        assert caught.value.body == {
            "type": "error",
            "error": {"type": "not_found_error", "message": "No batch found with id 'msgbatch_nope'."},
        }
    assert http.get("/v1/messages/batches/msgbatch_nope/results").status_code == 404

    # A batch of one protocol is unknown to the other.
    batch = _submit_openai(openai_client, {"a": _chat("a")})
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve(batch.id)


def test_the_delay_knob(
    mock_llm: MockLLMServer,
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    http: httpx.Client,
) -> None:
    assert http.post("/_mock/config", json={"batch_delay_seconds": 0.5}).json()["batch_delay_seconds"] == 0.5
    started = time.monotonic()
    created = _submit_openai(openai_client, {"a": _chat("a")})
    message_batch = anthropic_client.messages.batches.create(
        requests=[{"custom_id": "a", "params": _message("a")}]
    )
    assert created.status == "validating"
    polled = openai_client.batches.retrieve(created.id)
    assert polled.status == "in_progress"
    assert polled.in_progress_at is not None
    assert polled.output_file_id is None
    assert anthropic_client.messages.batches.retrieve(message_batch.id).processing_status == "in_progress"
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        anthropic_client.messages.batches.results(message_batch.id)
    assert http.get(f"/v1/messages/batches/{message_batch.id}/results").status_code == 409
    assert mock_llm.stats()["batches"]["by_scenario"] == {}

    assert _wait_openai(openai_client, created.id).status == "completed"
    assert _wait_anthropic(anthropic_client, message_batch.id).processing_status == "ended"
    assert time.monotonic() - started >= 0.5
    assert mock_llm.stats()["batches"]["succeeded"] == 2


def test_invalid_batches_are_refused(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic
) -> None:
    upload = openai_client.files.create(file=("b.jsonl", b"{}"), purpose="batch")
    # pydantic-ai batches OpenAI through the Responses API, which the mock does not speak.
    endpoint: Any = "/v1/responses"
    with pytest.raises(openai.BadRequestError, match="/v1/chat/completions only"):
        openai_client.batches.create(input_file_id=upload.id, endpoint=endpoint, completion_window="24h")
    window: Any = "1h"
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        openai_client.batches.create(input_file_id=upload.id, endpoint=CHAT_URL, completion_window=window)
    other = openai_client.files.create(file=("notes.txt", b"x"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        openai_client.batches.create(input_file_id=other.id, endpoint=CHAT_URL, completion_window="24h")
    assert openai_client.files.delete(other.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(other.id)

    # A file that is not batch JSONL fails the batch, naming the lines at fault.
    good = json.dumps({"custom_id": "a", "method": "POST", "url": CHAT_URL, "body": _chat("a")})
    wrong_url = json.dumps({"custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {}})
    content = f"{good}\nnot json\n{good}\n{wrong_url}".encode()
    bad_file = openai_client.files.create(file=("bad.jsonl", content), purpose="batch")
    created = openai_client.batches.create(
        input_file_id=bad_file.id, endpoint=CHAT_URL, completion_window="24h"
    )
    failed = _wait_openai(openai_client, created.id)
    assert failed.status == "failed"
    assert failed.failed_at is not None
    assert failed.errors is not None
    assert failed.errors.data is not None
    assert [(error.line, error.code) for error in failed.errors.data] == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "mismatched_endpoint"),
    ]
    assert mock_llm.stats()["batches"]["errored"] == 4

    for requests in (
        [],
        [{"custom_id": "has space", "params": _message("a")}],
        [{"custom_id": "a", "params": _message("a")}, {"custom_id": "a", "params": _message("b")}],
    ):
        with pytest.raises(anthropic.BadRequestError):
            anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]


def test_stats_count_batches_apart_from_interactive_calls(
    mock_llm: MockLLMServer,
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    http: httpx.Client,
) -> None:
    openai_client.chat.completions.create(model="m", messages=[{"role": "user", "content": "live"}])
    interactive_only = mock_llm.stats()
    assert "batches" not in interactive_only
    assert mock_llm.engine.stats.batch_snapshot()["created"] == 0

    _wait_openai(openai_client, _submit_openai(openai_client, {"a": _chat("a"), "b": _chat("b")}).id)
    requests: Any = [
        {"custom_id": "x", "params": _message("x")},
        {"custom_id": "y", "params": _message("y [[mock:fault=rate_limit]]")},
        {"custom_id": "z", "params": _message("z")},
    ]
    _wait_anthropic(anthropic_client, anthropic_client.messages.batches.create(requests=requests).id)

    stats = http.get("/_mock/stats").json()
    assert stats == mock_llm.stats()
    assert {key: stats[key] for key in interactive_only} == interactive_only
    assert stats["batches"] == {
        "created": 2,
        "requests": 5,
        "by_protocol": {"openai": {"created": 1, "requests": 2}, "anthropic": {"created": 1, "requests": 3}},
        "succeeded": 4,
        "errored": 1,
        "canceled": 0,
        "by_scenario": {"default": {"calls": 5, "faults": 1, "by_turn": {"0": 5}}},
    }
    assert mock_llm.engine.stats.batch_snapshot() == stats["batches"]

    http.post("/_mock/reset")
    assert "batches" not in mock_llm.stats()
    assert mock_llm.engine.stats.batch_snapshot()["requests"] == 0


async def test_pydantic_ai_anthropic_batches_through_the_mock(mock_llm: MockLLMServer) -> None:
    mock_llm.configure(batch_delay_seconds=0.1)
    model = AnthropicModel("m", provider=AnthropicProvider(base_url=mock_llm.anthropic_base_url, api_key="k"))
    requests = [
        BatchRequest(custom_id="ok", messages=[ModelRequest.user_text_prompt("hello")]),
        BatchRequest(
            custom_id="bad", messages=[ModelRequest.user_text_prompt("no [[mock:fault=bad_request]]")]
        ),
    ]
    interval = timedelta(milliseconds=20)
    ok, bad = await model_request_batch(model, requests, poll_interval=interval, max_poll_interval=interval)

    assert isinstance(ok, ModelResponse)
    assert ok.parts == [TextPart(content="Mock reply to: hello")]
    assert ok.provider_details is not None
    assert ok.provider_details["processing"] == "batch"
    assert (ok.usage.input_tokens, ok.usage.output_tokens) == (1, 4)
    assert isinstance(bad, ModelRequestRejectedError)
    assert mock_llm.stats()["batches"]["by_protocol"]["anthropic"] == {"created": 1, "requests": 2}
