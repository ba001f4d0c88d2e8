"""The exact response cache: hits, misses, TTL, tenant isolation, stores, and runs with side effects."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelAPIError
from tests.harness import REDIS_URL, REPO, Server, server_config

from agenthost.gateway.cache import CACHE_PROVIDER, cache_scope
from agenthost.gateway.models import Gateway, GatewayStores
from agenthost.settings import Settings
from agenthost.storage.breakers_memory import MemoryBreakerStore
from agenthost.storage.caches_redis import RedisResponseCache
from agenthost.storage.caches_sql import SqlResponseCache
from agenthost.storage.engine import create_app_engine, database_urls
from agenthost.storage.migrate import upgrade
from agenthost.storage.redis_client import RedisKeys, redis_client
from agenthost.testing import MockLLMServer


@pytest.fixture
async def sql_gateway(tmp_path: Path, mock: MockLLMServer) -> AsyncIterator[Any]:
    def build(**cache: Any) -> Gateway:
        settings = Settings(
            models={
                "m": {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "base_url": mock.openai_base_url,
                    "api_key": "k",
                }
            },
            cache={"enabled": True, **cache},
        )
        return Gateway(settings, GatewayStores(MemoryBreakerStore(), SqlResponseCache(engine)))

    urls = database_urls(f"sqlite:///{tmp_path / 'cache.db'}")
    upgrade(urls)
    engine = create_app_engine(urls)
    yield build
    await engine.dispose()


async def ask(model: Any, prompt: str = "hello", *, stream: bool = False, **settings: Any) -> Any:
    agent = Agent(model, model_settings=settings or None)
    if stream:
        async with agent.run_stream(prompt) as result:
            text = "".join([d async for d in result.stream_text(delta=True)])
            return text, result.response
    run = await agent.run(prompt)
    return str(run.output), run.response


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_exact_hit_costs_nothing_and_says_so(
    sql_gateway: Any, mock: MockLLMServer, stream: bool
) -> None:
    gateway = sql_gateway()
    model = gateway.passthrough("m")
    cache_scope(enabled=True, tenant="t1")
    first_text, first = await ask(model, stream=stream)
    second_text, second = await ask(model, stream=stream)
    assert first_text == second_text == "Mock reply to: hello"
    assert mock.stats()["total_calls"] == 1
    assert first.provider_name != CACHE_PROVIDER
    assert second.provider_name == CACHE_PROVIDER
    assert second.usage.input_tokens == second.usage.output_tokens == 0
    price = gateway.prices.price(second.model_name, second.provider_name, second.usage)
    assert (price.nanousd, price.status) == (0, "cached")


async def test_misses_on_different_input_settings_or_tenant(sql_gateway: Any, mock: MockLLMServer) -> None:
    model = sql_gateway().passthrough("m")
    cache_scope(enabled=True, tenant="alice")
    await ask(model, "hello")
    await ask(model, "hello again")
    await ask(model, "hello", temperature=0.2)
    cache_scope(enabled=True, tenant="bob")
    await ask(model, "hello")
    assert mock.stats()["total_calls"] == 4
    cache_scope(enabled=True, tenant="alice")
    await ask(model, "hello", temperature=0.2)
    assert mock.stats()["total_calls"] == 4


async def test_shared_across_tenants_when_configured(sql_gateway: Any, mock: MockLLMServer) -> None:
    model = sql_gateway(shared_across_tenants=True).passthrough("m")
    cache_scope(enabled=True, tenant="alice")
    await ask(model)
    cache_scope(enabled=True, tenant="bob")
    _, response = await ask(model)
    assert response.provider_name == CACHE_PROVIDER
    assert mock.stats()["total_calls"] == 1


async def test_entries_expire(sql_gateway: Any, mock: MockLLMServer) -> None:
    model = sql_gateway(ttl_seconds=0.5).passthrough("m")
    cache_scope(enabled=True, tenant=None)
    await ask(model)
    await ask(model)
    assert mock.stats()["total_calls"] == 1
    time.sleep(0.6)
    _, response = await ask(model)
    assert response.provider_name != CACHE_PROVIDER
    assert mock.stats()["total_calls"] == 2


async def test_errors_and_disabled_scopes_are_not_cached(sql_gateway: Any, mock: MockLLMServer) -> None:
    model = sql_gateway().passthrough("m")
    cache_scope(enabled=True, tenant=None)
    mock.configure(fault={"kind": "bad_request"})
    with pytest.raises(ModelAPIError):
        await ask(model)
    mock.configure(fault=None)
    _, response = await ask(model)
    assert response.provider_name != CACHE_PROVIDER
    cache_scope(enabled=False, tenant=None)
    _, response = await ask(model)
    assert response.provider_name != CACHE_PROVIDER
    assert mock.stats()["total_calls"] == 3


async def test_redis_store_is_shared_by_replicas(mock: MockLLMServer, redis_prefix: str) -> None:
    def replica() -> Gateway:
        cache = RedisResponseCache(redis_client(REDIS_URL, max_connections=4), RedisKeys(redis_prefix))
        return Gateway(
            Settings(
                models={
                    "m": {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "base_url": mock.openai_base_url,
                        "api_key": "k",
                    }
                },
                cache={"enabled": True},
                redis={"url": REDIS_URL, "key_prefix": redis_prefix},
            ),
            GatewayStores(MemoryBreakerStore(), cache),
        )

    cache_scope(enabled=True, tenant="t")
    await ask(replica().passthrough("m"))
    _, response = await ask(replica().passthrough("m"))
    assert response.provider_name == CACHE_PROVIDER
    assert mock.stats()["total_calls"] == 1


def test_runs_are_cached_unless_their_agent_has_side_effect_tools(
    tmp_path: Path, mock: MockLLMServer
) -> None:
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url, cache={"enabled": True})
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            first = client.post("/v1/agents/plain/run", json={"input": "cache me", "user_id": "u1"}).json()
            second = client.post("/v1/agents/plain/run", json={"input": "cache me", "user_id": "u1"}).json()
            other_user = client.post(
                "/v1/agents/plain/run", json={"input": "cache me", "user_id": "u2"}
            ).json()
            assert mock.stats()["total_calls"] == 2
            # The support agent's refund tool needs approval: its answers are never cached.
            for _ in range(2):
                client.post("/v1/agents/support/run", json={"input": "no cache for me", "user_id": "u1"})
            assert mock.stats()["total_calls"] == 4
    finally:
        server.stop()
    assert first["output"] == second["output"] == other_user["output"]
    assert first["cost"]["status"] == "priced"
    assert second["cost"] == {"usd": 0.0, "nanousd": 0, "status": "cached"}
    assert other_user["cost"]["status"] == "priced"
    assert (REPO / "docs" / "configuration.md").read_text().count("[cache]") >= 1


async def test_anthropic_prompt_caching_is_priced_by_token_kind(mock: MockLLMServer) -> None:
    """With `prompt_caching`, the system prompt is written to the cache once, then read at 10 %."""
    settings = Settings(
        models={
            "claude": {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": mock.url,
                "api_key": "k",
                "prompt_caching": True,
            }
        }
    )
    gateway = Gateway(settings, GatewayStores.detached())
    agent = Agent(gateway.passthrough("claude"), instructions="You are a careful support agent. " * 40)
    first = (await agent.run("one")).response
    second = (await agent.run("two")).response
    assert first.usage.cache_write_tokens > 0
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    # claude-haiku-4-5 per million tokens: input $1, cache write $1.25, cache read $0.10, output $5.
    for response in (first, second):
        usage = response.usage
        uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        expected = uncached * 1000 + usage.cache_write_tokens * 1250 + usage.cache_read_tokens * 100
        expected += usage.output_tokens * 5000
        price = gateway.prices.price(response.model_name or "", response.provider_name, usage)
        assert (price.nanousd, price.status) == (expected, "priced")
