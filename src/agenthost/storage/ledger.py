"""The spend ledger: one row per model call, kept apart from runs and conversations.

Rows of runs come from their `usage` events and are written in the same transaction as those
events (batched off the run's critical path, or with the run's final state). A crash before a
batch lands loses nothing: recovery replays the run's steps, which re-emit the same events with
the same numbers, and rows already stored are skipped. Front-door passthrough calls and routing
classifier calls are written when they return, through `LedgerWriter`: the call answers only
once its row is committed, and concurrent calls share one transaction (group commit).

`LedgerStore.report` reads the figures of the spend report (`costs/report.py` formats them):
amounts summed in integer nano-dollars, time buckets in UTC hours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.records import SAVINGS, EventType, UsageRecord, Visibility
from agenthost.storage.base import Store, visible
from agenthost.storage.protocols import Subject
from agenthost.storage.tables import spend_ledger

__all__ = [
    "SPEND_DIMENSIONS",
    "HourSpend",
    "LedgerStore",
    "LedgerWriter",
    "RunSpend",
    "SpendGroup",
    "SpendReport",
    "SpendTotals",
    "ledger_row",
    "rows_from_events",
]


def ledger_row(
    *,
    source: str,
    seq: int,
    kind: str,
    usage: UsageRecord,
    at: datetime,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The ledger row of one model call (`kind`: `run`, `passthrough`, `classifier`)."""
    return {
        **{f"saved_{reason}": getattr(usage.saved, reason) for reason in SAVINGS},
        "source": source,
        "seq": seq,
        "run_id": run_id,
        "step": usage.step,
        "kind": kind,
        "agent": usage.agent,
        "user_id": usage.user_id,
        "key_id": usage.key_id,
        "team": usage.team,
        "model": usage.model or "unknown",
        "provider": usage.provider,
        "tier": usage.tier,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cost_nanousd": usage.cost.nanousd,
        "cost_status": usage.cost.status,
        "cached": usage.cached,
        "created_at": at,
    }


def rows_from_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ledger rows of a batch of run events: one per `usage` event of a call made by that run
    (a fork's copied steps were paid for by the run they were copied from)."""
    rows = []
    for event in events:
        if event["type"] != EventType.USAGE:
            continue
        usage = UsageRecord.model_validate(event["data"])
        if usage.ledger:
            rows.append(
                ledger_row(
                    source=event["run_id"],
                    seq=event["seq"],
                    kind="run",
                    usage=usage,
                    at=event["created_at"],
                    run_id=event["run_id"],
                )
            )
    return rows


SPEND_DIMENSIONS = ("model", "agent", "user", "key", "team", "tier")
"""What the spend report breaks spend down by, in the report's order."""

_DIMENSION_COLUMNS = {
    "model": spend_ledger.c.model,
    "agent": spend_ledger.c.agent,
    "user": spend_ledger.c.user_id,
    "key": spend_ledger.c.key_id,
    "team": spend_ledger.c.team,
    "tier": spend_ledger.c.tier,
}


@dataclass(frozen=True, slots=True)
class SpendTotals:
    """Every call of a range together."""

    nanousd: int = 0
    calls: int = 0
    runs: int = 0
    """Distinct runs with a call in the range."""
    cached_calls: int = 0
    unpriced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class SpendGroup:
    """The calls of one value of a dimension (a model, an agent, ...; None: calls without one)."""

    name: str | None
    nanousd: int
    calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class RunSpend:
    """The calls of one run."""

    run_id: str
    agent: str | None
    user_id: str | None
    nanousd: int
    calls: int


@dataclass(frozen=True, slots=True)
class HourSpend:
    """The calls of one UTC hour (`hour` is its start)."""

    hour: datetime
    nanousd: int
    calls: int


@dataclass(frozen=True, slots=True)
class SpendReport:
    """The figures of the spend report for [start, end), as one caller may see them."""

    start: datetime
    end: datetime
    total: SpendTotals
    run_nanousd: int
    """Spend of the range's calls made by runs (the rest came through the front door)."""
    today_nanousd: int
    """Spend since `now`'s UTC midnight, whatever the range."""
    hourly: tuple[HourSpend, ...]
    """The last hours up to `now`'s, oldest first, empty hours included."""
    top_runs: tuple[RunSpend, ...]
    """The most expensive runs of the range, most expensive first."""
    saved: dict[str, int]
    """Savings of the range by reason (`records.SAVINGS`, in that order)."""
    breakdowns: dict[str, tuple[SpendGroup, ...]]
    """Spend of the range by each of `SPEND_DIMENSIONS` (in that order), most expensive first."""


class LedgerStore(Store):
    """Writes ledger rows (idempotently) and purges the ones past retention."""

    async def append(self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            statement = self.insert(spend_ledger).on_conflict_do_nothing(index_elements=["source", "seq"])
            await conn.execute(statement, list(rows))

    async def record(self, rows: Sequence[dict[str, Any]]) -> None:
        async with self.engine.begin() as conn:
            await self.append(conn, rows)

    async def purge(self, before: datetime) -> dict[str, int]:
        """Delete rows older than `before` (the ledger's retention period)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(spend_ledger.delete().where(spend_ledger.c.created_at < before))
            return {"ledger_rows": int(result.rowcount or 0)}

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        """Rows stay (totals and the report are unchanged); the user's id becomes its pseudonym."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                spend_ledger.update()
                .where(spend_ledger.c.user_id == subject.user_id)
                .values(user_id=subject.pseudonym)
            )
        return {"ledger_rows_anonymised": int(result.rowcount or 0)}

    async def total_since(self, since: datetime) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(spend_ledger.c.cost_nanousd), 0)).where(
                    spend_ledger.c.created_at >= since
                )
            )
            return int(value or 0)

    async def report(
        self,
        start: datetime,
        end: datetime,
        visibility: Visibility | None = None,
        *,
        now: datetime | None = None,
        hours: int = 24,
        top: int = 5,
    ) -> SpendReport:
        """Spend in [start, end), plus today's and the last `hours` hours' up to `now`; only the
        rows `visibility` lets the caller see (None: every row)."""
        now = now or datetime.now(UTC)
        owned = visible(spend_ledger, visibility)
        owner = [] if owned is None else [owned]
        where = [spend_ledger.c.created_at >= start, spend_ledger.c.created_at < end, *owner]
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.engine.connect() as conn:
            total = await _totals(conn, where)
            return SpendReport(
                start=start,
                end=end,
                total=total,
                run_nanousd=await _cost(conn, [*where, spend_ledger.c.run_id.is_not(None)]),
                today_nanousd=await _cost(conn, [spend_ledger.c.created_at >= today, *owner]),
                hourly=await _hourly(conn, now, hours, owner),
                top_runs=await _top_runs(conn, where, top),
                saved=await _saved(conn, where),
                breakdowns={
                    name: await _breakdown(conn, column, where) for name, column in _DIMENSION_COLUMNS.items()
                },
            )


def _sum(column: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(column), 0)


async def _cost(conn: AsyncConnection, where: Sequence[Any]) -> int:
    return int(await conn.scalar(sa.select(_sum(spend_ledger.c.cost_nanousd)).where(*where)) or 0)


async def _totals(conn: AsyncConnection, where: Sequence[Any]) -> SpendTotals:
    c = spend_ledger.c
    row = (
        await conn.execute(
            sa.select(
                _sum(c.cost_nanousd),
                sa.func.count(),
                sa.func.count(sa.distinct(c.run_id)),
                _sum(c.input_tokens),
                _sum(c.output_tokens),
                _sum(c.cache_read_tokens),
                _sum(c.cache_write_tokens),
                _sum(sa.case((c.cached, 1), else_=0)),
                _sum(sa.case((c.cost_status == "unknown_model", 1), else_=0)),
            ).where(*where)
        )
    ).one()
    nanousd, calls, runs, inputs, outputs, reads, writes, cached, unpriced = (int(v or 0) for v in row)
    return SpendTotals(nanousd, calls, runs, cached, unpriced, inputs, outputs, reads, writes)


async def _breakdown(conn: AsyncConnection, column: Any, where: Sequence[Any]) -> tuple[SpendGroup, ...]:
    query = (
        sa.select(
            column,
            _sum(spend_ledger.c.cost_nanousd).label("cost"),
            sa.func.count(),
            _sum(spend_ledger.c.input_tokens),
            _sum(spend_ledger.c.output_tokens),
        )
        .where(*where)
        .group_by(column)
        .order_by(sa.desc("cost"))
    )
    return tuple(
        SpendGroup(name, int(cost), int(calls), int(i), int(o))
        for name, cost, calls, i, o in await conn.execute(query)
    )


async def _top_runs(conn: AsyncConnection, where: Sequence[Any], top: int) -> tuple[RunSpend, ...]:
    c = spend_ledger.c
    query = (
        sa.select(
            c.run_id,
            sa.func.max(c.agent),
            sa.func.max(c.user_id),
            _sum(c.cost_nanousd).label("cost"),
            sa.func.count(),
        )
        .where(*where, c.run_id.is_not(None))
        .group_by(c.run_id)
        .order_by(sa.desc("cost"), c.run_id)
        .limit(top)
    )
    return tuple(
        RunSpend(run_id, agent, user, int(cost), int(calls))
        for run_id, agent, user, cost, calls in await conn.execute(query)
    )


async def _hourly(
    conn: AsyncConnection, now: datetime, hours: int, owner: Sequence[Any]
) -> tuple[HourSpend, ...]:
    current = now.replace(minute=0, second=0, microsecond=0)
    first = current - timedelta(hours=hours - 1)
    buckets = {first + timedelta(hours=i): [0, 0] for i in range(hours)}
    # Bucketed here rather than in SQL: SQLite and Postgres truncate timestamps differently.
    rows = await conn.execute(
        sa.select(spend_ledger.c.created_at, spend_ledger.c.cost_nanousd).where(
            spend_ledger.c.created_at >= first, *owner
        )
    )
    for created, cost in rows:
        hour = created.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if hour in buckets:
            buckets[hour][0] += int(cost)
            buckets[hour][1] += 1
    return tuple(HourSpend(hour, cost, calls) for hour, (cost, calls) in buckets.items())


async def _saved(conn: AsyncConnection, where: Sequence[Any]) -> dict[str, int]:
    columns = [_sum(spend_ledger.c[f"saved_{reason}"]) for reason in SAVINGS]
    values = (await conn.execute(sa.select(*columns).where(*where))).one()
    return {reason: int(value) for reason, value in zip(SAVINGS, values, strict=True)}


class LedgerWriter:
    """Group commit of ledger rows written on a request's path.

    Each caller returns once its rows are committed, so a crash after a call has answered never
    loses its cost. Rows that arrive while a transaction is being written wait for the next one,
    which takes all of them: under load, N concurrent calls cost one write lock and one commit
    rather than N (on SQLite, N writers queueing on the lock stalled requests for up to seconds).
    """

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write `rows` in the next transaction and return when it has committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(rows), future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        # A caller that goes away (a client disconnect) does not take its row out of the batch.
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.record([row for rows, _ in batch for row in rows])
            except Exception as exc:
                if len(batch) == 1:
                    _resolve(batch[0][1], exc)
                    continue
                # One bad row must not fail the others: write each caller's rows on their own.
                for rows, future in batch:
                    _resolve(future, await _attempt(self._store, rows))
            else:
                for _, future in batch:
                    _resolve(future, None)


async def _attempt(store: LedgerStore, rows: Sequence[dict[str, Any]]) -> Exception | None:
    try:
        await store.record(rows)
    except Exception as exc:
        return exc
    return None


def _resolve(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
