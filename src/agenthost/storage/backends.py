"""The one place a process opens its state: the database (migrated first), the Redis pool, and
every store on them, chosen by configuration; and the one place it closes them.

| kind of state            | default (one process)            | with `[redis] url`           |
|--------------------------|----------------------------------|------------------------------|
| runs, events, approvals, threads, ledger, alerts, batches, keys, audit | SQL (SQLite or Postgres) | SQL |
| response and semantic caches | SQL (`caches_sql.py`)        | Redis (`caches_redis.py`)    |
| budget counters          | SQL (`budgets_sql.py`)           | Redis (`budgets_redis.py`)   |
| rate-limit counters      | memory (`ratelimit_memory.py`)   | Redis (`ratelimit_redis.py`) |
| circuit breakers         | memory (`breakers_memory.py`)    | Redis (`breakers_redis.py`)  |

One Redis pool serves every Redis store (`redis_client.py`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from agenthost.settings import Settings
from agenthost.storage.alerts import AlertStore
from agenthost.storage.approvals import ApprovalStore
from agenthost.storage.audit import AuditStore
from agenthost.storage.batches import BatchStore
from agenthost.storage.breakers_memory import MemoryBreakerStore
from agenthost.storage.budgets_sql import SqlBudgetStore
from agenthost.storage.caches_sql import SqlResponseCache, SqlSemanticCache
from agenthost.storage.engine import DatabaseURLs, create_app_engine, database_urls
from agenthost.storage.keys import KeyStore
from agenthost.storage.ledger import LedgerStore
from agenthost.storage.migrate import upgrade
from agenthost.storage.protocols import (
    BreakerStore,
    BudgetCounterStore,
    Erasable,
    RateCounterStore,
    ResponseCacheStore,
    SemanticCacheStore,
)
from agenthost.storage.redis_client import RedisKeys, redis_client
from agenthost.storage.runs import RunStore
from agenthost.storage.threads import ThreadStore

__all__ = ["Backends"]


@dataclass(frozen=True)
class Backends:
    """Every store of the process, on one engine and (optionally) one Redis pool."""

    urls: DatabaseURLs
    engine: AsyncEngine
    redis: Any
    """The Redis client (None without `[redis] url`)."""
    redis_keys: RedisKeys
    runs: RunStore
    approvals: ApprovalStore
    threads: ThreadStore
    ledger: LedgerStore
    alerts: AlertStore
    batches: BatchStore
    keys: KeyStore
    audit: AuditStore
    response_cache: ResponseCacheStore
    semantic_cache: SemanticCacheStore
    budget_counters: BudgetCounterStore
    rate_counters: RateCounterStore | None
    """Shared rate-limit counters (Redis); None: each process counts in memory."""
    breakers: BreakerStore

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = True) -> Backends:
        """Migrate the database (unless told not to), then open every store."""
        urls = database_urls(settings.database_url.get_secret_value())
        if migrate:
            await asyncio.to_thread(upgrade, urls)
        engine = create_app_engine(urls)
        keys = RedisKeys(settings.redis.key_prefix)
        sql = _SqlStores(engine)
        if settings.redis.url is None:
            return cls(
                urls=urls,
                engine=engine,
                redis=None,
                redis_keys=keys,
                **sql.common(),
                response_cache=SqlResponseCache(engine),
                semantic_cache=SqlSemanticCache(engine),
                budget_counters=SqlBudgetStore(engine),
                rate_counters=None,
                breakers=MemoryBreakerStore(),
            )
        # Only deployments with Redis load its client library and its stores.
        from agenthost.storage.breakers_redis import RedisBreakerStore  # noqa: PLC0415
        from agenthost.storage.budgets_redis import RedisBudgetStore  # noqa: PLC0415
        from agenthost.storage.caches_redis import RedisResponseCache, RedisSemanticCache  # noqa: PLC0415
        from agenthost.storage.ratelimit_redis import RedisCounters  # noqa: PLC0415

        redis = redis_client(
            settings.redis.url.get_secret_value(), max_connections=settings.redis.max_connections
        )
        return cls(
            urls=urls,
            engine=engine,
            redis=redis,
            redis_keys=keys,
            **sql.common(),
            response_cache=RedisResponseCache(redis, keys),
            semantic_cache=RedisSemanticCache(redis, keys),
            budget_counters=RedisBudgetStore(redis, keys),
            rate_counters=RedisCounters(redis),
            breakers=RedisBreakerStore(redis, keys),
        )

    def erasable(self) -> list[Erasable]:
        """The stores holding personal data, in the order erasure must visit them: what is found
        through a user's runs first (threads), the runs last (they lose the user's id)."""
        return [self.threads, self.response_cache, self.semantic_cache, self.ledger, self.runs]

    async def aclose(self) -> None:
        """Close the Redis pool and the database engine."""
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


@dataclass(frozen=True)
class _SqlStores:
    engine: AsyncEngine

    def common(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "runs": RunStore(engine),
            "approvals": ApprovalStore(engine),
            "threads": ThreadStore(engine),
            "ledger": LedgerStore(engine),
            "alerts": AlertStore(engine),
            "batches": BatchStore(engine),
            "keys": KeyStore(engine),
            "audit": AuditStore(engine),
        }
