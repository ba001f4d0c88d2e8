"""Budget counters in agenthost's database (`budget_counters`), the default `BudgetCounterStore`.

`reserve` and `settle` are conditional UPDATEs in one transaction: row locks on Postgres, the
write lock on SQLite, so they are atomic across replicas sharing the database.

A counter that refuses a reservation is marked closed by the row `<key>!closed`, which holds the
limit the counter had in `spent_nanousd` and expires with the counter's period; it is written
only when a reservation is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from agenthost.storage.base import Store
from agenthost.storage.protocols import BudgetCounter, BudgetCounterState
from agenthost.storage.tables import budget_counters as table

__all__ = ["SqlBudgetStore"]

_log = structlog.get_logger(__name__)

_CLOSED = "!closed"
_UNLIMITED = 2**62
# A transaction the database aborts (serialization, deadlock, lock timeout) is tried again.
_RETRIED = retry(retry=retry_if_exception_type(DBAPIError), stop=stop_after_attempt(3), reraise=True)


class SqlBudgetStore(Store):
    """`BudgetCounterStore` over the `budget_counters` table.

    Rows are always locked in key order, so concurrent transactions never deadlock on each other;
    a transaction the database still aborts (serialization, lock timeout) is retried."""

    async def reserve(self, counters: Sequence[BudgetCounter], amount: int) -> BudgetCounter | None:
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
    async def _close(self, counter: BudgetCounter) -> None:
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
    async def _reserve(self, ordered: Sequence[BudgetCounter], amount: int) -> BudgetCounter | None:
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

    async def _ensure(self, conn: AsyncConnection, ordered: Sequence[BudgetCounter]) -> None:
        """Create the counters that do not exist yet (at zero)."""
        rows = [
            {"key": c.key, "spent_nanousd": 0, "reserved_nanousd": 0, "expires_at": c.expires_at}
            for c in ordered
        ]
        await conn.execute(self.insert(table).on_conflict_do_nothing(index_elements=["key"]), rows)

    async def settle(self, counters: Sequence[BudgetCounter], reserved: int, spent: int) -> dict[str, int]:
        return await self._settle(sorted(counters, key=lambda c: c.key), reserved, spent)

    @_RETRIED
    async def _settle(self, ordered: Sequence[BudgetCounter], reserved: int, spent: int) -> dict[str, int]:
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

    async def spent(self, counters: Sequence[BudgetCounter]) -> dict[str, tuple[int, int]]:
        return {key: (state.spent, state.reserved) for key, state in (await self._read(counters, [])).items()}

    async def state(self, counters: Sequence[BudgetCounter]) -> dict[str, BudgetCounterState]:
        return await self._read(counters, [c.key + _CLOSED for c in counters])

    async def _read(
        self, counters: Sequence[BudgetCounter], marks: list[str]
    ) -> dict[str, BudgetCounterState]:
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
            states[key] = BudgetCounterState(spent, reserved, None if mark is None else mark[0])
        return states

    async def purge_expired(self) -> int:
        """Delete the counters (and closed marks) of periods that have ended."""
        async with self.engine.begin() as conn:
            result = await conn.execute(table.delete().where(table.c.expires_at <= datetime.now(UTC)))
            return int(result.rowcount or 0)
