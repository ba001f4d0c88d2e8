"""The semantic cache through the server: paraphrases hit, other questions miss, tenants stay apart,
entries expire; with the offline MiniLM model on the database and with provider embeddings (the
mock's `/v1/embeddings`) on Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.harness import REDIS_URL, Server, metric_value, server_config

from agenthost.settings import Settings
from agenthost.testing import MockLLMServer

CACHED = {"usd": 0.0, "nanousd": 0, "status": "cached"}


def run(client: httpx.Client, text: str, user: str = "u1", agent: str = "plain") -> dict[str, Any]:
    response = client.post(f"/v1/agents/{agent}/run", json={"input": text, "user_id": user})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "succeeded", body
    return body


def test_local_embeddings_answer_paraphrases_per_tenant(tmp_path: Path, mock: MockLLMServer) -> None:
    cache = {"enabled": True, "semantic": True, "semantic_threshold": 0.85}
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url, cache=cache)
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            first = run(client, "What is your returns policy?")
            paraphrase = run(client, "What's your return policy?")
            other_question = run(client, "Where is my order 1234?")
            other_tenant = run(client, "What's your return policy?", user="u2")
            # Agents with side-effect tools never use the cache, by meaning or otherwise.
            for text in ("Can I get a refund?", "Can I get a refund please?"):
                client.post("/v1/agents/support/run", json={"input": text, "user_id": "u1"})
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert first["cost"]["status"] == "priced"
    # The stored answer is the one given to the first question, free and marked so.
    assert paraphrase["output"] == first["output"] == "Mock reply to: What is your returns policy?"
    assert paraphrase["cost"] == CACHED
    assert other_question["cost"]["status"] == "priced"
    assert other_tenant["cost"]["status"] == "priced"
    assert metric_value(metrics, "agenthost_cache_lookups_total", cache="semantic", result="hit") == 1
    # first, other question, other tenant: misses (the support agent never looks).
    assert metric_value(metrics, "agenthost_cache_lookups_total", cache="semantic", result="miss") == 3
    # 3 model calls for the plain agent, 2 for the support agent.
    assert mock.stats()["total_calls"] == 5


def test_provider_embeddings_on_redis_expire_and_are_shared_by_replicas(
    tmp_path: Path, mock: MockLLMServer, redis_prefix: str
) -> None:
    """Two servers share the Redis cache; the mock's bag-of-words embeddings rank paraphrases."""
    models = {
        "embed": {
            "provider": "openai",
            "model": "text-embedding-3-small",
            "base_url": mock.openai_base_url,
            "api_key": "k",
        }
    }
    cache = {
        "enabled": True,
        "semantic": True,
        "semantic_embeddings": "embed",
        "semantic_threshold": 0.8,
        "ttl_seconds": 2.0,
    }
    servers = []
    for name in ("a", "b"):
        config = server_config(
            f"sqlite:///{tmp_path / f'{name}.db'}",
            mock.url,
            cache=cache,
            redis={"url": REDIS_URL, "key_prefix": redis_prefix},
        )
        config["models"] = {**config["models"], **models}
        servers.append(Server(tmp_path / name, config).start())
    try:
        with servers[0].client() as a, servers[1].client() as b:
            first = run(a, "please tell me the opening hours of the shop today")
            on_b = run(b, "tell me the opening hours of the shop today please!")
            unrelated = run(b, "how do I reset the password of my account")
            time.sleep(2.2)  # past the TTL
            expired = run(a, "tell me the opening hours of the shop today please!")
    finally:
        for server in servers:
            server.stop()
    assert on_b["output"] == first["output"]
    assert on_b["cost"] == CACHED
    assert unrelated["cost"]["status"] == "priced"
    assert expired["cost"]["status"] == "priced"
    assert mock.stats()["total_calls"] == 3


@pytest.mark.parametrize(
    ("cache", "error"),
    [
        ({"semantic": True}, "cache.semantic needs cache.enabled"),
        ({"enabled": True, "semantic": True, "semantic_embeddings": "nope"}, "neither `local`"),
    ],
)
def test_semantic_cache_settings_are_checked(cache: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Settings(cache=cache)
