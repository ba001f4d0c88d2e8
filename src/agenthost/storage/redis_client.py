"""The Redis client behind shared budgets, circuit breakers and caches (`[redis] url`).

redis-py's default pool raises `MaxConnectionsError` once 100 calls are in flight, which under a
burst of concurrent runs would look like a Redis outage (budgets failing closed, breakers and
caches failing open). This pool is bounded by `[redis] max_connections` and makes calls past it
wait for a free connection instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from agenthost.settings import RedisSettings

__all__ = ["redis_client"]

# Seconds a call waits for a free pooled connection before it counts as a Redis failure.
_POOL_WAIT_SECONDS = 10.0


def redis_client(settings: RedisSettings, timeout: float = 2.0) -> Redis:
    """A client for `settings.url` with `timeout` seconds to connect and to reply."""
    # Only deployments with Redis load the client library.
    from redis.asyncio import BlockingConnectionPool, Redis  # noqa: PLC0415

    if settings.url is None:
        raise ValueError("[redis] url is not set")
    pool = BlockingConnectionPool.from_url(
        settings.url.get_secret_value(),
        max_connections=settings.max_connections,
        timeout=_POOL_WAIT_SECONDS,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return Redis.from_pool(pool)
