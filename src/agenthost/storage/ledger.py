"""The spend ledger: one row per model call, kept apart from runs and conversations.

Rows of runs come from their `usage` events and are written in the same transaction as those
events (batched off the run's critical path, or with the run's final state). A crash before a
batch lands loses nothing: recovery replays the run's steps, which re-emit the same events with
the same numbers, and rows already stored are skipped. Front-door passthrough calls and routing
classifier calls are written when they return, through `LedgerWriter`: the call answers only
once its row is committed, and concurrent calls share one transaction (group commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.records import SAVINGS
from agenthost.storage.base import Store
from agenthost.storage.tables import spend_ledger

__all__ = ["LedgerStore", "LedgerWriter", "ledger_row", "rows_from_events"]


def ledger_row(
    *,
    source: str,
    seq: int,
    kind: str,
    usage: Mapping[str, Any],
    at: datetime,
    run_id: str | None = None,
) -> dict[str, Any]:
    """A ledger row from a usage record (the `usage` event's data, or the same keys)."""
    cost = usage.get("cost") or {}
    saved = usage.get("saved") or {}
    return {
        **{f"saved_{reason}": int(saved.get(reason, 0)) for reason in SAVINGS},
        "source": source,
        "seq": seq,
        "run_id": run_id,
        "step": usage.get("step"),
        "kind": kind,
        "agent": usage.get("agent"),
        "user_id": usage.get("user_id"),
        "key_id": usage.get("key_id"),
        "team": usage.get("team"),
        "model": usage.get("model") or "unknown",
        "provider": usage.get("provider"),
        "tier": usage.get("tier"),
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cache_read_tokens": usage.get("cache_read_tokens", 0),
        "cache_write_tokens": usage.get("cache_write_tokens", 0),
        "cost_nanousd": cost.get("nanousd", 0),
        "cost_status": cost.get("status", "unknown_model"),
        "cached": bool(usage.get("cached", False)),
        "created_at": at,
    }


def rows_from_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ledger rows of a batch of run events: one per `usage` event of a call made by that run
    (a fork's copied steps were paid for by the run they were copied from)."""
    return [
        ledger_row(
            source=event["run_id"],
            seq=event["seq"],
            kind="run",
            usage=event["data"],
            at=event["created_at"],
            run_id=event["run_id"],
        )
        for event in events
        if event["type"] == "usage" and event["data"].get("ledger", True)
    ]


class LedgerStore(Store):
    """Writes ledger rows (idempotently) and purges the ones past retention."""

    async def append(self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            statement = self.insert(spend_ledger).on_conflict_do_nothing(index_elements=["source", "seq"])
            await conn.execute(statement, list(rows))

    async def record(self, rows: Sequence[dict[str, Any]]) -> None:
        async with self.engine.begin() as conn:
            await self.append(conn, rows)

    async def purge(self, before: datetime) -> int:
        """Delete rows older than `before` (the retention period); returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(spend_ledger.delete().where(spend_ledger.c.created_at < before))
            return int(result.rowcount or 0)

    async def total_since(self, since: datetime) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(spend_ledger.c.cost_nanousd), 0)).where(
                    spend_ledger.c.created_at >= since
                )
            )
            return int(value or 0)


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
