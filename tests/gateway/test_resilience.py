"""The gateway against every fault the mock LLM injects, over a real socket.

Each fault ends in success through a retry or a fallback, or in a clean error: never an unhandled
exception, a hang, or a truncated answer passed off as complete.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelAPIError, ModelRequestRejectedError
from tests.harness import free_port

from agenthost.errors import AllModelsUnavailableError, BreakerOpenError
from agenthost.gateway.chain import DEGRADED_MODEL_NAME
from agenthost.gateway.models import Gateway, GatewayStores
from agenthost.settings import Settings
from agenthost.testing import MockLLMServer

FAST = {"retry_initial_delay": 0.01, "retry_max_delay": 0.05, "retry_after_max_seconds": 2.0}


def gateway(
    mock: MockLLMServer, *, gateway: dict[str, Any] | None = None, **models: dict[str, Any]
) -> Gateway:
    base = {
        "openai": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": mock.openai_base_url,
            "api_key": "k",
        },
        "anthropic": {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "base_url": mock.url,
            "api_key": "k",
        },
        "down": {
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "api_key": "k",
            "timeout": 2.0,
        },
    }
    return Gateway(
        Settings(models={**base, **models}, gateway={**FAST, **(gateway or {})}), GatewayStores.detached()
    )


async def ask(model: Any, prompt: str = "hello", *, stream: bool) -> str:
    agent = Agent(model)
    if stream:
        async with agent.run_stream(prompt) as result:
            return "".join([delta async for delta in result.stream_text(delta=True)])
    return str((await agent.run(prompt)).output)


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "overloaded", "malformed", "timeout"])
async def test_transient_faults_are_retried(
    mock: MockLLMServer, fault: str, provider: str, stream: bool
) -> None:
    """Two failed attempts, then success: 3 calls reach the provider and the caller sees the answer."""
    mock.configure(fault={"kind": fault, "first_n": 2, "retry_after": 0.05, "hang_seconds": 3})
    models = {provider: {"timeout": 0.5}} if fault == "timeout" else {}
    gw = gateway(mock)
    if models:
        gw = gateway(mock, **{provider: {**gw.settings.models[provider].model_dump(), **models[provider]}})
    started = time.monotonic()
    assert await ask(gw.chain(provider), stream=stream) == "Mock reply to: hello"
    assert mock.stats()["total_calls"] == 3
    if fault == "rate_limit":
        assert time.monotonic() - started >= 0.1  # Retry-After was honoured twice


async def test_retry_after_beyond_the_limit_is_not_waited_for(mock: MockLLMServer) -> None:
    """A provider asking for a long wait is not retried; the call fails at once (the chain moves on)."""
    mock.configure(fault={"kind": "rate_limit", "retry_after": 60})
    started = time.monotonic()
    with pytest.raises(ModelAPIError):
        await ask(gateway(mock).chain("openai"), stream=False)
    assert time.monotonic() - started < 5
    assert mock.stats()["total_calls"] == 1


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_client_errors_are_not_retried(mock: MockLLMServer, stream: bool) -> None:
    mock.configure(fault={"kind": "bad_request"})
    with pytest.raises(ModelRequestRejectedError):
        await ask(gateway(mock).chain("openai"), stream=stream)
    assert mock.stats()["total_calls"] == 1


async def test_attempts_are_bounded(mock: MockLLMServer) -> None:
    mock.configure(fault={"kind": "server_error"})
    with pytest.raises(ModelAPIError):
        await ask(gateway(mock, gateway={"retry_max_attempts": 4}).chain("openai"), stream=False)
    assert mock.stats()["total_calls"] == 4


async def test_stream_cut_mid_way_is_a_clean_error(mock: MockLLMServer) -> None:
    """Text already streamed cannot be taken back by a retry: the caller gets an error, not a short answer."""
    mock.configure(fault={"kind": "stream_cut"})
    with pytest.raises(ModelAPIError):
        await ask(gateway(mock).chain("openai"), "a long enough prompt to cut", stream=True)


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_fallback_serves_when_the_primary_is_down(mock: MockLLMServer, stream: bool) -> None:
    gw = gateway(
        mock,
        down={
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "api_key": "k",
            "fallbacks": ["anthropic"],
        },
    )
    agent = Agent(gw.chain("down"))
    if stream:
        async with agent.run_stream("hi") as result:
            text = "".join([d async for d in result.stream_text(delta=True)])
            response = result.response
    else:
        run = await agent.run("hi")
        text, response = str(run.output), run.response
    assert text == "Mock reply to: hi"
    assert response.model_name == "claude-haiku-4-5"
    assert mock.stats()["by_protocol"]["anthropic"] == 1


async def test_all_models_unavailable(mock: MockLLMServer) -> None:
    mock.configure(fault={"kind": "server_error"})
    gw = gateway(
        mock,
        openai={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": mock.openai_base_url,
            "api_key": "k",
            "fallbacks": ["anthropic", "down"],
        },
    )
    with pytest.raises(AllModelsUnavailableError) as info:
        await ask(gw.chain("openai"), stream=True)
    assert len(info.value.errors) == 3
    assert mock.stats()["total_calls"] == 6  # 3 attempts each on the two reachable models


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_degradation_message_when_all_fail(mock: MockLLMServer, stream: bool) -> None:
    gw = gateway(mock, gateway={"degradation_message": "We are busy; please try again soon."})
    agent = Agent(gw.chain("down"))
    if stream:
        async with agent.run_stream("hi") as result:
            text = "".join([d async for d in result.stream_text(delta=True)])
            response = result.response
    else:
        run = await agent.run("hi")
        text, response = str(run.output), run.response
    assert text == "We are busy; please try again soon."
    assert response.model_name == DEGRADED_MODEL_NAME


async def test_circuit_breaker_opens_fails_fast_half_opens_and_closes(mock: MockLLMServer) -> None:
    gw = gateway(mock, gateway={"breaker_failure_threshold": 2, "breaker_cooldown_seconds": 1.0})
    model = gw.chain("openai")
    mock.configure(fault={"kind": "server_error"})
    with pytest.raises(BreakerOpenError):
        await ask(model, stream=False)  # 2 failed attempts open it; the 3rd attempt is refused
    assert mock.stats()["total_calls"] == 2
    assert set((await gw.breakers.states()).values()) == {"open"}

    with pytest.raises(BreakerOpenError):
        await ask(model, stream=True)  # open: fails fast, nothing reaches the provider
    assert mock.stats()["total_calls"] == 2

    time.sleep(1.1)  # the cool-down passes: the next call is a probe
    mock.configure(fault=None)
    assert await ask(model, stream=False) == "Mock reply to: hello"
    assert mock.stats()["total_calls"] == 3
    assert set((await gw.breakers.states()).values()) == {"closed"}


async def test_a_failed_probe_opens_the_breaker_again(mock: MockLLMServer) -> None:
    gw = gateway(
        mock,
        gateway={"breaker_failure_threshold": 1, "breaker_cooldown_seconds": 0.5, "retry_max_attempts": 1},
    )
    model = gw.chain("openai")
    mock.configure(fault={"kind": "server_error"})
    with pytest.raises(ModelAPIError):
        await ask(model, stream=False)
    time.sleep(0.6)
    with pytest.raises(ModelAPIError):
        await ask(model, stream=False)  # the probe fails
    assert mock.stats()["total_calls"] == 2
    with pytest.raises(BreakerOpenError):
        await ask(model, stream=False)
    assert mock.stats()["total_calls"] == 2
