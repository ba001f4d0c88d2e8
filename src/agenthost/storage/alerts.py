"""Spend alerts in agenthost's database (`alerts`): one row per alert id, so each fires once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agenthost.storage.base import Store
from agenthost.storage.tables import alerts as table
from agenthost.storage.tables import row_dict

__all__ = ["AlertStore"]


class AlertStore(Store):
    """Reads and writes `alerts`."""

    async def insert_once(self, row: dict[str, Any]) -> bool:
        """Store an alert unless its id exists; True if this call stored it (fired it)."""
        statement = self.insert(table).values(**row).on_conflict_do_nothing(index_elements=["id"])
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def delivered(self, alert_id: str, *, ok: bool, attempts: int) -> None:
        """Record the outcome of a delivery and the attempts it took."""
        async with self.engine.begin() as conn:
            await conn.execute(
                table.update()
                .where(table.c.id == alert_id)
                .values(delivery="delivered" if ok else "failed", attempts=table.c.attempts + attempts)
            )

    async def pending(self) -> list[dict[str, Any]]:
        """Alerts whose delivery never ended (a restart interrupted it)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(table).where(table.c.delivery == "pending"))
            return [row_dict(r) for r in rows]

    async def history(self, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts, newest first."""
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        async with self.engine.connect() as conn:
            return [row_dict(r) for r in await conn.execute(query)]
