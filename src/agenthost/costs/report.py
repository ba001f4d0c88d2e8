"""The spend report behind `GET /v1/costs` and `agenthost costs`, from the spend ledger.

Amounts are summed in integer nano-dollars and shown in USD. Time buckets are UTC hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agenthost.costs.savings import SAVINGS
from agenthost.storage.tables import spend_ledger as ledger

__all__ = ["BREAKDOWNS", "spend_report"]

BREAKDOWNS = {
    "model": ledger.c.model,
    "agent": ledger.c.agent,
    "user": ledger.c.user_id,
    "key": ledger.c.key_id,
    "team": ledger.c.team,
}
_TOP_RUNS = 5
_HOURS = 24


def _usd(nanousd: int) -> dict[str, Any]:
    return {"usd": nanousd / 1e9, "nanousd": nanousd}


def _cost() -> Any:
    return sa.func.coalesce(sa.func.sum(ledger.c.cost_nanousd), 0)


def _in_range(start: datetime, end: datetime) -> Any:
    return sa.and_(ledger.c.created_at >= start, ledger.c.created_at < end)


async def _totals(conn: AsyncConnection, where: Any) -> dict[str, Any]:
    row = (
        await conn.execute(
            sa.select(
                _cost(),
                sa.func.count(),
                sa.func.count(sa.distinct(ledger.c.run_id)),
                sa.func.coalesce(sa.func.sum(ledger.c.input_tokens), 0),
                sa.func.coalesce(sa.func.sum(ledger.c.output_tokens), 0),
                sa.func.coalesce(sa.func.sum(ledger.c.cache_read_tokens), 0),
                sa.func.coalesce(sa.func.sum(ledger.c.cache_write_tokens), 0),
                sa.func.coalesce(sa.func.sum(sa.case((ledger.c.cached, 1), else_=0)), 0),
                sa.func.coalesce(
                    sa.func.sum(sa.case((ledger.c.cost_status == "unknown_model", 1), else_=0)), 0
                ),
            ).where(where)
        )
    ).one()
    nanousd, calls, runs, inputs, outputs, reads, writes, cached, unpriced = (int(v or 0) for v in row)
    return {
        **_usd(nanousd),
        "calls": calls,
        "runs": runs,
        "cached_calls": cached,
        "unpriced_calls": unpriced,
        "tokens": {"input": inputs, "output": outputs, "cache_read": reads, "cache_write": writes},
    }


async def _breakdown(conn: AsyncConnection, column: Any, where: Any) -> list[dict[str, Any]]:
    query = (
        sa.select(
            column,
            _cost().label("cost"),
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(ledger.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.output_tokens), 0),
        )
        .where(where)
        .group_by(column)
        .order_by(sa.desc("cost"))
    )
    return [
        {
            "name": name,
            **_usd(int(cost)),
            "calls": int(calls),
            "input_tokens": int(i),
            "output_tokens": int(o),
        }
        for name, cost, calls, i, o in await conn.execute(query)
    ]


async def _top_runs(conn: AsyncConnection, where: Any) -> list[dict[str, Any]]:
    query = (
        sa.select(
            ledger.c.run_id,
            sa.func.max(ledger.c.agent),
            sa.func.max(ledger.c.user_id),
            _cost().label("cost"),
            sa.func.count(),
        )
        .where(where, ledger.c.run_id.is_not(None))
        .group_by(ledger.c.run_id)
        .order_by(sa.desc("cost"), ledger.c.run_id)
        .limit(_TOP_RUNS)
    )
    return [
        {"run_id": run_id, "agent": agent, "user_id": user, **_usd(int(cost)), "calls": int(calls)}
        for run_id, agent, user, cost, calls in await conn.execute(query)
    ]


async def _hourly(conn: AsyncConnection, now: datetime, owner: Any) -> list[dict[str, Any]]:
    """Spend per UTC hour over the last 24 hours, the current hour last (empty hours included)."""
    current = now.replace(minute=0, second=0, microsecond=0)
    first = current - timedelta(hours=_HOURS - 1)
    buckets = {first + timedelta(hours=i): [0, 0] for i in range(_HOURS)}
    rows = await conn.execute(
        sa.select(ledger.c.created_at, ledger.c.cost_nanousd).where(ledger.c.created_at >= first, owner)
    )
    for created, cost in rows:
        hour = created.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if hour in buckets:
            buckets[hour][0] += int(cost)
            buckets[hour][1] += 1
    return [
        {"hour": hour.isoformat().replace("+00:00", "Z"), **_usd(cost), "calls": calls}
        for hour, (cost, calls) in buckets.items()
    ]


async def _savings(conn: AsyncConnection, where: Any, spent: int) -> dict[str, Any]:
    """What routing, the response cache, prompt caching and batching saved against list price on
    each agent's primary model (negative when a choice cost more)."""
    columns = [sa.func.coalesce(sa.func.sum(ledger.c[f"saved_{reason}"]), 0) for reason in SAVINGS]
    values = [int(v) for v in (await conn.execute(sa.select(*columns).where(where))).one()]
    saved = dict(zip(SAVINGS, values, strict=True))
    total = sum(values)
    return {
        **_usd(total),
        "by_reason": {reason: _usd(value) for reason, value in saved.items()},
        "list_price": _usd(spent + total),
    }


async def spend_report(
    engine: AsyncEngine, start: datetime | None, end: datetime | None, owner: Any = None
) -> dict[str, Any]:
    """Totals, averages, the top runs and breakdowns for [start, end) (default: today so far, UTC).

    `owner` (a SQL condition on the ledger, e.g. `Principal.owner_clause`) limits every figure to
    one tenant's spend; None reports everything."""
    owner = sa.true() if owner is None else owner
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = start or today
    end = end or now + timedelta(microseconds=1)
    where = sa.and_(_in_range(start, end), owner)
    async with engine.connect() as conn:
        total = await _totals(conn, where)
        run_spend = (await _totals(conn, sa.and_(where, ledger.c.run_id.is_not(None))))["nanousd"]
        report = {
            "object": "cost_report",
            "from": start.isoformat(),
            "to": end.isoformat(),
            "total": total,
            "today": _usd((await _totals(conn, sa.and_(ledger.c.created_at >= today, owner)))["nanousd"]),
            "average_per_run": _usd(run_spend // total["runs"] if total["runs"] else 0),
            "hourly": await _hourly(conn, now, owner),
            "top_runs": await _top_runs(conn, where),
        }
        report["savings"] = await _savings(conn, where, total["nanousd"])
        for name, column in BREAKDOWNS.items():
            report[f"by_{name}"] = await _breakdown(conn, column, where)
        report["by_tier"] = await _breakdown(conn, ledger.c.tier, where)
    return report
