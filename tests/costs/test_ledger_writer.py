"""Group commit of front-door ledger rows on a real SQLite database: concurrent callers share one
transaction, each returns only once its row is stored, and one bad row fails only its caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from agenthost.records import Cost, UsageRecord
from agenthost.storage.engine import create_app_engine, database_urls
from agenthost.storage.ledger import LedgerStore, LedgerWriter, ledger_row
from agenthost.storage.migrate import upgrade
from agenthost.storage.tables import spend_ledger

CALLERS = 50


def row(source: str) -> dict[str, Any]:
    usage = UsageRecord(model="gpt-4o-mini", input_tokens=10, output_tokens=2, cost=Cost(nanousd=7))
    return ledger_row(source=source, seq=0, kind="passthrough", usage=usage, at=datetime.now(UTC))


async def stored(store: LedgerStore) -> set[str]:
    async with store.engine.connect() as conn:
        return set((await conn.scalars(sa.select(spend_ledger.c.source))).all())


async def test_concurrent_rows_share_one_transaction_and_are_stored_on_return(tmp_path: Path) -> None:
    urls = database_urls(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(urls)
    engine = create_app_engine(urls)
    commits = []
    event.listen(engine.sync_engine, "commit", lambda conn: commits.append(1))
    store = LedgerStore(engine)
    writer = LedgerWriter(store)
    try:
        seen_on_return: list[bool] = []

        async def call(i: int) -> None:
            await writer.record([row(f"call-{i}")])
            seen_on_return.append(f"call-{i}" in await stored(store))

        await asyncio.gather(*(call(i) for i in range(CALLERS)))
        assert seen_on_return == [True] * CALLERS
        assert await stored(store) == {f"call-{i}" for i in range(CALLERS)}
        assert len(commits) <= 2, len(commits)  # not one per call

        # A later caller starts a new transaction of its own.
        await writer.record([row("later")])
        assert "later" in await stored(store)
    finally:
        await engine.dispose()


async def test_a_bad_row_fails_only_its_caller(tmp_path: Path) -> None:
    urls = database_urls(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(urls)
    engine = create_app_engine(urls)
    store = LedgerStore(engine)
    writer = LedgerWriter(store)
    bad = {**row("bad"), "model": None}  # NOT NULL
    try:
        results = await asyncio.gather(
            writer.record([row("good-1")]),
            writer.record([bad]),
            writer.record([row("good-2")]),
            return_exceptions=True,
        )
        assert results[0] is None
        assert results[2] is None
        assert isinstance(results[1], sa.exc.IntegrityError)
        assert await stored(store) == {"good-1", "good-2"}
        with pytest.raises(sa.exc.IntegrityError):
            await writer.record([bad])
    finally:
        await engine.dispose()
