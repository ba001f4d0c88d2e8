"""The response caches in agenthost's database: exact answers (`response_cache`) and semantic
entries (`semantic_cache`). Expired entries are ignored on read and deleted by retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agenthost.storage.base import Store
from agenthost.storage.protocols import Subject
from agenthost.storage.tables import response_cache, semantic_cache

__all__ = ["SqlResponseCache", "SqlSemanticCache"]


class _SqlCache(Store):
    """What both caches share: entries carry their tenant and their expiry."""

    table: sa.Table
    erased: str
    """What `erase_subject` reports the count as."""

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        return {self.erased: await self._delete(self.table.c.tenant == subject.user_id)}

    async def purge(self, before: datetime) -> dict[str, int]:
        """Delete entries that expired before `before`."""
        return {"cache_expired": await self._delete(self.table.c.expires_at <= before)}

    async def _delete(self, where: sa.ColumnElement[bool]) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(self.table.delete().where(where))
        return int(result.rowcount or 0)


class SqlResponseCache(_SqlCache):
    """Exact answers by request key."""

    table = response_cache
    erased = "cache_entries"

    async def get(self, key: str) -> bytes | None:
        statement = sa.select(response_cache.c.value).where(
            response_cache.c.key == key, response_cache.c.expires_at > datetime.now(UTC)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else bytes(row[0])

    async def set(self, key: str, value: bytes, ttl_seconds: float, tenant: str | None = None) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        async with self.engine.begin() as conn:
            await conn.execute(response_cache.delete().where(response_cache.c.key == key))
            await conn.execute(
                response_cache.insert().values(key=key, value=value, expires_at=expires, tenant=tenant)
            )


class SqlSemanticCache(_SqlCache):
    """Semantic entries: a prompt's vector and the answer, per partition."""

    table = semantic_cache
    erased = "semantic_entries"

    async def candidates(self, partition: str, limit: int) -> list[tuple[bytes, bytes]]:
        query = (
            sa.select(semantic_cache.c.vector, semantic_cache.c.value)
            .where(semantic_cache.c.partition == partition, semantic_cache.c.expires_at > datetime.now(UTC))
            .order_by(semantic_cache.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(bytes(v), bytes(value)) for v, value in (await conn.execute(query)).all()]

    async def add(
        self, partition: str, vector: bytes, value: bytes, ttl_seconds: float, tenant: str | None = None
    ) -> None:
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                semantic_cache.delete().where(
                    semantic_cache.c.partition == partition, semantic_cache.c.expires_at <= now
                )
            )
            await conn.execute(
                semantic_cache.insert().values(
                    partition=partition,
                    vector=vector,
                    value=value,
                    expires_at=now + timedelta(seconds=ttl_seconds),
                    tenant=tenant,
                )
            )
