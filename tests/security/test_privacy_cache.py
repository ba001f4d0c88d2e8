"""Cached answers remember whose request they answered, so erasing that user removes them: the
response cache and the semantic cache, in agenthost's database and in Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.test import TestModel

from agenthost.gateway.cache import CacheModel, cache_scope
from agenthost.gateway.semantic import SemanticCache
from agenthost.security.audit import AuditLog
from agenthost.security.privacy import Privacy
from agenthost.settings import Settings
from agenthost.storage.backends import Backends
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
    config: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'a.db'}"}
    if backend == "redis":
        config["redis"] = {"url": REDIS_URL, "key_prefix": request.getfixturevalue("redis_prefix")}
    settings = Settings.model_validate(config)
    # The stores a server with this configuration opens: the database's, or Redis's.
    backends = await Backends.open(settings)
    privacy = Privacy.over(backends, AuditLog(backends.audit), settings)
    semantic = SemanticCache(
        _Embedder(), backends.semantic_cache, threshold=0.99, max_entries=10, ttl_seconds=60
    )
    model = CacheModel(
        TestModel(), "m", backends.response_cache, ttl_seconds=60, shared=False, semantic=semantic
    )
    try:
        await _ask(model, "alice", "what is my balance")
        await _ask(model, "bob", "where is my parcel")
        receipt = await privacy.erase_user("alice", actor="admin-key")
        again = await privacy.erase_user("alice", actor="admin-key")
        bob_hit = await semantic.lookup(
            semantic.partition("m", _prompt("where is my parcel"), None, ModelRequestParameters(), "bob"),
            "where is my parcel",
        )
        alice_hit = await semantic.lookup(
            semantic.partition("m", _prompt("what is my balance"), None, ModelRequestParameters(), "alice"),
            "what is my balance",
        )
    finally:
        await backends.aclose()
    assert (receipt.cache_entries, receipt.semantic_entries) == (1, 1)
    assert (again.cache_entries, again.semantic_entries) == (0, 0)
    assert bob_hit[0] is not None
    assert alice_hit[0] is None
