"""Privacy: erase a user's data on request (GDPR art. 17), and retention per kind of data.

Erasure (`erase_user`) removes what holds the user's words and keeps what accounting and
compliance need, with the user id replaced:

* conversation threads: the user's messages are deleted;
* runs: the rows stay (status, cost, tokens, timings), but input, output, error text, metadata
  and every run event's payload are scrubbed, and so are the durable records DBOS keeps of the
  run (workflow input and output, each step's output: they hold the prompt and the answers);
* approvals of those runs: the tool arguments and the reasons are scrubbed;
* the response cache and the semantic cache: the user's entries are deleted (SQL and Redis);
* the spend ledger: rows stay, the user id becomes a pseudonym (`erased:<digest>`), so totals,
  per-user sums and the costs report are unchanged;
* the audit log: the user id is replaced by `[erased]` (its keyed digest stays, so the chain still
  verifies) and the details of entries about the user are blanked; the erasure itself is audited.

Runs still active (queued, running, waiting for approval) are not touched: erasure refuses with
409 `user_has_active_runs` until they end (cancel them first), because a run that is executing
would write its input and output again after the scrub.

Retention (`enforce_retention`, run hourly by a DBOS scheduled workflow) deletes conversations and
scrubs finished runs older than `[retention] conversations_days`, purges audit entries older than
`audit_days` (keeping the chain verifiable from an anchor), ledger rows older than `[ledger]
retention_days`, and expired cache entries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agenthost.config.security import RetentionSettings
from agenthost.errors import ConflictError, ErrorCode
from agenthost.security.audit import AuditLog
from agenthost.security.scrub import CHUNK, chunks, scrub_dbos_records, scrub_runs
from agenthost.storage.engine import DatabaseURLs
from agenthost.storage.ledger import LedgerStore
from agenthost.storage.redis_client import tenant_index_key
from agenthost.storage.runs import ACTIVE_STATUSES, TERMINAL_STATUSES
from agenthost.storage.tables import (
    approvals,
    response_cache,
    runs,
    semantic_cache,
    spend_ledger,
    thread_messages,
)

__all__ = [
    "ErasureReceipt",
    "RetentionJob",
    "RetentionSettings",
    "enforce_retention",
    "erase_user",
    "pseudonym",
    "register_retention_job",
    "schedule_retention_job",
]

_log = structlog.get_logger(__name__)


def pseudonym(user_digest: str) -> str:
    """What replaces an erased user's id in runs, approvals and the ledger."""
    return f"erased:{user_digest[:16]}"


async def _delete_threads(conn: AsyncConnection, run_ids: Sequence[str]) -> tuple[int, int]:
    """Delete the messages the runs added to their threads: (threads touched, messages removed)."""
    threads: set[str] = set()
    messages = 0
    for chunk in chunks(run_ids):
        rows = await conn.execute(
            sa.select(thread_messages.c.thread_id, thread_messages.c.messages).where(
                thread_messages.c.run_id.in_(chunk)
            )
        )
        for thread_id, chunk_messages in rows.all():
            threads.add(thread_id)
            messages += len(chunk_messages or [])
        await conn.execute(thread_messages.delete().where(thread_messages.c.run_id.in_(chunk)))
    return len(threads), messages


async def _erase_redis_cache(redis: Any, prefix: str, user_id: str) -> tuple[int, int]:
    cache_index = tenant_index_key(prefix, "cache", user_id)
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in await redis.smembers(cache_index)]
    cached = int(await redis.delete(*[f"{prefix}:cache:{k}" for k in keys])) if keys else 0
    semantic_index = tenant_index_key(prefix, "semantic", user_id)
    entries = [e.decode() if isinstance(e, bytes) else str(e) for e in await redis.smembers(semantic_index)]
    semantic = 0
    for entry in entries:
        partition, _, entry_id = entry.rpartition(":")
        base = f"{prefix}:semantic:{partition}"
        deleted = int(await redis.delete(f"{base}:{entry_id}:v", f"{base}:{entry_id}:a"))
        await redis.zrem(base, entry_id)
        semantic += 1 if deleted else 0
    await redis.delete(cache_index, semantic_index)
    return cached, semantic


# -- erasure ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureReceipt:
    """What an erasure removed or anonymised (all zeros when there was nothing left)."""

    receipt_id: str
    user_digest: str
    """The keyed digest that stands for the user in the audit log (the only trace of the id)."""
    erased_at: datetime
    threads: int
    messages: int
    runs_scrubbed: int
    events: int
    approvals: int
    cache_entries: int
    semantic_entries: int
    dbos_workflows_scrubbed: int
    ledger_rows_anonymised: int
    audit_entries_anonymised: int
    audit_seq: int
    """The `data.erased` audit entry recording this erasure."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the body of `DELETE /v1/users/{user_id}/data`)."""
        return {**asdict(self), "erased_at": self.erased_at.isoformat()}


async def erase_user(
    engine: AsyncEngine,
    urls: DatabaseURLs,
    user_id: str,
    *,
    audit: AuditLog,
    actor: str,
    actor_user: str | None = None,
    request_id: str | None = None,
    redis: Any = None,
    redis_prefix: str = "agenthost",
) -> ErasureReceipt:
    """Erase `user_id`'s data (see the module docstring); idempotent: a second call returns zeros.

    Raises `ConflictError` (409, `user_has_active_runs`) while any of the user's runs is active.
    """
    active = await _scalars(
        engine, sa.select(runs.c.id).where(runs.c.user_id == user_id, runs.c.status.in_(ACTIVE_STATUSES))
    )
    if active:
        msg = f"user has {len(active)} active run(s); cancel them or wait for them to end, then erase again"
        raise ConflictError(msg, code=ErrorCode.USER_HAS_ACTIVE_RUNS, details={"runs": sorted(active)[:20]})
    digest = await audit.user_digest(user_id)
    user = (user_id, pseudonym(digest))
    run_ids = await _scalars(
        engine, sa.select(runs.c.id).where(runs.c.user_id == user_id, runs.c.status.in_(TERMINAL_STATUSES))
    )
    now = datetime.now(UTC)
    # DBOS first: if anything below fails, a retry still finds the runs by the user's id.
    workflows = await scrub_dbos_records(urls, run_ids, user)
    async with engine.begin() as conn:
        threads, messages = await _delete_threads(conn, run_ids)
        scrubbed = await scrub_runs(conn, run_ids, now, user)
        # Approvals of this user on runs that are someone else's (rare) lose the user's id too.
        await conn.execute(approvals.update().where(approvals.c.user_id == user_id).values(user_id=user[1]))
        await conn.execute(
            approvals.update().where(approvals.c.decided_by == user_id).values(decided_by=user[1])
        )
        ledger = await conn.execute(
            spend_ledger.update().where(spend_ledger.c.user_id == user_id).values(user_id=user[1])
        )
        cached = await conn.execute(response_cache.delete().where(response_cache.c.tenant == user_id))
        semantic = await conn.execute(semantic_cache.delete().where(semantic_cache.c.tenant == user_id))
    redis_cached, redis_semantic = (
        (0, 0) if redis is None else await _erase_redis_cache(redis, redis_prefix, user_id)
    )
    counts = {
        "threads": threads,
        "messages": messages,
        **scrubbed,
        "cache_entries": int(cached.rowcount or 0) + redis_cached,
        "semantic_entries": int(semantic.rowcount or 0) + redis_semantic,
        "dbos_workflows_scrubbed": workflows,
        "ledger_rows_anonymised": int(ledger.rowcount or 0),
    }
    receipt_id = f"erasure_{uuid.uuid4().hex[:20]}"
    anonymised, entry = await audit.erase_user(
        user_id,
        actor=actor,
        actor_user=actor_user,
        details={"receipt_id": receipt_id, **counts},
        request_id=request_id,
    )
    _log.info("user_data_erased", receipt_id=receipt_id, audit_seq=entry.seq, **counts)
    return ErasureReceipt(
        receipt_id=receipt_id,
        user_digest=digest,
        erased_at=now,
        audit_entries_anonymised=anonymised,
        audit_seq=entry.seq,
        **counts,
    )


async def _scalars(engine: AsyncEngine, statement: sa.Select[Any]) -> list[str]:
    async with engine.connect() as conn:
        return [str(value) for value in (await conn.scalars(statement)).all()]


# -- retention --------------------------------------------------------------------------------------


async def enforce_retention(
    engine: AsyncEngine,
    urls: DatabaseURLs,
    settings: RetentionSettings,
    *,
    audit: AuditLog,
    ledger_retention_days: int | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete or scrub what is past its retention period; returns how much of each kind."""
    now = now or datetime.now(UTC)
    counts = {
        "thread_messages": 0,
        "runs_scrubbed": 0,
        "events": 0,
        "approvals": 0,
        "dbos_workflows_scrubbed": 0,
        "audit_entries": 0,
        "ledger_rows": 0,
        "cache_expired": 0,
    }
    if settings.conversations_days > 0:
        cutoff = now - timedelta(days=settings.conversations_days)
        async with engine.begin() as conn:
            deleted = await conn.execute(
                thread_messages.delete().where(thread_messages.c.created_at < cutoff)
            )
        counts["thread_messages"] = int(deleted.rowcount or 0)
        for key, value in (await _expire_runs(engine, urls, cutoff, now)).items():
            counts[key] += value
    if settings.audit_days > 0:
        counts["audit_entries"] = await audit.purge(now - timedelta(days=settings.audit_days))
    if ledger_retention_days:
        counts["ledger_rows"] = (
            await LedgerStore(engine).purge(now - timedelta(days=ledger_retention_days))
        )["ledger_rows"]
    async with engine.begin() as conn:
        for table in (response_cache, semantic_cache):
            counts["cache_expired"] += int(
                (await conn.execute(table.delete().where(table.c.expires_at <= now))).rowcount or 0
            )
    if any(counts.values()):
        _log.info("retention_enforced", **counts)
    return counts


async def _expire_runs(
    engine: AsyncEngine, urls: DatabaseURLs, cutoff: datetime, now: datetime
) -> dict[str, int]:
    counts = {"runs_scrubbed": 0, "events": 0, "approvals": 0, "dbos_workflows_scrubbed": 0}
    ended = sa.func.coalesce(runs.c.completed_at, runs.c.created_at)
    statement = (
        sa.select(runs.c.id)
        .where(
            runs.c.scrubbed_at.is_(None),
            runs.c.status.in_(TERMINAL_STATUSES),
            runs.c.created_at < cutoff,
            ended < cutoff,
        )
        .limit(CHUNK)
    )
    while run_ids := await _scalars(engine, statement):
        counts["dbos_workflows_scrubbed"] += await scrub_dbos_records(urls, run_ids)
        async with engine.begin() as conn:
            for key, value in (await scrub_runs(conn, run_ids, now, None)).items():
                counts[key] += value
    return counts


# -- the scheduled job ------------------------------------------------------------------------------

RETENTION_WORKFLOW = "agenthost.retention"
RETENTION_SCHEDULE = "agenthost-retention"


@dataclass(frozen=True)
class RetentionJob:
    """What the scheduled retention workflow works on in this process."""

    engine: AsyncEngine
    urls: DatabaseURLs
    settings: RetentionSettings
    audit: AuditLog
    ledger_retention_days: int | None = None


_job: list[RetentionJob] = []
_workflow: list[Any] = []


async def _retention_workflow(scheduled_at: datetime, context: Any) -> None:  # noqa: ARG001 - DBOS's signature
    """One scheduled pass; its counts are the step's recorded output."""
    from dbos import DBOS  # noqa: PLC0415

    if not _job:
        _log.warning("retention_job_not_configured")
        return
    job = _job[0]
    now = scheduled_at if scheduled_at.tzinfo is not None else scheduled_at.replace(tzinfo=UTC)

    async def run() -> dict[str, int]:
        return await enforce_retention(
            job.engine,
            job.urls,
            job.settings,
            audit=job.audit,
            ledger_retention_days=job.ledger_retention_days,
            now=now,
        )

    await DBOS.run_step_async({"name": "retention:enforce"}, run)


def register_retention_job(job: RetentionJob) -> None:
    """Register the retention workflow (once per process) and what it works on; call after the
    DBOS instance is created (`configure_dbos`) and before `DBOS.launch()`."""
    from dbos import DBOS  # noqa: PLC0415

    _job[:] = [job]
    if not _workflow:
        _workflow.append(DBOS.workflow(name=RETENTION_WORKFLOW)(_retention_workflow))


async def schedule_retention_job(cron: str, *, run_now: bool = True) -> None:
    """Create or update the job's schedule, after `DBOS.launch()`, and (`run_now`) enqueue one pass
    at once, so a deployment that was down past a firing does not wait for the next one. Every
    replica may call it: the schedule is one row, each firing runs once (its workflow id is the
    schedule and the time), and a pass deletes only what is already past retention."""
    from dbos import DBOS  # noqa: PLC0415

    if not _workflow:
        msg = "register_retention_job() must be called before DBOS is launched"
        raise RuntimeError(msg)
    await DBOS.apply_schedules_async(
        [{"schedule_name": RETENTION_SCHEDULE, "workflow_fn": _workflow[0], "schedule": cron}]
    )
    if run_now:
        await asyncio.to_thread(DBOS.trigger_schedule, RETENTION_SCHEDULE)
