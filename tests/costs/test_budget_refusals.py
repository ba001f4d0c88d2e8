"""Budgets answer the same whatever the timing, on a real SQLite database and on a real Redis.

What made a refused caller's next run get through (on a loaded machine), reproduced step by step:
a call's settlement landed after its run had answered (a busy database: here, another writer
holding SQLite's write lock), so the counters still held its estimate when the next run came;
a call was refused while an earlier call's reservation was unsettled; a call inside a run asked
for more than the door's first-call estimate of the next run."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from agenthost.costs.alerts import Alerts
from agenthost.costs.budgets import Budgets
from agenthost.errors import BudgetExceededError
from agenthost.settings import Settings
from agenthost.storage.alerts import AlertStore
from agenthost.storage.budgets_redis import RedisBudgetStore
from agenthost.storage.budgets_sql import SqlBudgetStore
from agenthost.storage.engine import create_app_engine, database_urls
from agenthost.storage.migrate import upgrade
from agenthost.storage.protocols import BudgetCounterStore
from agenthost.storage.redis_client import RedisKeys
from agenthost.storage.tables import budget_counters
from tests.harness import REDIS_URL

LIMIT_USD = 0.00001  # 10,000 nano-USD a day per user


def settings(daily_usd: float | None = LIMIT_USD) -> Settings:
    budgets: dict[str, Any] = {"per_user": {"daily_usd": daily_usd}} if daily_usd else {}
    return Settings.model_validate({"budgets": budgets, "alerts": {"webhooks": []}})


@pytest.fixture(params=["sqlite", "redis"])
async def parts(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BudgetCounterStore, Alerts]]:
    urls = database_urls(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(urls)
    engine = create_app_engine(urls)
    client = None
    store: BudgetCounterStore
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        client = aioredis.Redis.from_url(REDIS_URL)
        store = RedisBudgetStore(client, RedisKeys(prefix))
    else:
        store = SqlBudgetStore(engine)
    try:
        yield store, Alerts(AlertStore(engine), settings().alerts)
    finally:
        if client is not None:
            await client.aclose()
        await engine.dispose()


async def test_a_call_is_settled_before_it_returns_even_on_a_busy_database(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    urls = database_urls(f"sqlite:///{path}")
    upgrade(urls)
    engine = create_app_engine(urls)
    settings_ = settings()
    budgets = Budgets(settings_, SqlBudgetStore(engine), Alerts(AlertStore(engine), settings_.alerts))
    other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        call = await budgets.reserve("plain", "u1", 6_000)
        # Another writer holds the write lock for a moment when the call returns.
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.5, other.execute, ["ROLLBACK"])
        release.start()
        await budgets.settle(call, 1_000)
        # The run answered; its caller asks again at once: 9,000 of 10,000 are left.
        await budgets.ensure_open("plain", "u1", 6_000)
        release.join()
    finally:
        other.close()
        await engine.dispose()


async def test_refused_while_an_earlier_call_was_unsettled_then_refused_at_the_door(
    parts: tuple[BudgetCounterStore, Alerts],
) -> None:
    store, alerts = parts
    budgets = Budgets(settings(), store, alerts)
    # A run's call reserves its estimate (6,000 of 10,000) and is still in flight.
    first = await budgets.reserve("plain", "u1", 6_000)
    # Another run's call is refused: 6,000 reserved + 6,000 would pass 10,000.
    with pytest.raises(BudgetExceededError):
        await budgets.reserve("plain", "u1", 6_000)
    # The first call returns, having cost 1,000, and its settlement lands: 9,000 look free now.
    await budgets.settle(first, 1_000)
    await budgets.drain(5.0)
    counter = budgets.counters("plain", "u1")[0]
    assert (await store.spent([counter]))[counter.key] == (1_000, 0)
    # The next run is refused at the door all the same: the budget refused a call this period.
    with pytest.raises(BudgetExceededError) as refused:
        await budgets.ensure_open("plain", "u1", 2_000)
    assert refused.value.code == "budget_exceeded"
    assert refused.value.status == 402
    # Other users' budgets are their own.
    await budgets.ensure_open("plain", "u2", 2_000)
    # Raising the limit opens it again (the mark holds the limit it was made under).
    await Budgets(settings(LIMIT_USD * 2), store, alerts).ensure_open("plain", "u1", 2_000)


async def test_refused_in_a_run_then_refused_at_the_door_for_a_smaller_estimate(
    parts: tuple[BudgetCounterStore, Alerts],
) -> None:
    store, alerts = parts
    budgets = Budgets(settings(), store, alerts)
    spent = await budgets.reserve("plain", "u1", 9_000)
    await budgets.settle(spent, 9_000)
    await budgets.drain(5.0)
    # A call inside a run (instructions, tools and history in its prompt) needs 1,500: refused.
    with pytest.raises(BudgetExceededError):
        await budgets.reserve("plain", "u1", 1_500)
    # The next run's first call, as estimated at the door from its input alone, would fit.
    with pytest.raises(BudgetExceededError):
        await budgets.ensure_open("plain", "u1", 800)


async def test_calls_without_a_budget_write_nothing(parts: tuple[BudgetCounterStore, Alerts]) -> None:
    store, alerts = parts
    budgets = Budgets(settings(None), store, alerts)
    await budgets.ensure_open("plain", "u1", 10**12)
    reservation = await budgets.reserve("plain", "u1", 10**12)
    await budgets.settle(reservation, 10**12)
    await budgets.drain(5.0)
    if isinstance(store, SqlBudgetStore):
        async with store.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(budget_counters)) == 0
    else:
        assert await store._redis.keys(f"{store._prefix}*") == []
