"""Run records and run events, on SQLAlchemy Core (SQLite and Postgres share every query).

Besides `runs` and `run_events`, a run's erasure and retention reach the approvals of its tool
calls: they are scrubbed in the same transaction as the run (`erase_subject`, `purge`). A run's
`data_key` (the key that seals what DBOS records of it) is read only by `start_info` and
`data_key`, never returned with the row, and deleted with the run's content.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.records import ACTIVE_STATUSES, ERASED, TERMINAL_STATUSES, Visibility
from agenthost.storage.base import CHUNK, Store, chunks, visible
from agenthost.storage.ledger import LedgerStore, rows_from_events
from agenthost.storage.protocols import Subject
from agenthost.storage.scrub import scrub
from agenthost.storage.tables import approvals, row_dict, run_events, runs

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "RunFilter", "RunStart", "RunStore"]

# Every column but the data key, which never travels with a run's row.
_COLUMNS = tuple(column for column in runs.c if column.name != "data_key")


@dataclass(frozen=True, slots=True)
class RunStart:
    """What a run's workflow reads once when it starts executing."""

    data_key: bytes | None
    fork_step: int
    thread_id: str | None


@dataclass(frozen=True)
class RunFilter:
    """Filters of `GET /v1/runs`; a cursor is the `(created_at, id)` of the last row seen."""

    status: str | None = None
    agent: str | None = None
    user_id: str | None = None
    visibility: Visibility | None = None
    """Which rows the caller may see (None: all)."""
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
            # The existing row with its data key: the caller seals what it hands DBOS with it.
            return row_dict(existing), False

    async def get(self, run_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(*_COLUMNS).where(runs.c.id == run_id))).one_or_none()
        return None if row is None else row_dict(row)

    async def data_key(self, run_id: str) -> bytes | None:
        """The run's data key (None: the run does not exist, or its content was erased)."""
        async with self.engine.connect() as conn:
            key = await conn.scalar(sa.select(runs.c.data_key).where(runs.c.id == run_id))
        return None if key is None else bytes(key)

    async def start_info(self, run_id: str) -> RunStart | None:
        """The data key, fork point and thread of a run, in one read."""
        statement = sa.select(runs.c.data_key, runs.c.fork_step, runs.c.thread_id).where(runs.c.id == run_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(statement)).one_or_none()
        if row is None:
            return None
        key, fork_step, thread_id = row
        return RunStart(None if key is None else bytes(key), int(fork_step or 0), thread_id)

    async def list_runs(self, query: RunFilter) -> list[dict[str, Any]]:
        statement = sa.select(*_COLUMNS)
        if query.status is not None:
            statement = statement.where(runs.c.status == query.status)
        if query.agent is not None:
            statement = statement.where(runs.c.agent == query.agent)
        if query.user_id is not None:
            statement = statement.where(runs.c.user_id == query.user_id)
        if (owned := visible(runs, query.visibility)) is not None:
            statement = statement.where(owned)
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

    # -- erasure and retention ------------------------------------------------------------------

    async def active_of(self, user_id: str) -> list[str]:
        """Ids of the user's runs that have not ended."""
        statement = sa.select(runs.c.id).where(runs.c.user_id == user_id, runs.c.status.in_(ACTIVE_STATUSES))
        async with self.engine.connect() as conn:
            return [str(run_id) for run_id in (await conn.scalars(statement)).all()]

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        """Scrub the user's finished runs (input, output, error, metadata, events, approvals),
        delete their data keys (DBOS's records of them become unreadable) and replace the user's
        id by its pseudonym; the rows stay with their cost and timings."""
        statement = sa.select(runs.c.id).where(
            runs.c.user_id == subject.user_id, runs.c.status.in_(TERMINAL_STATUSES)
        )
        async with self.engine.begin() as conn:
            run_ids = [str(run_id) for run_id in (await conn.scalars(statement)).all()]
            counts = await _scrub_runs(conn, run_ids, datetime.now(UTC), subject)
            # The user's traces on runs that are not theirs (rare): approvals they asked or decided.
            for column in (approvals.c.user_id, approvals.c.decided_by, approvals.c.decided_for):
                await conn.execute(
                    approvals.update()
                    .where(column == subject.user_id)
                    .values({column.name: subject.pseudonym})
                )
        return counts

    async def purge(self, before: datetime) -> dict[str, int]:
        """Scrub runs that ended before `before` (ids kept: the run is still accounted for)."""
        ended = sa.func.coalesce(runs.c.completed_at, runs.c.created_at)
        statement = (
            sa.select(runs.c.id)
            .where(
                runs.c.scrubbed_at.is_(None),
                runs.c.status.in_(TERMINAL_STATUSES),
                runs.c.created_at < before,
                ended < before,
            )
            .limit(CHUNK)
        )
        counts = {"runs_scrubbed": 0, "events": 0, "approvals": 0, "dbos_workflows_scrubbed": 0}
        while True:
            async with self.engine.begin() as conn:
                run_ids = [str(run_id) for run_id in (await conn.scalars(statement)).all()]
                if not run_ids:
                    return counts
                for key, value in (await _scrub_runs(conn, run_ids, datetime.now(UTC), None)).items():
                    counts[key] += value


async def _scrub_runs(
    conn: AsyncConnection, run_ids: Sequence[str], at: datetime, subject: Subject | None
) -> dict[str, int]:
    """Scrub runs, their events and approvals inside the caller's transaction, and delete their
    data keys. `dbos_workflows_scrubbed` counts the runs whose durable records this made
    unreadable (they had a key)."""
    user = None if subject is None else (subject.user_id, subject.pseudonym)
    counts = {"runs_scrubbed": 0, "events": 0, "approvals": 0, "dbos_workflows_scrubbed": 0}
    for chunk in chunks(run_ids):
        rows = await conn.execute(
            sa.select(
                runs.c.id, runs.c.input, runs.c.output, runs.c.error, runs.c.metadata, runs.c.data_key
            ).where(runs.c.id.in_(chunk))
        )
        for row in rows.all():
            values: dict[str, Any] = {
                "input": scrub(row.input, user=user) if isinstance(row.input, dict) else {"text": ERASED},
                "output": None if row.output is None else ERASED,
                "error": None if row.error is None else scrub(row.error, user=user),
                "metadata": None if row.metadata is None else scrub(row.metadata, user=user),
                "request_hash": None,
                "scrubbed_at": at,
                "data_key": None,
            }
            if subject is not None:
                values.update(user_id=subject.pseudonym, thread_id=None)
            await conn.execute(runs.update().where(runs.c.id == row.id).values(**values))
            counts["runs_scrubbed"] += 1
            counts["dbos_workflows_scrubbed"] += 1 if row.data_key is not None else 0
        events = await conn.execute(
            sa.select(run_events.c.run_id, run_events.c.seq, run_events.c.data).where(
                run_events.c.run_id.in_(chunk)
            )
        )
        for event in events.all():
            await conn.execute(
                run_events.update()
                .where(run_events.c.run_id == event.run_id, run_events.c.seq == event.seq)
                .values(data=scrub(event.data, user=user))
            )
            counts["events"] += 1
        found = await conn.execute(
            sa.select(approvals.c.id, approvals.c.reason).where(approvals.c.run_id.in_(chunk))
        )
        for approval in found.all():
            update = {"args": ERASED, "reason": None if approval.reason is None else ERASED}
            await conn.execute(approvals.update().where(approvals.c.id == approval.id).values(**update))
            counts["approvals"] += 1
    return counts
