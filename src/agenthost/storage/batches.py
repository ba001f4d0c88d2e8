"""Batched model calls in agenthost's database (`batch_requests`): which provider batch each call
(`custom_id`, `<run>-<step>`) went into, and its result once the batch has ended.

A call's row is written when its batch is submitted, before the call waits, so a run recovered
after a crash finds its batch (and, once stored, its result) instead of submitting again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenthost.storage.base import Store
from agenthost.storage.tables import batch_requests as table
from agenthost.storage.tables import row_dict

__all__ = ["BatchStore"]


class BatchStore(Store):
    """Reads and writes `batch_requests`."""

    async def get(self, custom_id: str) -> dict[str, Any] | None:
        """The call's row (`custom_id`, `model`, `batch_id`, `result`, `created_at`), if submitted."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.custom_id == custom_id))).first()
        return None if row is None else row_dict(row)

    async def submitted(self, model: str, batch_id: str, custom_ids: Sequence[str], at: datetime) -> None:
        """Record the calls of a provider batch just submitted (no result yet), in one transaction."""
        rows = [
            {"custom_id": cid, "model": model, "batch_id": batch_id, "result": None, "created_at": at}
            for cid in custom_ids
        ]
        async with self.engine.begin() as conn:
            await conn.execute(table.insert(), rows)

    async def store_results(self, results: Mapping[str, dict[str, Any]]) -> None:
        """Store the results of an ended batch, by `custom_id`, in one transaction."""
        async with self.engine.begin() as conn:
            for custom_id, result in results.items():
                await conn.execute(table.update().where(table.c.custom_id == custom_id).values(result=result))
