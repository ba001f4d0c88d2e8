"""Circuit breakers shared through Redis: one replica's failures protect the others."""

from __future__ import annotations

from pathlib import Path

from tests.harness import REDIS_URL, Server, server_config, wait_for_status

from agenthost.testing import MockLLMServer


def test_breaker_state_is_shared_across_two_server_processes(
    tmp_path: Path, mock: MockLLMServer, redis_prefix: str
) -> None:
    overrides = {
        "redis": {"url": REDIS_URL, "key_prefix": redis_prefix},
        "gateway": {
            "breaker_failure_threshold": 2,
            "breaker_cooldown_seconds": 30,
            "retry_initial_delay": 0.01,
        },
    }
    servers = [
        Server(tmp_path / name, server_config(f"sqlite:///{tmp_path / name / 'a.db'}", mock.url, **overrides))
        for name in ("a", "b")
    ]
    for server in servers:
        server.start()
    try:
        mock.configure(fault={"kind": "server_error"})
        with servers[0].client() as client:
            run = client.post("/v1/agents/plain/run", json={"input": "first replica"}).json()
        assert run["status"] == "dead"
        assert "circuit breaker open" in run["error"]["message"]
        assert mock.stats()["total_calls"] == 2  # two failures opened it; the third attempt was refused

        with servers[1].client() as client:
            ready = client.get("/ready").json()
            run = client.post("/v1/agents/plain/runs", json={"input": "second replica"}).json()
            failed = wait_for_status(client, run["id"], {"dead", "succeeded"})
        assert "open" in ready["breakers"].values()
        assert failed["status"] == "dead"
        assert "circuit breaker open" in failed["error"]["message"]
        assert mock.stats()["total_calls"] == 2  # the other replica never reached the provider
    finally:
        for server in servers:
            server.stop()


async def test_redis_store_fails_open_when_redis_is_down() -> None:
    from redis.asyncio import Redis

    from agenthost.storage.breakers_redis import RedisBreakerStore
    from agenthost.storage.redis_client import RedisKeys

    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = RedisBreakerStore(client, RedisKeys("x"))
    decision = await store.acquire("k", 1.0)
    assert decision.allowed
    assert await store.failure("k", 1) == "closed"
    assert await store.states() == {}
