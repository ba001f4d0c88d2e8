"""The response caches in agenthost's database: exact answers (`response_cache`) and semantic
entries (`semantic_cache`). Expired entries are ignored on read and deleted by retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agenthost.storage.base import Store
from agenthost.storage.protocols import Subject
from agenthost.storage.tables import response_cache, semantic_cache

__all__ = ["SqlResponseCache", "SqlSemanticCache"]


class SqlResponseCache(Store):
    """Exact answers by request key."""

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

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                response_cache.delete().where(response_cache.c.tenant == subject.user_id)
            )
        return {"cache_entries": int(result.rowcount or 0)}

    async def purge(self, before: datetime) -> dict[str, int]:
        """Delete entries that expired before `before`."""
        async with self.engine.begin() as conn:
            result = await conn.execute(response_cache.delete().where(response_cache.c.expires_at <= before))
        return {"cache_expired": int(result.rowcount or 0)}


class SqlSemanticCache(Store):
    """Semantic entries: a prompt's vector and the answer, per partition."""

    async def candidates(self, partition: str, limit: int) -> list[tuple[bytes, bytes]]:
        table = semantic_cache
        query = (
            sa.select(table.c.vector, table.c.value)
            .where(table.c.partition == partition, table.c.expires_at > datetime.now(UTC))
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(bytes(v), bytes(value)) for v, value in (await conn.execute(query)).all()]

    async def add(
        self, partition: str, vector: bytes, value: bytes, ttl_seconds: float, tenant: str | None = None
    ) -> None:
        table = semantic_cache
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                table.delete().where(table.c.partition == partition, table.c.expires_at <= now)
            )
            await conn.execute(
                table.insert().values(
                    partition=partition,
                    vector=vector,
                    value=value,
                    expires_at=now + timedelta(seconds=ttl_seconds),
                    tenant=tenant,
                )
            )

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                semantic_cache.delete().where(semantic_cache.c.tenant == subject.user_id)
            )
        return {"semantic_entries": int(result.rowcount or 0)}

    async def purge(self, before: datetime) -> dict[str, int]:
        async with self.engine.begin() as conn:
            result = await conn.execute(semantic_cache.delete().where(semantic_cache.c.expires_at <= before))
        return {"cache_expired": int(result.rowcount or 0)}
