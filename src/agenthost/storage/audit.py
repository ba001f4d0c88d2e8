"""The audit log in agenthost's database: `audit_log` (entries), `audit_head` (one row: the last
entry and the retention anchor) and `audit_meta` (the digest secret).

The chain semantics (canonical form, digests, hashes, what erasure blanks, verification) are the
security layer's (`security/audit.py`, `security/audit_chain.py`); this store keeps and reads rows.
Every write happens in an `AuditTransaction`, which locks the head row first: that is what
serialises appends from every task, process and replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.errors import AuditIntegrityError
from agenthost.storage.base import Store
from agenthost.storage.tables import audit_head, audit_log, audit_meta, row_dict

__all__ = ["AuditHead", "AuditRow", "AuditSnapshot", "AuditStore", "AuditTransaction", "Purged"]

_SECRET_KEY = "hmac_secret"  # noqa: S105 - the row name, not a secret  # pragma: allowlist secret
_BATCH = 1000
_ERASABLE = frozenset({"actor_user", "subject_user", "details"})
"""The only columns an entry may change after it is written (their digests stay)."""


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One `audit_log` row, every column."""

    seq: int
    created_at: datetime
    action: str
    actor: str
    """The credential or component that acted: `key:<id>`, `admin-key`, `jwt`, `system`."""
    actor_user: str | None
    """The user behind the actor, if any."""
    actor_user_digest: str | None
    subject_user: str | None
    """The user the action concerns (a run's owner, a key's owner, an erased user)."""
    subject_user_digest: str | None
    target: str | None
    """The object acted on (run id, approval id, key id); never a person."""
    details: Any
    details_digest: str
    model: str | None
    prompt_version: str | None
    request_id: str | None
    dedupe_key: str | None
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The row as a column -> value dict (shallow)."""
        return {name: getattr(self, name) for name in _ROW_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The entry as `GET /v1/audit` shows it: every column but the digests."""
        return {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "action": self.action,
            "actor": self.actor,
            "actor_user": self.actor_user,
            "subject_user": self.subject_user,
            "target": self.target,
            "details": self.details,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "request_id": self.request_id,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
        }


_ROW_FIELDS = tuple(f.name for f in fields(AuditRow))


def _row(row: Any) -> AuditRow:
    mapping = row_dict(row)
    return AuditRow(**{name: mapping[name] for name in _ROW_FIELDS})


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The head row: the last entry's seq and hash, and the retention anchor (seq and hash of the
    last entry retention deleted; seq 0 and the genesis hash until it first deletes)."""

    seq: int
    hash: str
    anchor_seq: int
    anchor_hash: str
    updated_at: datetime | None


async def _head(conn: AsyncConnection) -> AuditHead | None:
    row = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one_or_none()
    if row is None:
        return None
    return AuditHead(
        seq=int(row.seq),
        hash=str(row.hash),
        anchor_seq=int(row.anchor_seq),
        anchor_hash=str(row.anchor_hash),
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class Purged:
    """What `AuditTransaction.purge_before` deleted, and the anchor it recorded."""

    count: int
    anchor_seq: int
    anchor_hash: str


class AuditTransaction:
    """Writes on the audit log in one transaction that holds the head row's lock (see
    `AuditStore.transaction`); `head` is the head as read under that lock."""

    def __init__(self, conn: AsyncConnection, head: AuditHead) -> None:
        self._conn = conn
        self.head = head

    async def find(self, dedupe_key: str) -> AuditRow | None:
        """The entry written with this `dedupe_key`, if any."""
        query = sa.select(audit_log).where(audit_log.c.dedupe_key == dedupe_key)
        row = (await self._conn.execute(query)).one_or_none()
        return None if row is None else _row(row)

    async def append(self, row: AuditRow) -> None:
        """Insert an entry and make it the head (`row.seq` must follow `head.seq`)."""
        await self._conn.execute(audit_log.insert().values(**row.as_dict()))
        await self._conn.execute(
            audit_head.update()
            .where(audit_head.c.id == 1)
            .values(seq=row.seq, hash=row.hash, updated_at=row.created_at)
        )
        self.head = AuditHead(row.seq, row.hash, self.head.anchor_seq, self.head.anchor_hash, row.created_at)

    async def about(self, user_digest: str) -> list[AuditRow]:
        """Entries whose acting or concerned user has this digest."""
        query = sa.select(audit_log).where(
            sa.or_(
                audit_log.c.actor_user_digest == user_digest,
                audit_log.c.subject_user_digest == user_digest,
            )
        )
        return [_row(row) for row in (await self._conn.execute(query)).all()]

    async def anonymise(self, seq: int, values: Mapping[str, Any]) -> None:
        """Overwrite personal fields of one entry (`actor_user`, `subject_user`, `details`)."""
        if not values.keys() <= _ERASABLE:
            msg = f"only {sorted(_ERASABLE)} of an audit entry may change, not {sorted(values)}"
            raise ValueError(msg)
        await self._conn.execute(audit_log.update().where(audit_log.c.seq == seq).values(**values))

    async def purge_before(self, before: datetime) -> Purged | None:
        """Delete every entry up to the last one created before `before` (one block from the
        oldest) and record that last one as the anchor; None when there is none."""
        last = await self._conn.scalar(
            sa.select(sa.func.max(audit_log.c.seq)).where(audit_log.c.created_at < before)
        )
        if last is None:
            return None
        anchor_hash = await self._conn.scalar(sa.select(audit_log.c.hash).where(audit_log.c.seq == last))
        deleted = await self._conn.execute(audit_log.delete().where(audit_log.c.seq <= last))
        await self._conn.execute(
            audit_head.update().where(audit_head.c.id == 1).values(anchor_seq=last, anchor_hash=anchor_hash)
        )
        self.head = AuditHead(
            self.head.seq, self.head.hash, int(last), str(anchor_hash), self.head.updated_at
        )
        return Purged(count=int(deleted.rowcount or 0), anchor_seq=int(last), anchor_hash=str(anchor_hash))


class AuditSnapshot:
    """Reads of the audit log inside one read snapshot (see `AuditStore.snapshot`)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def head(self) -> AuditHead | None:
        """The head row (None when it was deleted)."""
        return await _head(self._conn)

    async def last_seq(self) -> int | None:
        """The highest seq stored."""
        last = await self._conn.scalar(sa.select(sa.func.max(audit_log.c.seq)))
        return None if last is None else int(last)

    async def first(self) -> tuple[int, str] | None:
        """The oldest stored entry's seq and `prev_hash`."""
        query = sa.select(audit_log.c.seq, audit_log.c.prev_hash).order_by(audit_log.c.seq).limit(1)
        row = (await self._conn.execute(query)).one_or_none()
        return None if row is None else (int(row.seq), str(row.prev_hash))

    async def rows(self, after: int, batch: int = _BATCH) -> AsyncIterator[AuditRow]:
        """Every entry with a seq above `after`, in seq order, read `batch` at a time."""
        while True:
            query = sa.select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
            page = [_row(row) for row in (await self._conn.execute(query)).all()]
            for row in page:
                yield row
            if len(page) < batch:
                return
            after = page[-1].seq


class AuditStore(Store):
    """Reads and writes `audit_log`, `audit_head` and `audit_meta`."""

    async def secret(self, candidate: str) -> str:
        """The digest secret; on first use `candidate` is stored (the first of racing writers wins)."""
        query = sa.select(audit_meta.c.value).where(audit_meta.c.key == _SECRET_KEY)
        async with self.engine.begin() as conn:
            value = await conn.scalar(query)
            if value is None:
                await conn.execute(
                    self.insert(audit_meta)
                    .values(key=_SECRET_KEY, value=candidate)
                    .on_conflict_do_nothing(index_elements=["key"])
                )
                value = await conn.scalar(query)
        return str(value)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AuditTransaction]:
        """One write transaction holding the head row's lock until it commits (or rolls back, if
        the block raises). Raises `AuditIntegrityError` when the head row is missing."""
        async with self.engine.begin() as conn:
            # A write first: on Postgres it locks the head row until commit; on SQLite it takes the
            # database's write lock before anything is read (so no other append reads the same head).
            locked = await conn.execute(
                audit_head.update().where(audit_head.c.id == 1).values(seq=audit_head.c.seq)
            )
            head = await _head(conn) if locked.rowcount == 1 else None
            if head is None:
                msg = (
                    "the audit log's head row is missing: the log was tampered with or not migrated; "
                    "run `agenthost audit verify`"
                )
                raise AuditIntegrityError(msg)
            yield AuditTransaction(conn, head)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AuditSnapshot]:
        """Reads that see one consistent state while appends and purges go on."""
        async with self.engine.connect() as connection:
            if self.engine.dialect.name == "postgresql":
                conn = await connection.execution_options(isolation_level="REPEATABLE READ")
                await conn.begin()
            else:
                conn = connection
                await conn.exec_driver_sql("BEGIN")
            yield AuditSnapshot(conn)

    async def head(self) -> AuditHead | None:
        """The head row (None when it was deleted)."""
        async with self.engine.connect() as conn:
            return await _head(conn)

    async def page(
        self,
        *,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        action_prefix: str | None = None,
        actor_user_digest: str | None = None,
        subject_user_digest: str | None = None,
        before_seq: int | None = None,
    ) -> list[AuditRow]:
        """Up to `limit` entries matching every filter given, newest first."""
        statement = sa.select(audit_log)
        if since is not None:
            statement = statement.where(audit_log.c.created_at >= since)
        if until is not None:
            statement = statement.where(audit_log.c.created_at < until)
        if action is not None:
            statement = statement.where(audit_log.c.action == action)
        if action_prefix is not None:
            statement = statement.where(audit_log.c.action.startswith(action_prefix, autoescape=True))
        if actor_user_digest is not None:
            statement = statement.where(audit_log.c.actor_user_digest == actor_user_digest)
        if subject_user_digest is not None:
            statement = statement.where(audit_log.c.subject_user_digest == subject_user_digest)
        if before_seq is not None:
            statement = statement.where(audit_log.c.seq < before_seq)
        statement = statement.order_by(audit_log.c.seq.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [_row(row) for row in await conn.execute(statement)]
