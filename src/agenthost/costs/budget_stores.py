"""Where budget counters live: agenthost's database (default) or Redis (`[redis] url`).

A counter holds what was spent and what is reserved by calls in flight, per scope and period.
`reserve` adds an amount to every counter of a call at once, or to none if any would go over its
limit; `settle` turns a reservation into the call's real cost. Both are atomic across replicas:
conditional UPDATEs in one transaction (row locks on Postgres, the write lock on SQLite), or one
Lua script in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from agenthost.storage.base import Store
from agenthost.storage.tables import budget_counters as table

__all__ = ["BudgetStore", "Counter", "RedisBudgetStore", "SqlBudgetStore"]


@dataclass(frozen=True)
class Counter:
    """One budget's counter for one period: e.g. key `user:u1:day:2026-11-21`, limit in nano-USD."""

    key: str
    limit: int | None
    expires_at: datetime

    @property
    def ttl_ms(self) -> int:
        return max(int((self.expires_at - datetime.now(UTC)).total_seconds() * 1000), 1000)


class BudgetStore(Protocol):
    async def reserve(self, counters: Sequence[Counter], amount: int) -> Counter | None:
        """Reserve `amount` on every counter, or on none: then return the one that refused."""
        ...

    async def settle(self, counters: Sequence[Counter], reserved: int, spent: int) -> dict[str, int]:
        """Release `reserved`, add `spent`; return each counter's spend after."""
        ...

    async def spent(self, counters: Sequence[Counter]) -> dict[str, tuple[int, int]]:
        """(spent, reserved) of each counter (0, 0 when it has none yet)."""
        ...


_UNLIMITED = 2**62
# A transaction the database aborts (serialization, deadlock, lock timeout) is tried again.
_RETRIED = retry(retry=retry_if_exception_type(DBAPIError), stop=stop_after_attempt(3), reraise=True)


class SqlBudgetStore(Store):
    """Counters in the `budget_counters` table.

    Rows are always locked in key order, so concurrent transactions never deadlock on each other;
    a transaction the database still aborts (serialization, lock timeout) is retried."""

    async def reserve(self, counters: Sequence[Counter], amount: int) -> Counter | None:
        return await self._reserve(sorted(counters, key=lambda c: c.key), amount)

    @_RETRIED
    async def _reserve(self, ordered: Sequence[Counter], amount: int) -> Counter | None:
        async with self.engine.begin() as conn:
            await self._ensure(conn, ordered)
            for counter in ordered:
                limit = _UNLIMITED if counter.limit is None else counter.limit
                used = table.c.spent_nanousd + table.c.reserved_nanousd
                result = await conn.execute(
                    table.update()
                    .where(table.c.key == counter.key, used < limit, used + amount <= limit)
                    .values(reserved_nanousd=table.c.reserved_nanousd + amount)
                )
                if result.rowcount != 1:
                    await conn.rollback()
                    return counter
        return None

    async def _ensure(self, conn: AsyncConnection, ordered: Sequence[Counter]) -> None:
        """Create the counters that do not exist yet (at zero)."""
        rows = [
            {"key": c.key, "spent_nanousd": 0, "reserved_nanousd": 0, "expires_at": c.expires_at}
            for c in ordered
        ]
        await conn.execute(self.insert(table).on_conflict_do_nothing(index_elements=["key"]), rows)

    async def settle(self, counters: Sequence[Counter], reserved: int, spent: int) -> dict[str, int]:
        return await self._settle(sorted(counters, key=lambda c: c.key), reserved, spent)

    @_RETRIED
    async def _settle(self, ordered: Sequence[Counter], reserved: int, spent: int) -> dict[str, int]:
        totals: dict[str, int] = {}
        async with self.engine.begin() as conn:
            await self._ensure(conn, ordered)
            remaining = table.c.reserved_nanousd - reserved
            for counter in ordered:
                await conn.execute(
                    table.update()
                    .where(table.c.key == counter.key)
                    .values(
                        reserved_nanousd=sa.case((remaining > 0, remaining), else_=0),
                        spent_nanousd=table.c.spent_nanousd + spent,
                    )
                )
                value = await conn.scalar(sa.select(table.c.spent_nanousd).where(table.c.key == counter.key))
                totals[counter.key] = int(value or 0)
        return totals

    async def spent(self, counters: Sequence[Counter]) -> dict[str, tuple[int, int]]:
        keys = [c.key for c in counters]
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(table.c.key, table.c.spent_nanousd, table.c.reserved_nanousd).where(
                    table.c.key.in_(keys), table.c.expires_at > datetime.now(UTC)
                )
            )
            found = {key: (int(s), int(r)) for key, s, r in rows}
        return {key: found.get(key, (0, 0)) for key in keys}

    async def purge_expired(self) -> int:
        """Delete the counters of periods that have ended."""
        async with self.engine.begin() as conn:
            result = await conn.execute(table.delete().where(table.c.expires_at <= datetime.now(UTC)))
            return int(result.rowcount or 0)


_RESERVE = """
local amount = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local limit = tonumber(ARGV[1 + i])
  if limit >= 0 then
    local spent = tonumber(redis.call('HGET', KEYS[i], 's') or '0')
    local used = spent + tonumber(redis.call('HGET', KEYS[i], 'r') or '0')
    if used >= limit or used + amount > limit then return i end
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'r', amount)
  redis.call('PEXPIRE', KEYS[i], ARGV[1 + n + i])
end
return 0
"""

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
    """Counters as Redis hashes (`s` spent, `r` reserved) that expire with their period."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:budget:"
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def _keys(self, counters: Sequence[Counter]) -> list[str]:
        return [self._prefix + c.key for c in counters]

    async def reserve(self, counters: Sequence[Counter], amount: int) -> Counter | None:
        limits = [-1 if c.limit is None else c.limit for c in counters]
        refused = int(
            await self._reserve(
                keys=self._keys(counters), args=[amount, *limits, *(c.ttl_ms for c in counters)]
            )
        )
        return None if refused == 0 else counters[refused - 1]

    async def settle(self, counters: Sequence[Counter], reserved: int, spent: int) -> dict[str, int]:
        values = await self._settle(
            keys=self._keys(counters), args=[reserved, spent, *(c.ttl_ms for c in counters)]
        )
        return {c.key: int(v) for c, v in zip(counters, values, strict=True)}

    async def spent(self, counters: Sequence[Counter]) -> dict[str, tuple[int, int]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._keys(counters):
                pipe.hmget(key, "s", "r")
            rows = await pipe.execute()
        return {c.key: (int(s or 0), int(r or 0)) for c, (s, r) in zip(counters, rows, strict=True)}
