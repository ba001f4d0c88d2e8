"""The Redis client behind shared budgets, rate limits, circuit breakers and caches (`[redis] url`).

redis-py's default pool raises `MaxConnectionsError` once 100 calls are in flight, which under a
burst of concurrent runs would look like a Redis outage (budgets failing closed, breakers and
caches failing open). These pools are bounded by `[redis] max_connections` and make calls past it
wait for a free connection instead (briefly for the rate limiter, which then falls back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["redis_client"]


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
