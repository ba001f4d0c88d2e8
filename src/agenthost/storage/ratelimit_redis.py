"""Rate-limit counters in Redis: one Lua script per call checks every limit and increments all of
them or none, on Redis's clock (`TIME`), so every replica shares exact counts whatever their
clocks say. Keys: `RedisKeys.rate`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agenthost.errors import StoreUnavailableError
from agenthost.storage.protocols import RateLimitEntry, RateMode, RateOutcome

__all__ = ["RedisCounters"]


# Arguments: window seconds, mode, then (limit, cost) for each key. Returns TIME's seconds and
# microseconds, 1 if the call passed, then (current, previous) for each key after the call.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, mode = tonumber(ARGV[1]), ARGV[2]
local index = math.floor(now / window)
local elapsed = now / window - index
local cur, prev, passed = {}, {}, 1
for i = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')
  local w = tonumber(h[1])
  local c, p = 0, 0
  if w == index then
    c, p = tonumber(h[2]), tonumber(h[3])
  elseif w == index - 1 then
    p = tonumber(h[2])
  end
  cur[i], prev[i] = c, p
  local used = p * (1 - elapsed) + c
  local limit, cost = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  if (mode == 'hit' and used + cost > limit) or (mode == 'check' and used >= limit) then
    passed = 0
  end
end
if mode == 'record' or (mode == 'hit' and passed == 1) then
  for i = 1, #KEYS do
    cur[i] = cur[i] + tonumber(ARGV[2 + 2 * i])
    redis.call('HSET', KEYS[i], 'w', index, 'c', cur[i], 'p', prev[i])
    redis.call('PEXPIRE', KEYS[i], window * 2000)
  end
end
local out = {t[1], t[2], passed}
for i = 1, #KEYS do
  out[#out + 1] = cur[i]
  out[#out + 1] = prev[i]
end
return out
"""


class RedisCounters:
    """Counters in Redis, one hash per limit (`w`, `c`, `p`), changed by one Lua script per call."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_SCRIPT)

    async def apply(self, mode: RateMode, window: int, limits: Sequence[RateLimitEntry]) -> RateOutcome:
        args: list[str | int] = [window, mode]
        for limit in limits:
            args += [limit.limit, limit.cost]
        try:
            reply = cast("list[Any]", await self._script(keys=[limit.key for limit in limits], args=args))
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        now = int(reply[0]) + int(reply[1]) / 1_000_000
        counts = [(int(reply[i]), int(reply[i + 1])) for i in range(3, len(reply), 2)]
        return RateOutcome(now, bool(reply[2]), counts)
