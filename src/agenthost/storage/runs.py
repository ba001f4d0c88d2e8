"""Run records and run events, on SQLAlchemy Core (SQLite and Postgres share every query)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.storage.base import Store
from agenthost.storage.ledger import LedgerStore, rows_from_events
from agenthost.storage.tables import row_dict, run_events, runs

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "RunFilter", "RunStore"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "dead"})
ACTIVE_STATUSES = frozenset({"queued", "running", "waiting_approval"})


@dataclass(frozen=True)
class RunFilter:
    """Filters of `GET /v1/runs`; a cursor is the `(created_at, id)` of the last row seen."""

    status: str | None = None
    agent: str | None = None
    user_id: str | None = None
    owner: Any = None
    """A SQL condition limiting the rows to what the caller may see (None: all)."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: tuple[datetime, str] | None = None
    limit: int = 50


class RunStore(Store):
    """Reads and writes `runs` and `run_events`."""

    async def create(self, row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert a run unless its id exists; return the stored row and whether it was new."""
        statement = self.insert(runs).values(**row).on_conflict_do_nothing(index_elements=["id"])
        async with self.engine.begin() as conn:
            inserted = (await conn.execute(statement)).rowcount == 1
            if inserted:
                return row, True
            existing = (await conn.execute(sa.select(runs).where(runs.c.id == row["id"]))).one()
            return row_dict(existing), False

    async def get(self, run_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(runs).where(runs.c.id == run_id))).one_or_none()
        return None if row is None else row_dict(row)

    async def list_runs(self, query: RunFilter) -> list[dict[str, Any]]:
        statement = sa.select(runs)
        if query.status is not None:
            statement = statement.where(runs.c.status == query.status)
        if query.agent is not None:
            statement = statement.where(runs.c.agent == query.agent)
        if query.user_id is not None:
            statement = statement.where(runs.c.user_id == query.user_id)
        if query.owner is not None:
            statement = statement.where(query.owner)
        if query.created_after is not None:
            statement = statement.where(runs.c.created_at >= query.created_after)
        if query.created_before is not None:
            statement = statement.where(runs.c.created_at < query.created_before)
        if query.cursor is not None:
            at, run_id = query.cursor
            statement = statement.where(
                sa.or_(runs.c.created_at < at, sa.and_(runs.c.created_at == at, runs.c.id < run_id))
            )
        statement = statement.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(query.limit)
        async with self.engine.connect() as conn:
            return [row_dict(row) for row in await conn.execute(statement)]

    async def mark_started(self, run_id: str, at: datetime) -> None:
        """A queued run began executing (no-op once it is past `queued`)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "queued")
                .values(status="running", started_at=at)
            )

    async def finish(
        self,
        run_id: str,
        values: dict[str, Any],
        events: Sequence[dict[str, Any]],
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        """Write a run's final state with its remaining events (and `also`), in one transaction.

        A run already cancelled keeps its `cancelled` status; its usage and cost are still recorded.
        """
        kept = runs.c.status == "cancelled"
        guarded = {
            key: sa.case((kept, runs.c[key]), else_=sa.literal(value, runs.c[key].type))
            if key in ("status", "error", "output")
            else value
            for key, value in values.items()
        }
        async with self.engine.begin() as conn:
            await self._append(conn, events)
            await conn.execute(runs.update().where(runs.c.id == run_id).values(**guarded))
            if also is not None:
                await also(conn)

    async def set_status(self, run_id: str, status: str, *, only_from: frozenset[str]) -> bool:
        """Move a run to `status` if it is in one of `only_from`; True if it moved."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                runs.update().where(runs.c.id == run_id, runs.c.status.in_(only_from)).values(status=status)
            )
        return result.rowcount == 1

    async def reopen(self, run_id: str, after_seq: int) -> None:
        """A dead run resumes: back to `running`, its events from the failed step on are dropped."""
        async with self.engine.begin() as conn:
            await conn.execute(
                run_events.delete().where(run_events.c.run_id == run_id, run_events.c.seq > after_seq)
            )
            await conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(status="running", error=None, output=None, completed_at=None)
            )

    async def cancel(self, run_id: str, at: datetime) -> bool:
        """Mark a run cancelled unless it already ended; True if this call changed it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status.not_in(TERMINAL_STATUSES))
                .values(status="cancelled", completed_at=at)
            )
        return result.rowcount == 1

    async def mark_dead(self, run_id: str, error: dict[str, Any], at: datetime) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status.in_(ACTIVE_STATUSES))
                .values(status="dead", error=error, completed_at=at)
            )
        return int(result.rowcount)

    async def fail_lost(self, run_ids: Sequence[str], at: datetime, message: str) -> None:
        """Mark runs whose workflow never started as failed."""
        if not run_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id.in_(run_ids), runs.c.status.not_in(TERMINAL_STATUSES))
                .values(status="failed", completed_at=at, error={"code": "run_lost", "message": message})
            )

    async def thread_busy(self, thread_id: str) -> bool:
        statement = (
            sa.select(runs.c.id)
            .where(runs.c.thread_id == thread_id, runs.c.status.in_(ACTIVE_STATUSES))
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(statement)).first() is not None

    async def thread_owners(self, thread_id: str) -> list[dict[str, Any]]:
        """The distinct (user_id, key_id, team) of the runs on a thread."""
        statement = (
            sa.select(runs.c.user_id, runs.c.key_id, runs.c.team)
            .where(runs.c.thread_id == thread_id)
            .distinct()
        )
        async with self.engine.connect() as conn:
            return [row_dict(row) for row in await conn.execute(statement)]

    async def unfinished(self) -> list[tuple[str, datetime]]:
        """Ids and creation times of runs not yet ended."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(runs.c.id, runs.c.created_at).where(runs.c.status.not_in(TERMINAL_STATUSES))
            )
            return [(row[0], row[1]) for row in result]

    async def append_events(self, events: Sequence[dict[str, Any]]) -> None:
        """Store events; ones already stored (same run and seq, from a replay) are skipped."""
        if not events:
            return
        async with self.engine.begin() as conn:
            await self._append(conn, events)

    async def _append(self, conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> None:
        if events:
            statement = self.insert(run_events).on_conflict_do_nothing(index_elements=["run_id", "seq"])
            await conn.execute(statement, list(events))
            # Each model call's ledger row lands with the event that reports it.
            await LedgerStore(self.engine).append(conn, rows_from_events(events))

    async def events_after(self, run_id: str, after_seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        statement = (
            sa.select(run_events)
            .where(run_events.c.run_id == run_id, run_events.c.seq > after_seq)
            .order_by(run_events.c.seq)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [row_dict(row) for row in await conn.execute(statement)]
