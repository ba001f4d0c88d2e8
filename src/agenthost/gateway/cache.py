"""Exact response cache: the same request to the same model gets the stored answer, at no cost.

The key is a SHA-256 of the request's canonical form: the model, the messages (contents only: no
timestamps or run ids), the instructions, the tool definitions, the settings that change an answer,
and the tenant (the run's or caller's user), so answers are never shared across tenants unless
`[cache] shared_across_tenants` says so. Entries expire after `[cache] ttl_seconds`.

Hits are marked: their provider is `agenthost-cache`, which prices them at 0 with status `cached`.
What is not cached: runs of agents with side-effect tools (at-most-once or approval-required), and
responses that ended in error or were cut short.

Stores (`storage/caches_sql.py`, `storage/caches_redis.py`): agenthost's database by default, Redis
when `[redis] url` is set; `storage/backends.py` picks one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from pydantic_ai import messages as _messages
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from agenthost.compat import parts_manager
from agenthost.gateway.pricing import CACHE_PROVIDER
from agenthost.observability.metrics import CACHE_LOOKUPS
from agenthost.storage.protocols import ResponseCacheStore

if TYPE_CHECKING:
    from agenthost.gateway.semantic import SemanticCache

__all__ = [
    "CACHE_PROVIDER",
    "CacheModel",
    "cache_scope",
    "request_key",
]

_RESPONSE = _messages.ModelMessagesTypeAdapter
_SETTINGS_IN_KEY = ("max_tokens", "temperature", "top_p", "seed", "stop_sequences", "presence_penalty")


@dataclass(frozen=True)
class _Scope:
    enabled: bool
    tenant: str | None


_scope: ContextVar[_Scope] = ContextVar("agenthost_cache_scope", default=_Scope(enabled=True, tenant=None))  # noqa: B039 - _Scope is frozen


def cache_scope(*, enabled: bool, tenant: str | None) -> Any:
    """Set, for the calls made in this context, whether caching applies and for which tenant."""
    return _scope.set(_Scope(enabled=enabled, tenant=tenant))


def _part_form(part: Any) -> list[Any]:
    kind = getattr(part, "part_kind", type(part).__name__)
    if isinstance(part, _messages.ToolCallPart):
        return [kind, part.tool_name, part.args_as_json_str()]
    if isinstance(part, _messages.ToolReturnPart):
        return [kind, part.tool_name, part.model_response_str()]
    content = getattr(part, "content", None)
    return [kind, content if isinstance(content, str) else json.dumps(content, default=str, sort_keys=True)]


def request_key(
    model_name: str,
    messages: list[_messages.ModelMessage],
    settings: ModelSettings | None,
    parameters: ModelRequestParameters,
    tenant: str | None,
) -> str:
    """The cache key of a request (stable across processes and releases of the same content)."""
    canonical = {
        "model": model_name,
        "tenant": tenant,
        "messages": [[message.kind, [_part_form(part) for part in message.parts]] for message in messages],
        "instructions": [getattr(m, "instructions", None) for m in messages],
        "instruction_parts": [str(p) for p in parameters.instruction_parts or []],
        "tools": [[t.name, t.description, t.parameters_json_schema] for t in parameters.function_tools],
        "output_tools": [[t.name, t.parameters_json_schema] for t in parameters.output_tools],
        "output_mode": parameters.output_mode,
        "settings": {
            k: (settings or {}).get(k) for k in _SETTINGS_IN_KEY if (settings or {}).get(k) is not None
        },
    }
    encoded = json.dumps(canonical, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass
class CachedStreamedResponse(StreamedResponse):
    """Replays a stored response as a stream (text in word-sized deltas, tool calls whole): cache
    hits, and answers of batched calls."""

    _stored: _messages.ModelResponse = field(default_factory=lambda: _messages.ModelResponse(parts=[]))
    _timestamp: datetime = field(default_factory=lambda: datetime.now(UTC), init=False)

    async def _get_event_iterator(self) -> AsyncIterator[_messages.ModelResponseStreamEvent]:
        self.finish_reason = self._stored.finish_reason
        self.provider_details = self._stored.provider_details
        for index, part in enumerate(self._stored.parts):
            for event in self._events(index, part):
                yield event

    def _events(
        self, index: int, part: _messages.ModelResponsePart
    ) -> Iterator[_messages.ModelResponseStreamEvent]:
        if isinstance(part, _messages.TextPart):
            words = part.content.split(" ")
            for i, word in enumerate(words):
                chunk = word if i == len(words) - 1 else f"{word} "
                yield from parts_manager(self).handle_text_delta(vendor_part_id=index, content=chunk)
        elif isinstance(part, _messages.ToolCallPart):
            yield parts_manager(self).handle_tool_call_part(
                vendor_part_id=index,
                tool_name=part.tool_name,
                args=cast("str | dict[str, Any] | None", part.args),
                tool_call_id=part.tool_call_id,
            )

    @property
    def model_name(self) -> str:
        return self._stored.model_name or ""

    @property
    def provider_name(self) -> str:
        return self._stored.provider_name or CACHE_PROVIDER

    @property
    def provider_url(self) -> str | None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self._timestamp


def _cacheable(response: _messages.ModelResponse) -> bool:
    return response.finish_reason in (None, "stop", "tool_call") and bool(response.parts)


def _hit(stored: bytes, details: dict[str, Any]) -> _messages.ModelResponse:
    response = _RESPONSE.validate_json(stored)[0]
    assert isinstance(response, _messages.ModelResponse)
    # What the original call used and who served it, for the savings report.
    usage = {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens}
    details = {**details, "usage": usage, "provider": response.provider_name}
    response.provider_name = CACHE_PROVIDER
    response.provider_details = details
    response.usage = RequestUsage()  # nothing was spent
    return response


@dataclass
class _Semantic:
    """A pending semantic lookup: where to store the answer, and the prompt's vector."""

    partition: str
    vector: Any


class CacheModel(WrapperModel):
    """Answers from the store when the same request was answered before; stores new answers."""

    def __init__(
        self,
        wrapped: Model,
        name: str,
        store: ResponseCacheStore,
        *,
        ttl_seconds: float,
        shared: bool,
        semantic: SemanticCache | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.name = name
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.shared = shared
        self.semantic = semantic

    def _tenant(self) -> tuple[bool, str | None]:
        scope = _scope.get()
        return scope.enabled, None if self.shared else scope.tenant

    def _key(
        self,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        params: ModelRequestParameters,
    ) -> str | None:
        enabled, tenant = self._tenant()
        if not enabled:
            return None
        return request_key(self.name, messages, settings, params, tenant)

    async def _find(
        self,
        key: str,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        params: ModelRequestParameters,
    ) -> tuple[_messages.ModelResponse | None, _Semantic | None]:
        """An answer from the exact cache, else from the semantic cache; else what to store later."""
        if (stored := await self._lookup(key)) is not None:
            return _hit(stored, {"cache": "exact"}), None
        semantic = self.semantic
        if semantic is None or (text := semantic.prompt(messages)) is None:
            return None, None
        partition = semantic.partition(self.name, messages, settings, params, self._tenant()[1])
        match, vector = await semantic.lookup(partition, text)
        CACHE_LOOKUPS.labels("semantic", "miss" if match is None else "hit").inc()
        if match is not None:
            return _hit(match.value, {"cache": "semantic", "similarity": round(match.similarity, 4)}), None
        return None, None if vector is None else _Semantic(partition, vector)

    async def _keep(self, key: str, pending: _Semantic | None, response: _messages.ModelResponse) -> None:
        if not _cacheable(response):
            return
        value = _RESPONSE.dump_json([response])
        # Whose request it answered (even when answers are shared), so erasing that user removes it.
        owner = _scope.get().tenant
        await self.store.set(key, value, self.ttl_seconds, owner)
        if pending is not None and self.semantic is not None:
            await self.semantic.add(pending.partition, pending.vector, value, owner)

    async def _lookup(self, key: str) -> bytes | None:
        stored = await self.store.get(key)
        CACHE_LOOKUPS.labels("exact", "miss" if stored is None else "hit").inc()
        return stored

    async def request(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        key = self._key(messages, model_settings, model_request_parameters)
        if key is None:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        found, pending = await self._find(key, messages, model_settings, model_request_parameters)
        if found is not None:
            return found
        response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        await self._keep(key, pending, response)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        key = self._key(messages, model_settings, model_request_parameters)
        found, pending = (
            (None, None)
            if key is None
            else await self._find(key, messages, model_settings, model_request_parameters)
        )
        if found is not None:
            yield CachedStreamedResponse(model_request_parameters, _stored=found)
            return
        async with self.wrapped.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as response:
            yield response
        if key is not None:
            await self._keep(key, pending, response.get())
