"""Rate limits through the server: 429 with Retry-After and RateLimit-* headers, per key, and
exact across two server processes sharing Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from agenthost.testing import MockLLMServer
from tests.harness import REDIS_URL, Server, server_config
from tests.security.test_auth import make_key


def test_exactly_limit_admitted_across_two_servers(
    tmp_path: Path, mock: MockLLMServer, redis_prefix: str
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    config = server_config(
        database,
        mock.url,
        redis={"url": REDIS_URL, "key_prefix": redis_prefix},
        rate_limits={
            "per_key": {"requests_per_minute": 25},
            "per_ip": {"requests_per_minute": 0},
            # A loaded CI machine must not trip the 0.5 s default into local counting.
            "store_timeout_seconds": 5,
        },
    )
    first = Server(tmp_path / "one", config).start()
    second = Server(tmp_path / "two", config).start()
    try:
        key, _ = make_key(first, name="limited")
        own, _ = make_key(first, name="own-limit", rate_limits={"requests_per_minute": 3})

        def call(i: int) -> httpx.Response:
            server = (first, second)[i % 2]
            with server.client(key=key) as client:
                return client.get("/v1/runs", params={"limit": 1})

        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(call, range(60)))
        admitted = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        assert len(admitted) == 25
        assert len(refused) == 35
        assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
        assert refused[0].json()["error"]["code"] == "rate_limited"
        assert refused[0].headers["RateLimit-Limit"] == "25"
        assert refused[0].headers["RateLimit-Remaining"] == "0"
        assert "RateLimit-Policy" in refused[0].headers
        assert admitted[0].headers["RateLimit-Limit"] == "25"  # successful responses carry them too

        with second.client(key=own) as client:
            statuses = [client.get("/v1/runs").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]  # the key's own limit replaces per_key

        # Tokens per minute: the first call spends more than the key's 5 tokens, the next waits.
        tokens, _ = make_key(first, name="tokens", rate_limits={"tokens_per_minute": 5})
        body = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}
        with first.client(key=tokens) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            spent = client.post("/v1/chat/completions", json=body)
        assert spent.status_code == 429
        assert "token" in spent.json()["error"]["message"]
    finally:
        first.stop()
        second.stop()
