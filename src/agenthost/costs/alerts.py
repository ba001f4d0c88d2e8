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
import structlog
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from agenthost.config.costs import AlertSettings
from agenthost.storage.alerts import AlertStore

__all__ = ["Alerts"]

_log = structlog.get_logger(__name__)


class Alerts:
    """Fires, stores and delivers alerts."""

    def __init__(self, store: AlertStore, settings: AlertSettings) -> None:
        self.store = store
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
        fired = await self.store.insert_once(row)
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
        await self.store.delivered(row["id"], ok=delivered, attempts=attempts)

    async def redeliver_pending(self) -> int:
        """Deliver alerts left `pending` (by a restart); returns how many were started."""
        if not self.settings.webhooks:
            return 0
        rows = await self.store.pending()
        running = {task.get_name() for task in self._deliveries}
        pending = [row for row in rows if f"alert:{row['id']}" not in running]
        for row in pending:
            self._deliver_later(row)
        return len(pending)

    async def history(self, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return await self.store.history(kind=kind, limit=limit)

    async def drain(self, grace_seconds: float) -> None:
        """Give deliveries in flight up to `grace_seconds` (at shutdown)."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=grace_seconds)
