"""Spend alerts: fired once (their id says per what), logged, stored, and sent to webhooks.

An alert's id is `<kind>:<subject>:<period>[:<threshold>]`; inserting it is what fires it, so
two replicas crossing the same threshold at once fire it once. Webhooks get Slack-compatible
JSON (`{"text": ...}` plus an `agenthost` object) and are retried with backoff; an alert whose
delivery was interrupted by a restart is delivered by the next start's bookkeeping.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from agenthost.costs.config import AlertSettings
from agenthost.storage.base import Store
from agenthost.storage.tables import alerts as table
from agenthost.storage.tables import row_dict

__all__ = ["Alerts"]

_log = structlog.get_logger(__name__)


class Alerts(Store):
    """Fires, stores and delivers alerts."""

    def __init__(self, engine: AsyncEngine, settings: AlertSettings) -> None:
        super().__init__(engine)
        self.settings = settings
        self._deliveries: set[asyncio.Task[None]] = set()

    async def fire(self, alert_id: str, kind: str, message: str, data: dict[str, Any]) -> bool:
        """Fire the alert unless it already fired; True if this call fired it."""
        row = {
            "id": alert_id,
            "kind": kind,
            "message": message,
            "data": data,
            "delivery": "pending" if self.settings.webhooks else "none",
            "attempts": 0,
            "created_at": datetime.now(UTC),
        }
        async with self.engine.begin() as conn:
            statement = self.insert(table).values(**row).on_conflict_do_nothing(index_elements=["id"])
            fired = (await conn.execute(statement)).rowcount == 1
        if fired:
            _log.warning("alert", alert_id=alert_id, kind=kind, message=message, **data)
            if self.settings.webhooks:
                self._deliver_later(row)
        return fired

    def _deliver_later(self, row: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(row), name=f"alert:{row['id']}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, row: dict[str, Any]) -> None:
        payload = {
            "text": f":rotating_light: {row['message']}",
            "agenthost": {"id": row["id"], "kind": row["kind"], "data": row["data"]},
        }
        attempts, delivered = 0, True
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_seconds) as client:
            for url in self.settings.webhooks:
                try:
                    async for attempt in AsyncRetrying(
                        stop=stop_after_attempt(self.settings.webhook_attempts),
                        wait=wait_exponential(multiplier=0.2, max=10),
                        reraise=True,
                    ):
                        with attempt:
                            attempts += 1
                            (await client.post(url, json=payload)).raise_for_status()
                except httpx.HTTPError as exc:
                    delivered = False
                    _log.error("alert_delivery_failed", alert_id=row["id"], url=url, error=str(exc)[:200])
        async with self.engine.begin() as conn:
            await conn.execute(
                table.update()
                .where(table.c.id == row["id"])
                .values(delivery="delivered" if delivered else "failed", attempts=table.c.attempts + attempts)
            )

    async def redeliver_pending(self) -> int:
        """Deliver alerts left `pending` (by a restart); returns how many were started."""
        if not self.settings.webhooks:
            return 0
        async with self.engine.connect() as conn:
            rows = [
                row_dict(r) for r in await conn.execute(sa.select(table).where(table.c.delivery == "pending"))
            ]
        running = {task.get_name() for task in self._deliveries}
        pending = [row for row in rows if f"alert:{row['id']}" not in running]
        for row in pending:
            self._deliver_later(row)
        return len(pending)

    async def history(self, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        async with self.engine.connect() as conn:
            return [row_dict(r) for r in await conn.execute(query)]

    async def drain(self, grace_seconds: float) -> None:
        """Give deliveries in flight up to `grace_seconds` (at shutdown)."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=grace_seconds)
