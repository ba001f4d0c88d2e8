"""Scrubbing: free text out, shape and accounting in; for runs, their events and approvals, and
the durable records DBOS keeps of them (workflow input and output, step outputs).

Used by erasure (with the user's id replaced by a pseudonym) and by retention (ids kept).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.security.audit_chain import ERASED
from agenthost.storage.engine import DatabaseURLs, create_dbos_engine, create_sync_engine
from agenthost.storage.tables import approvals, run_events, runs

__all__ = ["DBOS_SCHEMA", "chunks", "scrub", "scrub_dbos_records", "scrub_runs"]

CHUNK = 500
DBOS_SCHEMA = "dbos"
"""DBOS's schema on Postgres (its default; agenthost does not change it)."""

# What survives a scrub: identifiers of models, tools, outcomes and costs; never free text.
_KEEP_TEXT = frozenset(
    {
        "agent", "approval_id", "cache", "code", "completed_at", "cost_status", "created_at", "decided_at",
        "event", "expires_at", "finish_reason", "key_id", "kind", "limit", "model", "model_name", "outcome",
        "part_kind", "priority", "provider", "provider_name", "requested_at", "run_id", "started_at",
        "status", "team", "tier", "timestamp", "tool", "tool_call_id", "tool_name", "type",
    }
)  # fmt: skip
_KEEP_NUMBERS = frozenset(
    {
        "attempt", "cache_read_tokens", "cache_write_tokens", "cost_nanousd", "duration_ms", "fork_step",
        "function_id", "input_tokens", "max_tokens", "output_tokens", "requests", "seq", "similarity",
        "step", "steps", "tool_calls", "total_tokens",
    }
)  # fmt: skip
# Subtrees whose numbers are all accounting (token counts, prices, savings).
_NUMERIC_PARENTS = frozenset({"usage", "cost", "saved", "details", "limits"})
# Subtrees that are the conversation itself: replaced whole.
_DROP = frozenset(
    {
        "args", "arguments", "content", "delta", "deltas", "history", "input", "instructions",
        "message", "messages", "output", "parts", "prompt", "query", "reason", "result", "text",
    }
)  # fmt: skip
_USER_KEYS = frozenset({"user_id", "user", "decided_by"})


def scrub(  # noqa: PLR0911 - one return per kind of JSON value
    value: Any, *, user: tuple[str, str] | None = None, key: str | None = None, numeric: bool = False
) -> Any:
    """`value` with its free text removed and its shape, identifiers and accounting numbers kept.

    `user` is `(user id, pseudonym)`: that id, wherever it appears under a user key, becomes the
    pseudonym.
    """
    if key in _DROP:
        return None if value is None else ERASED
    if isinstance(value, dict):
        inner = numeric or key in _NUMERIC_PARENTS
        return {k: scrub(v, user=user, key=str(k), numeric=inner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, user=user, key=key, numeric=numeric) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if numeric or key in _KEEP_NUMBERS else None
    if isinstance(value, str):
        if key in _USER_KEYS and user is not None and value == user[0]:
            return user[1]
        if key in _KEEP_TEXT or (key in _USER_KEYS and user is not None):
            return value
        return ERASED
    return ERASED


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """`items` in slices of `size` (bounded `IN (...)` lists)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- DBOS's records -----------------------------------------------------------------------------


def _dbos_tables(schema: str | None) -> dict[str, sa.TableClause]:
    def table(name: str, *columns: str) -> sa.TableClause:
        return sa.table(name, *(sa.column(c) for c in columns), schema=schema)

    return {
        "status": table(
            "workflow_status",
            "workflow_uuid",
            "inputs",
            "output",
            "error",
            "serialization",
            "queue_partition_key",
        ),
        "input": table("workflow_input", "workflow_uuid", "inputs"),
        "output": table("workflow_output", "workflow_uuid", "output", "error"),
        "steps": table(
            "operation_outputs", "workflow_uuid", "function_id", "output", "error", "serialization"
        ),
    }


def _recode(
    text: str | None, serialization: str | None, what: str, user: tuple[str, str] | None
) -> str | None:
    """A DBOS-serialised value, scrubbed and serialised again the same way (None if unreadable)."""
    if text is None:
        return None
    from dbos import _serialization as ser  # noqa: PLC0415 - DBOS's own codec, loaded with DBOS

    default = ser.DBOSDefaultSerializer
    try:
        if what == "error":
            return str(ser.serialize_exception(RuntimeError(ERASED), serialization, default)[0])
        if what == "args":
            inputs = ser.deserialize_args(text, serialization, default)
            args = [scrub(a, user=user) for a in inputs["args"]]
            kwargs = {k: scrub(v, user=user, key=k) for k, v in inputs["kwargs"].items()}
            if serialization == ser.DBOSPortableJSON.name():
                return str(ser.DBOSPortableJSON.serialize({"positionalArgs": args, "namedArgs": kwargs}))
            return str(default.serialize({"args": tuple(args), "kwargs": kwargs}))
        value = scrub(ser.deserialize_value(text, serialization, default), user=user)
        return str(ser.serialize_value_as(value, serialization, default)[0])
    except Exception:
        # What cannot be read back cannot be kept: better an empty record than the user's words.
        return None


def _scrub_table(
    conn: sa.Connection,
    table: sa.TableClause,
    *,
    fields: dict[str, str],
    chunk: Sequence[str],
    formats: dict[str, str | None],
    user: tuple[str, str] | None,
) -> list[dict[str, Any]]:
    """Rewrite `fields` (column -> `args`, `value` or `error`) of the rows of `chunk`'s workflows."""
    keys = [c for c in ("workflow_uuid", "function_id", "serialization") if c in table.c]
    rows = conn.execute(
        sa.select(*(table.c[c] for c in (*keys, *fields))).where(table.c.workflow_uuid.in_(chunk))
    ).mappings()
    found = [dict(row) for row in rows]
    for row in found:
        fmt = row["serialization"] if "serialization" in row else formats.get(row["workflow_uuid"])
        where = [table.c[c] == row[c] for c in keys if c != "serialization"]
        values = {column: _recode(row[column], fmt, what, user) for column, what in fields.items()}
        conn.execute(table.update().where(*where).values(**values))
    return found


def _scrub_dbos_sync(
    engine: sa.Engine, schema: str | None, run_ids: Sequence[str], user: tuple[str, str] | None
) -> int:
    if not run_ids or not sa.inspect(engine).has_table("workflow_status", schema=schema):
        return 0
    t = _dbos_tables(schema)
    scrubbed = 0
    with engine.begin() as conn:
        for chunk in chunks(run_ids):
            outcome = {"output": "value", "error": "error"}
            workflows = _scrub_table(
                conn,
                t["status"],
                fields={"inputs": "args", **outcome},
                chunk=chunk,
                formats={},
                user=user,
            )
            formats = {row["workflow_uuid"]: row["serialization"] for row in workflows}
            if user is not None:
                # A thread run's queue partition is its thread id, which may name the user.
                status = t["status"]
                conn.execute(
                    status.update().where(status.c.workflow_uuid.in_(chunk)).values(queue_partition_key=None)
                )
            for name, fields in (("input", {"inputs": "args"}), ("output", outcome), ("steps", outcome)):
                _scrub_table(conn, t[name], fields=fields, chunk=chunk, formats=formats, user=user)
            scrubbed += len(workflows)
    return scrubbed


async def scrub_dbos_records(
    urls: DatabaseURLs, run_ids: Sequence[str], user: tuple[str, str] | None = None
) -> int:
    """Scrub the DBOS workflow input, output and step outputs of finished runs; how many workflows."""
    if not run_ids:
        return 0
    engine = create_dbos_engine(urls) or create_sync_engine(urls)
    schema = None if urls.is_sqlite else DBOS_SCHEMA
    try:
        return await asyncio.to_thread(_scrub_dbos_sync, engine, schema, list(run_ids), user)
    finally:
        engine.dispose()


async def scrub_runs(
    conn: AsyncConnection, run_ids: Sequence[str], at: datetime, user: tuple[str, str] | None
) -> dict[str, int]:
    """Scrub runs, their events and approvals inside the caller's transaction."""
    counts = {"runs_scrubbed": 0, "events": 0, "approvals": 0}
    for chunk in chunks(run_ids):
        rows = await conn.execute(
            sa.select(runs.c.id, runs.c.input, runs.c.output, runs.c.error, runs.c.metadata).where(
                runs.c.id.in_(chunk)
            )
        )
        for row in rows.all():
            values: dict[str, Any] = {
                "input": scrub(row.input, user=user) if isinstance(row.input, dict) else {"text": ERASED},
                "output": None if row.output is None else ERASED,
                "error": None if row.error is None else scrub(row.error, user=user),
                "metadata": None if row.metadata is None else scrub(row.metadata, user=user),
                "request_hash": None,
                "scrubbed_at": at,
            }
            if user is not None:
                values.update(user_id=user[1], thread_id=None)
            await conn.execute(runs.update().where(runs.c.id == row.id).values(**values))
            counts["runs_scrubbed"] += 1
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
            sa.select(approvals.c.id, approvals.c.user_id, approvals.c.decided_by, approvals.c.reason).where(
                approvals.c.run_id.in_(chunk)
            )
        )
        for approval in found.all():
            values = {"args": ERASED, "reason": None if approval.reason is None else ERASED}
            if user is not None:
                values.update(
                    {
                        name: user[1]
                        for name in ("user_id", "decided_by")
                        if getattr(approval, name) == user[0]
                    }
                )
            await conn.execute(approvals.update().where(approvals.c.id == approval.id).values(**values))
            counts["approvals"] += 1
    return counts
