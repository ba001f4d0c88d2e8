"""The response caches in Redis, shared by every replica; entries expire by their TTL.

Each entry a tenant's request produced is also listed in the tenant's index set (which lives as
long as its newest entry), so erasure finds every entry of a user without scanning keys.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from agenthost.storage.protocols import Subject
from agenthost.storage.redis_client import RedisKeys

__all__ = ["RedisResponseCache", "RedisSemanticCache"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ttl_ms(ttl_seconds: float) -> int:
    return max(int(ttl_seconds * 1000), 1)


class RedisResponseCache:
    """Exact answers as strings with their TTL (`RedisKeys.cache_entry`)."""

    def __init__(self, redis: Any, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._keys.cache_entry(key))
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl_seconds: float, tenant: str | None = None) -> None:
        ttl_ms = _ttl_ms(ttl_seconds)
        if tenant is None:
            await self._redis.set(self._keys.cache_entry(key), value, px=ttl_ms)
            return
        index = self._keys.tenant_index("cache", tenant)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.cache_entry(key), value, px=ttl_ms)
            pipe.sadd(index, key)
            pipe.pexpire(index, ttl_ms)
            await pipe.execute()

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        index = self._keys.tenant_index("cache", subject.user_id)
        keys = [_text(k) for k in await self._redis.smembers(index)]
        deleted = int(await self._redis.delete(*[self._keys.cache_entry(k) for k in keys])) if keys else 0
        await self._redis.delete(index)
        return {"cache_entries": deleted}

    async def purge(self, before: datetime) -> dict[str, int]:  # noqa: ARG002 - Redis expires entries itself
        return {}


class RedisSemanticCache:
    """Entries as two strings each (vector, answer) with their TTL, indexed per partition by a
    sorted set (newest last)."""

    def __init__(self, redis: Any, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def candidates(self, partition: str, limit: int) -> list[tuple[bytes, bytes]]:
        index = self._keys.semantic_index(partition)
        ids = [_text(entry) for entry in await self._redis.zrevrange(index, 0, limit - 1)]
        if not ids:
            return []
        vectors = await self._redis.mget([self._keys.semantic_vector(partition, entry) for entry in ids])
        values = await self._redis.mget([self._keys.semantic_answer(partition, entry) for entry in ids])
        found = [
            (bytes(v), bytes(a))
            for v, a in zip(vectors, values, strict=True)
            if v is not None and a is not None
        ]
        expired = [entry for entry, v in zip(ids, vectors, strict=True) if v is None]
        if expired:
            await self._redis.zrem(index, *expired)
        return found

    async def add(
        self, partition: str, vector: bytes, value: bytes, ttl_seconds: float, tenant: str | None = None
    ) -> None:
        index = self._keys.semantic_index(partition)
        entry = secrets.token_hex(8)
        ttl_ms = _ttl_ms(ttl_seconds)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.semantic_vector(partition, entry), vector, px=ttl_ms)
            pipe.set(self._keys.semantic_answer(partition, entry), value, px=ttl_ms)
            pipe.zadd(index, {entry: datetime.now(UTC).timestamp()})
            pipe.pexpire(index, ttl_ms)
            if tenant is not None:
                owned = self._keys.tenant_index("semantic", tenant)
                pipe.sadd(owned, f"{partition}:{entry}")
                pipe.pexpire(owned, ttl_ms)
            await pipe.execute()

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        owned = self._keys.tenant_index("semantic", subject.user_id)
        deleted = 0
        for item in [_text(e) for e in await self._redis.smembers(owned)]:
            partition, _, entry = item.rpartition(":")
            removed = await self._redis.delete(
                self._keys.semantic_vector(partition, entry), self._keys.semantic_answer(partition, entry)
            )
            await self._redis.zrem(self._keys.semantic_index(partition), entry)
            deleted += 1 if removed else 0
        await self._redis.delete(owned)
        return {"semantic_entries": deleted}

    async def purge(self, before: datetime) -> dict[str, int]:  # noqa: ARG002 - Redis expires entries itself
        return {}
