"""Circuit-breaker state in Redis, shared by every replica, changed only by atomic Lua scripts.

Times come from Redis (`TIME`), so replicas with drifting clocks agree on cool-downs. If Redis is
unreachable, calls are admitted (the breaker fails open, so a Redis outage never stops traffic)
and a warning is logged; the per-call retries still apply.
"""

from __future__ import annotations

from typing import Any, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agenthost.storage.protocols import BreakerDecision, BreakerState
from agenthost.storage.redis_client import RedisKeys

__all__ = ["RedisBreakerStore"]

_log = structlog.get_logger(__name__)

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "

_ACQUIRE = (
    _NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {1, 'closed', '0'} end
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
local remaining = opened + tonumber(ARGV[1]) - now
if remaining <= 0 then
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'opened_at', tostring(now))
  return {1, 'half_open', '0'}
end
return {0, state, tostring(remaining)}
"""
)

_FAILURE = (
    _NOW
    + """
redis.call('SADD', KEYS[2], KEYS[1])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now))
  return 'open'
end
if state == 'open' then return 'open' end
redis.call('HSET', KEYS[1], 'state', 'closed')
return 'closed'
"""
)


class RedisBreakerStore:
    """`BreakerStore` on Redis; keys are `<prefix>:breaker:<provider>:<endpoint>:<model>`."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._index = keys.breaker_index
        self._acquire = redis.register_script(_ACQUIRE)
        self._failure = redis.register_script(_FAILURE)

    def _key(self, key: str) -> str:
        return self._keys.breaker(key)

    async def acquire(self, key: str, cooldown: float) -> BreakerDecision:
        try:
            allowed, state, remaining = cast(
                "list[Any]", await self._acquire(keys=[self._key(key)], args=[cooldown])
            )
        except RedisError as exc:
            _log.warning("breaker_store_unavailable", error=str(exc))
            return BreakerDecision(allowed=True, state="closed")
        return BreakerDecision(allowed=bool(allowed), state=_state(state), retry_in=float(remaining))

    async def success(self, key: str) -> None:
        try:
            await self._redis.hset(self._key(key), mapping={"state": "closed", "failures": 0})
        except RedisError as exc:
            _log.warning("breaker_store_unavailable", error=str(exc))

    async def failure(self, key: str, threshold: int) -> BreakerState:
        try:
            state = await self._failure(keys=[self._key(key), self._index], args=[threshold])
        except RedisError as exc:
            _log.warning("breaker_store_unavailable", error=str(exc))
            return "closed"
        return _state(state)

    async def states(self) -> dict[str, BreakerState]:
        prefix = self._keys.breaker("")
        try:
            keys = sorted(_text(key) for key in await self._redis.smembers(self._index))
            return {
                key.removeprefix(prefix): _state(await self._redis.hget(key, "state") or "closed")
                for key in keys
            }
        except RedisError as exc:
            _log.warning("breaker_store_unavailable", error=str(exc))
            return {}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _state(value: Any) -> BreakerState:
    text = _text(value)
    return cast("BreakerState", text if text in ("closed", "open", "half_open") else "closed")
