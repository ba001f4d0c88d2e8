"""Privacy: erase a user's data on request (GDPR art. 17), and retention per kind of data.

This module orchestrates; each store knows how to erase a subject and purge what is old
(`storage/protocols.py`, `Erasable`). Erasure (`Privacy.erase_user`) removes what holds the
user's words and keeps what accounting and compliance need, with the user id replaced:

* conversation threads: the messages the user's runs added are deleted;
* runs: the rows stay (status, cost, tokens, timings), but input, output, error text, metadata
  and every run event's payload are scrubbed, and each run's data key is deleted: what DBOS
  keeps of the run (its input, every step's response and tool value) was sealed with that key
  and can never be read again (`security/sealing.py`);
* approvals of those runs: the tool arguments and the reasons are scrubbed;
* the response cache and the semantic cache: the user's entries are deleted (SQL and Redis);
* the spend ledger: rows stay, the user id becomes a pseudonym (`erased:<digest>`), so totals,
  per-user sums and the costs report are unchanged;
* the audit log: the user id is replaced by `[erased]` (its keyed digest stays, so the chain still
  verifies) and the details of entries about the user are blanked; the erasure itself is audited.

Runs still active (queued, running, waiting for approval) are not touched: erasure refuses with
409 `user_has_active_runs` until they end (cancel them first), because a run that is executing
would write its input and output again after the scrub.

Retention (`Privacy.enforce_retention`, run by a DBOS schedule, hourly by default, and once at
every start) deletes conversations and scrubs finished runs older than `[retention]
conversations_days`, purges audit entries older than `audit_days` (keeping the chain verifiable
from an anchor), ledger rows older than `[ledger] retention_days`, and expired cache entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agenthost.config.security import RetentionSettings
from agenthost.errors import ConflictError, ErrorCode
from agenthost.security.audit import AuditLog
from agenthost.settings import Settings
from agenthost.storage.backends import Backends
from agenthost.storage.protocols import Erasable, Subject
from agenthost.storage.runs import RunStore
from agenthost.storage.threads import ThreadStore

__all__ = ["ErasureReceipt", "Privacy", "pseudonym"]

_log = structlog.get_logger(__name__)
_RECEIPT_COUNTS = (
    "threads",
    "messages",
    "runs_scrubbed",
    "events",
    "approvals",
    "cache_entries",
    "semantic_entries",
    "dbos_workflows_scrubbed",
    "ledger_rows_anonymised",
)
_RETENTION_COUNTS = (
    "thread_messages",
    "runs_scrubbed",
    "events",
    "approvals",
    "dbos_workflows_scrubbed",
    "audit_entries",
    "ledger_rows",
    "cache_expired",
)


def pseudonym(user_digest: str) -> str:
    """What replaces an erased user's id in runs, approvals and the ledger."""
    return f"erased:{user_digest[:16]}"


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
    """Runs whose durable records (DBOS's) became unreadable: their data key was deleted."""
    ledger_rows_anonymised: int
    audit_entries_anonymised: int
    audit_seq: int
    """The `data.erased` audit entry recording this erasure."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the body of `DELETE /v1/users/{user_id}/data`)."""
        return {**asdict(self), "erased_at": self.erased_at.isoformat()}


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value


@dataclass(frozen=True)
class Privacy:
    """Erasure and retention over the stores that hold personal data."""

    runs: RunStore
    threads: ThreadStore
    stores: Sequence[Erasable]
    """Every store holding personal data, in the order erasure visits them (`Backends.erasable`)."""
    ledger: Erasable
    caches: Sequence[Erasable]
    audit: AuditLog
    settings: RetentionSettings
    ledger_retention_days: int | None = None

    @classmethod
    def over(cls, backends: Backends, audit: AuditLog, settings: Settings) -> Privacy:
        """Erasure and retention over every store `backends` opened."""
        return cls(
            runs=backends.runs,
            threads=backends.threads,
            stores=backends.erasable(),
            ledger=backends.ledger,
            caches=[backends.response_cache, backends.semantic_cache],
            audit=audit,
            settings=settings.retention,
            ledger_retention_days=settings.ledger.retention_days,
        )

    async def erase_user(
        self, user_id: str, *, actor: str, actor_user: str | None = None, request_id: str | None = None
    ) -> ErasureReceipt:
        """Erase `user_id`'s data (see the module docstring); idempotent: a second call returns zeros.

        Raises `ConflictError` (409, `user_has_active_runs`) while any of the user's runs is active.
        """
        active = await self.runs.active_of(user_id)
        if active:
            msg = (
                f"user has {len(active)} active run(s); cancel them or wait for them to end, then erase again"
            )
            raise ConflictError(
                msg, code=ErrorCode.USER_HAS_ACTIVE_RUNS, details={"runs": sorted(active)[:20]}
            )
        digest = await self.audit.user_digest(user_id)
        subject = Subject(user_id, pseudonym(digest))
        now = datetime.now(UTC)
        counts = dict.fromkeys(_RECEIPT_COUNTS, 0)
        # Each store is idempotent: an erasure interrupted half-way is completed by a retry.
        for store in self.stores:
            _add(counts, await store.erase_subject(subject))
        receipt_id = f"erasure_{uuid.uuid4().hex[:20]}"
        anonymised, entry = await self.audit.erase_user(
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
            **{key: counts[key] for key in _RECEIPT_COUNTS},
        )

    async def enforce_retention(self, now: datetime | None = None) -> dict[str, int]:
        """Delete or scrub what is past its retention period; returns how much of each kind."""
        now = now or datetime.now(UTC)
        counts = dict.fromkeys(_RETENTION_COUNTS, 0)
        settings = self.settings
        if settings.conversations_days > 0:
            cutoff = now - timedelta(days=settings.conversations_days)
            _add(counts, await self.threads.purge(cutoff))
            _add(counts, await self.runs.purge(cutoff))
        if settings.audit_days > 0:
            counts["audit_entries"] = await self.audit.purge(now - timedelta(days=settings.audit_days))
        if self.ledger_retention_days:
            _add(counts, await self.ledger.purge(now - timedelta(days=self.ledger_retention_days)))
        for cache in self.caches:
            _add(counts, await cache.purge(now))
        if any(counts.values()):
            _log.info("retention_enforced", **counts)
        return counts
