"""Semantic response cache (opt-in): a new question that means the same as one answered before
gets the stored answer, at no cost.

A request is eligible when it ends with a user's prompt (not tool results). Its *partition* is a
hash of everything except that prompt's text: the model, the tenant, the earlier messages, the
instructions, the tools, the settings and the embedding model. So only the last question is
compared by meaning; all the rest must match exactly. Within a partition, the stored question
whose embedding has the highest cosine similarity wins if it reaches `[cache] semantic_threshold`.

Embeddings come from `[cache] semantic_embeddings`: `local` (all-MiniLM-L6-v2 on the CPU, from the
`[semantic]` extra) or a `[models]` entry served over the OpenAI embeddings API. A failed
embedding is a miss, never a failed call.

Stores (`storage/caches_sql.py`, `storage/caches_redis.py`): agenthost's database or Redis; a lookup
reads the partition's newest `semantic_max_entries` vectors and compares them in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from agenthost.gateway.cache import request_key
from agenthost.gateway.embeddings import Embedder
from agenthost.storage.protocols import SemanticCacheStore

__all__ = ["SemanticCache", "prompt_of"]

_log = structlog.get_logger(__name__)


def prompt_of(messages: list[_messages.ModelMessage]) -> str | None:
    """The text of the user's prompt that ends the request, or None when it does not end with one."""
    if not messages or not isinstance(messages[-1], _messages.ModelRequest):
        return None
    parts = messages[-1].parts
    prompts = [p.content for p in parts if isinstance(p, _messages.UserPromptPart)]
    if not prompts or any(
        isinstance(p, (_messages.ToolReturnPart, _messages.RetryPromptPart)) for p in parts
    ):
        return None
    if not all(isinstance(text, str) for text in prompts):
        return None  # images and other media are not compared by meaning
    return "\n".join(str(text) for text in prompts)


@dataclass(frozen=True)
class Match:
    value: bytes
    similarity: float


class SemanticCache:
    """Finds and stores answers by the meaning of the request's last user prompt."""

    def __init__(
        self,
        embedder: Embedder,
        store: SemanticCacheStore,
        *,
        threshold: float,
        max_entries: int,
        ttl_seconds: float,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.threshold = threshold
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def prompt(messages: list[_messages.ModelMessage]) -> str | None:
        """The text compared by meaning (see `prompt_of`)."""
        return prompt_of(messages)

    def partition(
        self,
        model_name: str,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
        tenant: str | None,
    ) -> str:
        last = messages[-1]
        assert isinstance(last, _messages.ModelRequest)
        # The last prompt's text is left out (compared by meaning), its other parts stay in.
        kept = [p for p in last.parts if not isinstance(p, _messages.UserPromptPart)]
        rest = [*messages[:-1], _messages.ModelRequest(parts=kept, instructions=last.instructions)]
        exact = request_key(f"{model_name}|{self.embedder.name}", rest, settings, parameters, tenant)
        return hashlib.sha256(f"semantic|{exact}".encode()).hexdigest()

    async def _vector(self, text: str) -> Any:
        import numpy as np  # noqa: PLC0415 - the [semantic] extra

        (vector,) = await self.embedder.embed([text])
        return np.asarray(vector, dtype=np.float32)

    async def lookup(self, partition: str, text: str) -> tuple[Match | None, Any]:
        """The best stored answer at or above the threshold (or None), and the prompt's vector."""
        import numpy as np  # noqa: PLC0415

        try:
            vector = await self._vector(text)
            rows = await self.store.candidates(partition, self.max_entries)
        except Exception as exc:
            _log.warning("semantic_cache_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
            return None, None
        if not rows:
            return None, vector
        matrix = np.frombuffer(b"".join(v for v, _ in rows), dtype=np.float32).reshape(len(rows), -1)
        if matrix.shape[1] != vector.shape[0]:
            return None, vector
        scores = matrix @ vector
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        if similarity < self.threshold:
            return None, vector
        return Match(rows[best][1], similarity), vector

    async def add(self, partition: str, vector: Any, value: bytes, tenant: str | None = None) -> None:
        try:
            await self.store.add(partition, vector.tobytes(), value, self.ttl_seconds, tenant)
        except Exception as exc:
            _log.warning("semantic_cache_store_failed", error=f"{type(exc).__name__}: {exc}"[:300])
