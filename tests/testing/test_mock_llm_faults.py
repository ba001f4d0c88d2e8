"""Fault injection as the official SDKs see it: status errors, hangs, bad JSON and cut connections."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anthropic
import httpx
import httpx2
import openai
import pytest

if TYPE_CHECKING:
    from agenthost.testing import MockLLMServer

USER: Any = [{"role": "user", "content": "hi"}]


def _openai(
    client: openai.OpenAI, fault: str | None = None, *, stream: bool = False, text: str = "hi"
) -> Any:
    headers = {"X-Mock-Fault": fault} if fault else None
    messages: Any = [{"role": "user", "content": text}]
    result = client.chat.completions.create(
        model="m", messages=messages, stream=stream, extra_headers=headers
    )
    return list(result) if stream else result


def _anthropic(client: anthropic.Anthropic, fault: str | None = None, *, stream: bool = False) -> Any:
    headers = {"X-Mock-Fault": fault} if fault else None
    result = client.messages.create(
        model="m", max_tokens=50, messages=USER, stream=stream, extra_headers=headers
    )
    return list(result) if stream else result


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_openai(openai_client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        _openai(openai_client, "rate_limit", stream=stream)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    error = caught.value.response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_anthropic_with_scripted_retry_after(
    mock_llm: MockLLMServer, anthropic_client: anthropic.Anthropic, stream: bool
) -> None:
    mock_llm.configure(scenarios={"m": {"turns": [{"fault": {"kind": "rate_limit", "retry_after": 2}}]}})
    with pytest.raises(anthropic.RateLimitError) as caught:
        _anthropic(anthropic_client, stream=stream)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "mock rate_limit fault (scenario 'm', turn 0)"},
    }


def test_server_error_and_overloaded(
    openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.InternalServerError) as o500:
        _openai(openai_client, "server_error")
    assert o500.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as o529:
        _openai(openai_client, "overloaded", stream=True)
    assert o529.value.status_code == 529
    assert o529.value.response.json()["error"]["type"] == "server_error"

    with pytest.raises(anthropic.InternalServerError) as a500:
        _anthropic(anthropic_client, "server_error")
    assert a500.value.status_code == 500
    assert a500.value.response.json()["error"]["type"] == "api_error"
    with pytest.raises(anthropic.OverloadedError) as a529:
        _anthropic(anthropic_client, "overloaded", stream=True)
    assert a529.value.status_code == 529
    assert a529.value.response.json()["error"]["type"] == "overloaded_error"


def test_timeout_trips_the_client_timeout(mock_llm: MockLLMServer) -> None:
    mock_llm.configure(scenarios={"m": {"turns": [{"fault": {"kind": "timeout", "hang_seconds": 3}}]}})
    with openai.OpenAI(base_url=mock_llm.openai_base_url, api_key="k", max_retries=0, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            _openai(client)
        assert time.monotonic() - started < 2
    with (
        anthropic.Anthropic(
            base_url=mock_llm.anthropic_base_url, api_key="k", max_retries=0, timeout=0.3
        ) as client,
        pytest.raises(anthropic.APITimeoutError),
    ):
        _anthropic(client, stream=True)


def test_timeout_answers_normally_after_hanging(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(fault={"kind": "timeout", "hang_seconds": 0.3})
    started = time.monotonic()
    response = _openai(openai_client)
    assert time.monotonic() - started >= 0.28
    assert response.choices[0].message.content == "Mock reply to: hi"


def test_malformed_bodies(openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(json.JSONDecodeError):
        _openai(openai_client, "malformed")
    with pytest.raises(json.JSONDecodeError):
        _openai(openai_client, "malformed", stream=True)
    with pytest.raises(json.JSONDecodeError):
        _anthropic(anthropic_client, "malformed")
    with pytest.raises(json.JSONDecodeError):
        _anthropic(anthropic_client, "malformed", stream=True)


def test_malformed_raw_shapes(http: httpx.Client) -> None:
    body = {"model": "m", "messages": USER}
    response = http.post("/v1/chat/completions", json=body, headers={"X-Mock-Fault": "malformed"})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    streamed = http.post(
        "/v1/chat/completions", json=body | {"stream": True}, headers={"X-Mock-Fault": "malformed"}
    )
    data = [line.removeprefix("data: ") for line in streamed.text.split("\n") if line.startswith("data: ")]
    json.loads(data[0])
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[1])


def test_stream_cut_breaks_iteration_midway(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios={"m": {"turns": [{"text": " ".join(f"w{i}" for i in range(40))}]}})
    stream = openai_client.chat.completions.create(
        model="m", messages=USER, stream=True, extra_headers={"X-Mock-Fault": "stream_cut"}
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    # About half the events arrive before the connection drops: role chunk + 20 of 40 tokens.
    assert "".join(received).split() == [f"w{i}" for i in range(20)]


def test_stream_cut_anthropic_stream_and_non_stream(anthropic_client: anthropic.Anthropic) -> None:
    stream = anthropic_client.messages.create(
        model="m", max_tokens=50, messages=USER, stream=True, extra_headers={"X-Mock-Fault": "stream_cut"}
    )
    received: list[str] = []
    # The anthropic SDK lets the transport error through while iterating; openai wraps it.
    with pytest.raises(httpx2.RemoteProtocolError):
        received.extend(event.type for event in stream)
    assert received[0] == "message_start"
    assert "message_stop" not in received
    with pytest.raises(anthropic.APIConnectionError):
        _anthropic(anthropic_client, "stream_cut")


def test_stream_cut_raw_is_an_incomplete_read(http: httpx.Client) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json=body, headers={"X-Mock-Fault": "stream_cut"})
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(
            "/v1/chat/completions", json=body | {"stream": False}, headers={"X-Mock-Fault": "stream_cut"}
        )


def test_directive_in_last_user_message(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        _openai(openai_client, text="please fail [[mock:fault=server_error]]")
    assert (
        _openai(openai_client, text="no directive").choices[0].message.content
        == "Mock reply to: no directive"
    )


def test_unknown_fault_kind_is_a_400(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown fault kind"):
        _openai(openai_client, "explode")


def test_header_fault_beats_scripted_turn_fault(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(scenarios={"m": {"turns": [{"fault": "rate_limit"}]}})
    with pytest.raises(openai.InternalServerError):
        _openai(openai_client, "server_error")
    with pytest.raises(openai.RateLimitError):
        _openai(openai_client)


def test_first_n_faults_then_success_and_sdk_retries_through_them(mock_llm: MockLLMServer) -> None:
    mock_llm.configure(fault={"kind": "server_error", "first_n": 2})
    with openai.OpenAI(base_url=mock_llm.openai_base_url, api_key="k", max_retries=0) as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                _openai(client)
        assert _openai(client).choices[0].message.content == "Mock reply to: hi"
    assert mock_llm.stats()["by_scenario"]["default"] == {"calls": 3, "faults": 2, "by_turn": {"0": 3}}

    mock_llm.configure(fault={"kind": "rate_limit", "first_n": 1, "retry_after": 0.05})
    with anthropic.Anthropic(base_url=mock_llm.anthropic_base_url, api_key="k", max_retries=2) as client:
        assert _anthropic(client).content[0].text == "Mock reply to: hi"
    assert mock_llm.stats()["by_protocol"]["anthropic"] == 2


def test_every_n_and_seeded_probability(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    def outcomes(count: int) -> list[bool]:
        results = []
        for _ in range(count):
            try:
                _openai(openai_client)
                results.append(True)
            except openai.InternalServerError:
                results.append(False)
        return results

    mock_llm.configure(fault={"kind": "server_error", "every_n": 3})
    assert outcomes(6) == [True, True, False, True, True, False]

    mock_llm.configure(fault={"kind": "server_error", "probability": 0.5, "seed": 7})
    first = outcomes(12)
    mock_llm.configure(fault={"kind": "server_error", "probability": 0.5, "seed": 7})
    assert outcomes(12) == first
    assert True in first
    assert False in first
