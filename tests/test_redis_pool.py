"""The shared Redis client under a burst: far more concurrent calls than pooled connections all
succeed (they wait for a connection), for the budget store and for the circuit breakers, instead
of failing the way redis-py's default pool does past 100 in-flight calls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agenthost.settings import Settings
from agenthost.storage.backends import Backends
from agenthost.storage.protocols import BudgetCounter
from tests.harness import REDIS_URL

CALLS = 300


def settings(tmp_path: Path, prefix: str, max_connections: int) -> Settings:
    return Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp_path / 'a.db'}",
            "redis": {"url": REDIS_URL, "key_prefix": prefix, "max_connections": max_connections},
        }
    )


async def test_budget_reservations_past_the_pool_size_wait_for_a_connection(
    tmp_path: Path, redis_prefix: str
) -> None:
    backends = await Backends.open(settings(tmp_path, redis_prefix, max_connections=4))
    store = backends.budget_counters
    counter = BudgetCounter("user:u1:day:test", 10 * CALLS, datetime.now(UTC) + timedelta(hours=1))
    try:
        refused = await asyncio.gather(*(store.reserve([counter], 10) for _ in range(CALLS)))
        assert refused == [None] * CALLS
        # One more is refused by the limit, not by the pool: the counter holds every reservation.
        assert await store.reserve([counter], 10) == counter
        assert await store.spent([counter]) == {counter.key: (0, 10 * CALLS)}
    finally:
        await backends.aclose()


async def test_breaker_calls_past_the_pool_size_wait_for_a_connection(
    tmp_path: Path, redis_prefix: str
) -> None:
    backends = await Backends.open(settings(tmp_path, redis_prefix, max_connections=4))
    breakers = backends.breakers
    try:
        decisions = await asyncio.gather(*(breakers.acquire(f"model-{i % 7}", 30.0) for i in range(CALLS)))
        assert all(decision.allowed for decision in decisions)
        states = await asyncio.gather(*(breakers.failure("model-0", 1_000) for _ in range(CALLS)))
        assert set(states) == {"closed"}
    finally:
        await backends.aclose()
