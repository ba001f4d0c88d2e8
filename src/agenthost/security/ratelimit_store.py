"""Rate-limit counter stores: sliding-window counters in this process, or in Redis through one
Lua script that checks every scope and increments all or none (see `ratelimit.py`)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from redis.asyncio import Redis

__all__ = [
    "Kind",
    "Limit",
    "MemoryCounters",
    "Mode",
    "Outcome",
    "RedisCounters",
    "Scope",
    "refuses",
]

Scope = Literal["key", "user", "ip"]
Kind = Literal["requests", "tokens"]
Mode = Literal["hit", "check", "record"]


@dataclass(frozen=True)
class Limit:
    scope: Scope
    kind: Kind
    key: str
    limit: int
    cost: int


@dataclass(frozen=True)
class Outcome:
    """A store's answer: its time, whether the call passed, each limit's (current, previous) counts."""

    now: float
    passed: bool
    counts: list[tuple[int, int]]


class MemoryCounters:
    """Counters in this process: `key -> [window index, current count, previous count]`."""

    def __init__(self) -> None:
        self._counters: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._swept = 0

    async def apply(self, mode: Mode, window: int, limits: Sequence[Limit]) -> Outcome:
        # No await between reading and writing: the check and the increments are one step.
        with self._lock:
            now = time.time()
            index = math.floor(now / window)
            elapsed = now / window - index
            self._sweep(index)
            counts = [self._read(limit.key, index) for limit in limits]
            pairs = list(zip(limits, counts, strict=True))
            passed = not any(refuses(mode, limit, prev * (1 - elapsed) + cur) for limit, (cur, prev) in pairs)
            if mode == "record" or (mode == "hit" and passed):
                counts = [(cur + limit.cost, prev) for limit, (cur, prev) in pairs]
                for limit, (cur, prev) in zip(limits, counts, strict=True):
                    self._counters[limit.key] = [index, cur, prev]
            return Outcome(now, passed, counts)

    def _read(self, key: str, index: int) -> tuple[int, int]:
        entry = self._counters.get(key, [index - 2, 0, 0])
        if entry[0] == index:
            return entry[1], entry[2]
        return (0, entry[1]) if entry[0] == index - 1 else (0, 0)

    def _sweep(self, index: int) -> None:
        # Once per window, drop counters that no longer count (clients that went away).
        if index <= self._swept:
            return
        self._swept = index
        stale = [key for key, entry in self._counters.items() if entry[0] < index - 1]
        for key in stale:
            del self._counters[key]


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

    async def apply(self, mode: Mode, window: int, limits: Sequence[Limit]) -> Outcome:
        args: list[str | int] = [window, mode]
        for limit in limits:
            args += [limit.limit, limit.cost]
        reply = cast("list[Any]", await self._script(keys=[limit.key for limit in limits], args=args))
        now = int(reply[0]) + int(reply[1]) / 1_000_000
        counts = [(int(reply[i]), int(reply[i + 1])) for i in range(3, len(reply), 2)]
        return Outcome(now, bool(reply[2]), counts)


def refuses(mode: Mode, limit: Limit, used: float) -> bool:
    """The admission rule, the same as the Lua script's: a request needs room for its cost, a
    token check needs any budget left, a record always passes."""
    return (mode == "hit" and used + limit.cost > limit.limit) or (mode == "check" and used >= limit.limit)
