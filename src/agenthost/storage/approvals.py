"""Approval requests for tool calls: one row per call waiting for (or given) a person's decision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenthost.records import Visibility
from agenthost.storage.base import Store, visible
from agenthost.storage.tables import approvals, row_dict, runs

__all__ = ["ApprovalStore"]


class ApprovalStore(Store):
    """Reads and writes `approvals`. A decision is a conditional update: only `pending` rows change."""

    async def request(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record pending approvals; rows already recorded (a replay) are left as they are."""
        if rows:
            statement = self.insert(approvals).on_conflict_do_nothing(index_elements=["id"])
            async with self.engine.begin() as conn:
                await conn.execute(statement, list(rows))

    async def decide(
        self,
        approval_id: str,
        status: str,
        by: str,
        reason: str | None,
        at: datetime,
        *,
        on_behalf_of: str | None = None,
    ) -> bool:
        """Approve, deny or expire a pending approval; False if it was not pending.

        `by` is who decided (the authenticated caller, or `system:...`); `on_behalf_of` the person
        an operator decided for, if any."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                approvals.update()
                .where(approvals.c.id == approval_id, approvals.c.status == "pending")
                .values(status=status, decided_by=by, decided_for=on_behalf_of, reason=reason, decided_at=at)
            )
        return result.rowcount == 1

    async def close_pending(self, run_id: str, status: str, reason: str, at: datetime) -> None:
        """The run ended while waiting (cancelled, dead): its pending approvals can no longer be given."""
        async with self.engine.begin() as conn:
            await conn.execute(
                approvals.update()
                .where(approvals.c.run_id == run_id, approvals.c.status == "pending")
                .values(status=status, decided_by="system", reason=reason, decided_at=at)
            )

    async def get(self, approval_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))
            ).one_or_none()
        return None if row is None else row_dict(row)

    async def of_run(self, run_id: str, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        statement = sa.select(approvals).where(approvals.c.run_id == run_id)
        if ids is not None:
            statement = statement.where(approvals.c.id.in_(ids))
        async with self.engine.connect() as conn:
            return [row_dict(row) for row in await conn.execute(statement.order_by(approvals.c.requested_at))]

    async def list_approvals(
        self,
        *,
        status: str | None,
        run_id: str | None,
        agent: str | None,
        tool: str | None,
        limit: int,
        visibility: Visibility | None = None,
    ) -> list[dict[str, Any]]:
        """Approvals, newest first; `visibility` keeps those of runs the caller may see."""
        statement = sa.select(approvals)
        if (owned := visible(runs, visibility)) is not None:
            statement = statement.where(approvals.c.run_id.in_(sa.select(runs.c.id).where(owned)))
        for column, value in (
            (approvals.c.status, status),
            (approvals.c.run_id, run_id),
            (approvals.c.agent, agent),
            (approvals.c.tool_name, tool),
        ):
            if value is not None:
                statement = statement.where(column == value)
        statement = statement.order_by(approvals.c.requested_at.desc(), approvals.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [row_dict(row) for row in await conn.execute(statement)]
