"""Cached answers remember whose request they answered, so erasing that user removes them: the
response cache and the semantic cache, in agenthost's database and in Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.test import TestModel

from agenthost.gateway.cache import CacheModel, RedisCacheStore, SqlCacheStore, cache_scope
from agenthost.gateway.semantic import RedisSemanticStore, SemanticCache, SqlSemanticStore
from agenthost.security.audit import AuditLog
from agenthost.security.privacy import erase_user
from agenthost.storage.audit import AuditStore
from agenthost.storage.engine import create_app_engine, database_urls
from agenthost.storage.migrate import upgrade
from tests.harness import REDIS_URL


class _Embedder:
    """A fixed two-dimensional embedding: every prompt means the same (enough to fill the store)."""

    name = "fixed"

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]


def _prompt(text: str) -> list[_messages.ModelMessage]:
    return [_messages.ModelRequest(parts=[_messages.UserPromptPart(content=text)])]


async def _ask(model: CacheModel, user: str, text: str) -> None:
    cache_scope(enabled=True, tenant=user)  # what a run of `user` sets before its model calls
    await model.request(_prompt(text), None, ModelRequestParameters())


@pytest.mark.parametrize("backend", ["sql", "redis"])
async def test_erasure_removes_the_users_cached_answers(tmp_path: Path, backend: str, request: Any) -> None:
    urls = database_urls(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(urls)
    engine = create_app_engine(urls)
    client = None
    prefix = "agenthost"
    if backend == "sql":
        store: Any = SqlCacheStore()
        semantic_store: Any = SqlSemanticStore()
        store.bind(engine)
        semantic_store.bind(engine)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        client = aioredis.Redis.from_url(REDIS_URL)
        store, semantic_store = RedisCacheStore(client, prefix), RedisSemanticStore(client, prefix)
    semantic = SemanticCache(_Embedder(), semantic_store, threshold=0.99, max_entries=10, ttl_seconds=60)
    model = CacheModel(TestModel(), "m", store, ttl_seconds=60, shared=False, semantic=semantic)
    try:
        await _ask(model, "alice", "what is my balance")
        await _ask(model, "bob", "where is my parcel")
        receipt = await erase_user(
            engine,
            urls,
            "alice",
            audit=AuditLog(AuditStore(engine)),
            actor="admin-key",
            redis=client,
            redis_prefix=prefix,
        )
        again = await erase_user(
            engine,
            urls,
            "alice",
            audit=AuditLog(AuditStore(engine)),
            actor="admin-key",
            redis=client,
            redis_prefix=prefix,
        )
        bob_hit = await semantic.lookup(
            semantic.partition("m", _prompt("where is my parcel"), None, ModelRequestParameters(), "bob"),
            "where is my parcel",
        )
        alice_hit = await semantic.lookup(
            semantic.partition("m", _prompt("what is my balance"), None, ModelRequestParameters(), "alice"),
            "what is my balance",
        )
    finally:
        if client is not None:
            await client.aclose()
        await engine.dispose()
    assert (receipt.cache_entries, receipt.semantic_entries) == (1, 1)
    assert (again.cache_entries, again.semantic_entries) == (0, 0)
    assert bob_hit[0] is not None
    assert alice_hit[0] is None
