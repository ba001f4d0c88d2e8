"""Redis: the one client pool of a process, and the layout of every key agenthost writes there.

Redis (`[redis] url`) shares budgets, rate limits, circuit breakers and caches across replicas.
`storage/backends.py` opens one pool per process and every Redis store uses it.

redis-py's default pool raises `MaxConnectionsError` once 100 calls are in flight, which under a
burst of concurrent runs would look like a Redis outage (budgets failing closed, breakers and
caches failing open). The pool is bounded by `[redis] max_connections` and makes calls past it
wait for a free connection instead; callers that must answer fast (the rate limiter) put their
own deadline around a call.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisKeys", "redis_client", "tenant_index_key"]


def redis_client(url: str, *, max_connections: int, timeout: float = 2.0, pool_wait: float = 10.0) -> Redis:
    """A client for `url` on a pool of `max_connections`, with `timeout` seconds to connect and to
    reply; a call finding every connection busy waits up to `pool_wait` seconds for one, then
    fails like an unreachable Redis."""
    # Only deployments with Redis load the client library.
    from redis.asyncio import BlockingConnectionPool, Redis  # noqa: PLC0415

    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_wait,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return Redis.from_pool(pool)


class RedisKeys:
    """Every Redis key agenthost uses, under one prefix (`[redis] key_prefix`)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    # -- exact response cache: one string per answer ----------------------------------------
    def cache_entry(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    # -- semantic cache: a sorted set of entry ids per partition, two strings per entry --------
    def semantic_index(self, partition: str) -> str:
        return f"{self.prefix}:semantic:{partition}"

    def semantic_vector(self, partition: str, entry: str) -> str:
        return f"{self.semantic_index(partition)}:{entry}:v"

    def semantic_answer(self, partition: str, entry: str) -> str:
        return f"{self.semantic_index(partition)}:{entry}:a"

    # -- a tenant's cache entries (`kind`: `cache` or `semantic`), so erasure can find them ----
    def tenant_index(self, kind: str, tenant: str) -> str:
        return f"{self.prefix}:{kind}:tenant:{hashlib.sha256(tenant.encode()).hexdigest()[:32]}"

    # -- circuit breakers: a hash per breaker, a set of every breaker key ------------------------
    def breaker(self, key: str) -> str:
        return f"{self.prefix}:breaker:{key}"

    @property
    def breaker_index(self) -> str:
        return f"{self.prefix}:breakers"

    # -- budget counters: a hash per counter (`s` spent, `r` reserved, `c` closed: the limit it
    #    had when it refused a reservation, so the refusal sticks until the period ends) ------
    def budget(self, counter: str) -> str:
        return f"{self.prefix}:budget:{counter}"

    # -- rate-limit counters: a hash (`w` window, `c` current, `p` previous) per limit ---------
    def rate(self, kind: str, window: int, scope: str, identity: str) -> str:
        return f"{self.prefix}:ratelimit:{kind}:{window}:{scope}:{identity}"


def tenant_index_key(prefix: str, kind: str, tenant: str) -> str:
    """`RedisKeys(prefix).tenant_index(kind, tenant)`."""
    return RedisKeys(prefix).tenant_index(kind, tenant)
