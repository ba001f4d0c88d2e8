"""Where budget counters live: agenthost's database (default) or Redis (`[redis] url`).

A counter holds what was spent and what is reserved by calls in flight, per scope and period.
`reserve` adds an amount to every counter of a call at once, or to none if any would go over its
limit; `settle` turns a reservation into the call's real cost. Both are atomic across replicas:
conditional UPDATEs in one transaction (row locks on Postgres, the write lock on SQLite), or one
Lua script in Redis.

A counter that refuses a reservation is marked closed, with the limit it had, until its period
ends: new runs are then refused at submission whatever the counters read later (an earlier call's
settlement landing, or a smaller first-call estimate). The mark is the row `<key>!closed` in the
database (its limit in `spent_nanousd`), or the field `c` of the counter's Redis hash; it is
written only when a reservation is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from agenthost.storage.base import Store
from agenthost.storage.tables import budget_counters as table

__all__ = ["BudgetStore", "Counter", "CounterState", "RedisBudgetStore", "SqlBudgetStore"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Counter:
    """One budget's counter for one period: e.g. key `user:u1:day:2026-11-21`, limit in nano-USD."""

    key: str
    limit: int | None
    expires_at: datetime

    @property
    def ttl_ms(self) -> int:
        return max(int((self.expires_at - datetime.now(UTC)).total_seconds() * 1000), 1000)


class CounterState(NamedTuple):
    """What a counter holds now."""

    spent: int
    reserved: int
    closed_at: int | None
    """The limit the counter had when it last refused a reservation in its period, if it did."""


class BudgetStore(Protocol):
    async def reserve(self, counters: Sequence[Counter], amount: int) -> Counter | None:
        """Reserve `amount` on every counter, or on none: then mark the one that refused closed
        and return it."""
        ...

    async def settle(self, counters: Sequence[Counter], reserved: int, spent: int) -> dict[str, int]:
        """Release `reserved`, add `spent`; return each counter's spend after."""
        ...

    async def spent(self, counters: Sequence[Counter]) -> dict[str, tuple[int, int]]:
        """(spent, reserved) of each counter (0, 0 when it has none yet)."""
        ...

    async def state(self, counters: Sequence[Counter]) -> dict[str, CounterState]:
        """Each counter's spend, reservations and closed mark, in one read."""
        ...


_CLOSED = "!closed"
_UNLIMITED = 2**62
# A transaction the database aborts (serialization, deadlock, lock timeout) is tried again.
_RETRIED = retry(retry=retry_if_exception_type(DBAPIError), stop=stop_after_attempt(3), reraise=True)


class SqlBudgetStore(Store):
    """Counters in the `budget_counters` table.

    Rows are always locked in key order, so concurrent transactions never deadlock on each other;
    a transaction the database still aborts (serialization, lock timeout) is retried."""

    async def reserve(self, counters: Sequence[Counter], amount: int) -> Counter | None:
        refused = await self._reserve(sorted(counters, key=lambda c: c.key), amount)
        if refused is not None:
            try:
                await self._close(refused)
            except Exception as exc:  # the refusal stands; only later submissions may get through
                _log.warning(
                    "budget_close_failed", budget=refused.key, error=f"{type(exc).__name__}: {exc}"[:300]
                )
        return refused

    @_RETRIED
    async def _close(self, counter: Counter) -> None:
        row = {
            "key": counter.key + _CLOSED,
            "spent_nanousd": counter.limit or 0,
            "reserved_nanousd": 0,
            "expires_at": counter.expires_at,
        }
        statement = self.insert(table).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["key"], set_={"spent_nanousd": statement.excluded.spent_nanousd}
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

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
        return {key: (state.spent, state.reserved) for key, state in (await self._read(counters, [])).items()}

    async def state(self, counters: Sequence[Counter]) -> dict[str, CounterState]:
        return await self._read(counters, [c.key + _CLOSED for c in counters])

    async def _read(self, counters: Sequence[Counter], marks: list[str]) -> dict[str, CounterState]:
        keys = [c.key for c in counters]
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(table.c.key, table.c.spent_nanousd, table.c.reserved_nanousd).where(
                    table.c.key.in_(keys + marks), table.c.expires_at > datetime.now(UTC)
                )
            )
            found = {key: (int(s), int(r)) for key, s, r in rows}
        states = {}
        for key in keys:
            spent, reserved = found.get(key, (0, 0))
            mark = found.get(key + _CLOSED)
            states[key] = CounterState(spent, reserved, None if mark is None else mark[0])
        return states

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
        return {key: (state.spent, state.reserved) for key, state in (await self.state(counters)).items()}

    async def state(self, counters: Sequence[Counter]) -> dict[str, CounterState]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._keys(counters):
                pipe.hmget(key, "s", "r", "c")
            rows = await pipe.execute()
        return {
            c.key: CounterState(int(s or 0), int(r or 0), None if closed is None else int(closed))
            for c, (s, r, closed) in zip(counters, rows, strict=True)
        }
