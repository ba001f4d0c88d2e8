"""Conversation threads: each run on a thread appends its new messages; the next run reads them all.

Erasure deletes the messages a user's runs added (call it before the runs lose the user's id);
retention deletes messages older than the conversations' period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.storage.base import Store
from agenthost.storage.protocols import Subject
from agenthost.storage.tables import row_dict, runs, thread_messages

__all__ = ["ThreadStore"]


class ThreadStore(Store):
    """Reads and writes `thread_messages`; one row per run, so a replayed append is a no-op."""

    async def history(self, thread_id: str) -> list[Any]:
        """The thread's messages (pydantic-ai JSON form), oldest first."""
        statement = (
            sa.select(thread_messages.c.messages)
            .where(thread_messages.c.thread_id == thread_id)
            .order_by(thread_messages.c.position, thread_messages.c.run_id)
        )
        async with self.engine.connect() as conn:
            return [message for (chunk,) in await conn.execute(statement) for message in chunk]

    async def history_until(self, thread_id: str, run_id: str) -> list[Any] | None:
        """The thread's messages up to and including those `run_id` added (the history of a branch
        taken at that run); None if that run added none to the thread."""
        mark = (
            sa.select(thread_messages.c.position)
            .where(thread_messages.c.thread_id == thread_id, thread_messages.c.run_id == run_id)
            .scalar_subquery()
        )
        statement = (
            sa.select(thread_messages.c.messages)
            .where(thread_messages.c.thread_id == thread_id, thread_messages.c.position <= mark)
            .order_by(thread_messages.c.position, thread_messages.c.run_id)
        )
        async with self.engine.connect() as conn:
            chunks = [chunk for (chunk,) in await conn.execute(statement)]
        return [message for chunk in chunks for message in chunk] if chunks else None

    async def append(
        self, conn: AsyncConnection, thread_id: str, run_id: str, messages: list[Any], at: datetime
    ) -> None:
        """Append a run's new messages inside the caller's transaction (the run's final write)."""
        row = {
            "thread_id": thread_id,
            "run_id": run_id,
            "position": int(at.timestamp() * 1_000_000),
            "messages": messages,
            "created_at": at,
        }
        await conn.execute(
            self.insert(thread_messages)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["thread_id", "run_id"])
        )

    async def summary(self, thread_id: str) -> dict[str, Any] | None:
        """Messages and runs of a thread, or None if it has neither."""
        messages = await self.history(thread_id)
        statement = (
            sa.select(runs.c.id, runs.c.status, runs.c.agent, runs.c.created_at)
            .where(runs.c.thread_id == thread_id)
            .order_by(runs.c.created_at, runs.c.id)
        )
        async with self.engine.connect() as conn:
            run_rows = [row_dict(row) for row in await conn.execute(statement)]
        if not messages and not run_rows:
            return None
        return {"messages": messages, "runs": run_rows}

    async def delete(self, thread_id: str) -> int:
        """Forget the thread's messages and detach its runs from it; the number of messages removed."""
        async with self.engine.begin() as conn:
            chunks = await conn.execute(
                sa.select(thread_messages.c.messages).where(thread_messages.c.thread_id == thread_id)
            )
            removed = sum(len(chunk) for (chunk,) in chunks)
            await conn.execute(thread_messages.delete().where(thread_messages.c.thread_id == thread_id))
            await conn.execute(runs.update().where(runs.c.thread_id == thread_id).values(thread_id=None))
        return removed

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        """Delete the messages the user's runs added to their threads."""
        theirs = sa.select(runs.c.id).where(runs.c.user_id == subject.user_id)
        async with self.engine.begin() as conn:
            found = await conn.execute(
                sa.select(thread_messages.c.thread_id, thread_messages.c.messages).where(
                    thread_messages.c.run_id.in_(theirs)
                )
            )
            threads: set[str] = set()
            messages = 0
            for thread_id, chunk in found.all():
                threads.add(thread_id)
                messages += len(chunk or [])
            await conn.execute(thread_messages.delete().where(thread_messages.c.run_id.in_(theirs)))
        return {"threads": len(threads), "messages": messages}

    async def purge(self, before: datetime) -> dict[str, int]:
        """Delete messages added before `before` (rows, one per run)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(thread_messages.delete().where(thread_messages.c.created_at < before))
        return {"thread_messages": int(result.rowcount or 0)}
