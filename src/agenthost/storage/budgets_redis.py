"""Budget counters in Redis (`[redis] url`), shared by every replica: one hash per counter
(`RedisKeys.budget`), changed only by atomic Lua scripts, expiring with its period.

A counter that refuses a reservation is marked closed by the field `c` of its hash, which holds
the limit the counter had; it is written only when a reservation is refused.

Errors reach the caller: whether a Redis outage refuses or admits calls is `Budgets`' choice
(`[budgets] on_store_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agenthost.storage.protocols import BudgetCounter, BudgetCounterState

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from agenthost.storage.redis_client import RedisKeys

__all__ = ["RedisBudgetStore"]

# KEYS: the counters; ARGV: the amount, each counter's limit (-1: none), each counter's TTL (ms).
_RESERVE = """
local amount = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local limit = tonumber(ARGV[1 + i])
  if limit >= 0 then
    local spent = tonumber(redis.call('HGET', KEYS[i], 's') or '0')
    local used = spent + tonumber(redis.call('HGET', KEYS[i], 'r') or '0')
    if used >= limit or used + amount > limit then
      redis.call('HSET', KEYS[i], 'c', limit)
      redis.call('PEXPIRE', KEYS[i], ARGV[1 + n + i])
      return i
    end
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'r', amount)
  redis.call('PEXPIRE', KEYS[i], ARGV[1 + n + i])
end
return 0
"""

# KEYS: the counters; ARGV: the reservation to release, the spend to add, each counter's TTL (ms).
_SETTLE = """
local reserved = tonumber(ARGV[1])
local spent = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local r = tonumber(redis.call('HGET', KEYS[i], 'r') or '0') - reserved
  if r < 0 then r = 0 end
  redis.call('HSET', KEYS[i], 'r', r)
  out[i] = redis.call('HINCRBY', KEYS[i], 's', spent)
  redis.call('PEXPIRE', KEYS[i], ARGV[2 + i])
end
return out
"""


class RedisBudgetStore:
    """`BudgetCounterStore` on Redis: a hash per counter (`s` spent, `r` reserved, `c` closed at)."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        # The start every counter's key shares (to list them).
        self._prefix = keys.budget("")
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def _names(self, counters: Sequence[BudgetCounter]) -> list[str]:
        return [self._keys.budget(c.key) for c in counters]

    async def reserve(self, counters: Sequence[BudgetCounter], amount: int) -> BudgetCounter | None:
        limits = [-1 if c.limit is None else c.limit for c in counters]
        refused = int(
            await self._reserve(
                keys=self._names(counters), args=[amount, *limits, *(c.ttl_ms for c in counters)]
            )
        )
        return None if refused == 0 else counters[refused - 1]

    async def settle(self, counters: Sequence[BudgetCounter], reserved: int, spent: int) -> dict[str, int]:
        values: list[Any] = await self._settle(
            keys=self._names(counters), args=[reserved, spent, *(c.ttl_ms for c in counters)]
        )
        return {c.key: int(v) for c, v in zip(counters, values, strict=True)}

    async def spent(self, counters: Sequence[BudgetCounter]) -> dict[str, tuple[int, int]]:
        return {key: (state.spent, state.reserved) for key, state in (await self.state(counters)).items()}

    async def state(self, counters: Sequence[BudgetCounter]) -> dict[str, BudgetCounterState]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._names(counters):
                pipe.hmget(key, "s", "r", "c")
            rows = await pipe.execute()
        return {
            c.key: BudgetCounterState(int(s or 0), int(r or 0), None if closed is None else int(closed))
            for c, (s, r, closed) in zip(counters, rows, strict=True)
        }

    async def purge_expired(self) -> int:
        """Nothing to do: every hash expires with its period (`PEXPIRE` on each write)."""
        return 0
