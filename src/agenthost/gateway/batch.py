"""Batch mode: model calls of runs marked `"priority": "batch"` go through the providers' batch APIs
(OpenAI Batch, Anthropic Message Batches) at their discount, and their answers flow back into the
durable run.

How one call travels:

1. The request body is produced by pydantic-ai and the provider SDK themselves (the model is
   built over an in-memory transport that keeps the body), so a batched call is exactly the
   call that would have been made.
2. The `Batcher` collects bodies per configured model for `[batch] collect_seconds` (or until
   `max_requests`), then submits them as one provider batch. Each call's `custom_id` is its run
   and step (`<run>-<step>`), and `storage/batches.py` maps it to the provider batch
   *before* the call waits, so a run recovered after a crash finds its batch and waits for it
   instead of submitting again.
3. One poller per provider batch asks for its status every `poll_seconds`; when it ends, every
   result is stored in the table and handed to its waiting call.
4. The stored provider answer is parsed by the same pydantic-ai model (over a transport that
   returns it), marked `provider_details["batch"]`, and priced at `[batch] discount`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import httpx2
import structlog
from dbos import DBOS
from pydantic_ai import messages as _messages
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from agenthost.gateway.cache import CachedStreamedResponse
from agenthost.gateway.models import build_provider_model, provider_client
from agenthost.settings import Settings
from agenthost.storage.batches import BatchStore

__all__ = ["BatchModel", "Batcher"]

_log = structlog.get_logger(__name__)

_STUBS: dict[str, dict[str, Any]] = {
    "openai": {
        "id": "stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
    },
    "anthropic": {
        "id": "stub",
        "type": "message",
        "role": "assistant",
        "model": "stub",
        "content": [],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 0, "output_tokens": 0},
    },
}
_ANTHROPIC_BATCH_MAX_TOKENS = 16_000
_OPENAI_DONE = frozenset({"completed", "failed", "expired", "cancelled"})


def _answering(body: dict[str, Any], kept: dict[str, Any]) -> httpx2.AsyncClient:
    """An HTTP client that answers every request with `body` and keeps the request's JSON."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        kept["body"] = json.loads(request.content or b"{}")
        return httpx2.Response(200, json=body)

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handle))


class Batcher:
    """Collects batched calls, submits them per model, polls the batches, hands out results."""

    def __init__(self, settings: Settings, store: BatchStore) -> None:
        self.settings = settings
        self.config = settings.batch
        self.store = store
        self._pending: dict[str, list[tuple[str, dict[str, Any], asyncio.Future[str]]]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._clients: dict[str, Any] = {}

    def _client(self, name: str) -> Any:
        """The provider SDK client of a configured model, made once (its connections are reused)."""
        if name not in self._clients:
            self._clients[name] = provider_client(self.settings.models[name])
        return self._clients[name]

    async def body_of(
        self,
        name: str,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> dict[str, Any]:
        """The request body the provider SDK would send for this call (never sent)."""
        cfg = self.settings.models[name]
        kept: dict[str, Any] = {}
        model = build_provider_model(cfg, self.settings.local, _answering(_STUBS[cfg.provider], kept))
        await model.request(messages, settings, parameters)
        body: dict[str, Any] = kept["body"]
        for key in ("stream", "stream_options"):
            body.pop(key, None)
        return body

    async def parse(
        self,
        name: str,
        answer: dict[str, Any],
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        """The provider's stored answer, read by the same pydantic-ai model as a live answer."""
        cfg = self.settings.models[name]
        model = build_provider_model(cfg, self.settings.local, _answering(answer, {}))
        return await model.request(messages, settings, parameters)

    async def call(self, name: str, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The provider's result for this call: `{"ok": True, "body": ...}` or `{"ok": False, ...}`."""
        row = await self.store.get(custom_id)
        if row is None:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._pending.setdefault(name, []).append((custom_id, body, future))
            if len(self._pending[name]) >= self.config.max_requests:
                await self._flush(name)
            elif name not in self._flushers:
                self._flushers[name] = asyncio.create_task(self._flush_later(name))
            batch_id = await future
        else:
            if row["result"] is not None:
                return dict(row["result"])
            batch_id = row["batch_id"]
        if custom_id not in self._waiters:
            self._waiters[custom_id] = (batch_id, asyncio.get_running_loop().create_future())
        waiter = self._waiters[custom_id][1]
        if batch_id not in self._pollers:
            self._pollers[batch_id] = asyncio.create_task(self._poll(name, batch_id))
        try:
            return await asyncio.shield(waiter)
        finally:
            self._waiters.pop(custom_id, None)

    async def _flush_later(self, name: str) -> None:
        await asyncio.sleep(self.config.collect_seconds)
        await self._flush(name)

    async def _flush(self, name: str) -> None:
        self._flushers.pop(name, None)
        taken = self._pending.pop(name, [])
        if not taken:
            return
        try:
            batch_id = await self._submit(name, [(custom_id, body) for custom_id, body, _ in taken])
            await self.store.submitted(name, batch_id, [cid for cid, _, _ in taken], datetime.now(UTC))
        except Exception as exc:
            for _, _, future in taken:
                if not future.done():
                    future.set_exception(ModelAPIError(name, f"batch submission failed: {exc}"))
            return
        _log.info("batch_submitted", model=name, batch_id=batch_id, requests=len(taken))
        for _, _, future in taken:
            if not future.done():
                future.set_result(batch_id)

    async def _submit(self, name: str, requests: list[tuple[str, dict[str, Any]]]) -> str:
        cfg = self.settings.models[name]
        client = self._client(name)
        if cfg.provider == "anthropic":
            batch = await client.messages.batches.create(
                requests=[{"custom_id": cid, "params": body} for cid, body in requests]
            )
            return str(batch.id)
        lines = [
            json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})
            for cid, body in requests
        ]
        upload = await client.files.create(
            file=("batch.jsonl", "\n".join(lines).encode(), "application/jsonl"), purpose="batch"
        )
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        return str(batch.id)

    async def _poll(self, name: str, batch_id: str) -> None:
        try:
            # Polling a remote batch: there is no event to wait for.
            while (results := await self._results(name, batch_id)) is None:  # noqa: ASYNC110
                await asyncio.sleep(self.config.poll_seconds)
            await self.store.store_results(results)
            _log.info("batch_ended", model=name, batch_id=batch_id, results=len(results))
            for custom_id, (waited, waiter) in list(self._waiters.items()):
                if waited == batch_id and not waiter.done():
                    # A request the provider never ran (batch cancelled, failed, expired) fails.
                    missing = {"ok": False, "error": f"batch {batch_id} ended without running it"}
                    waiter.set_result(results.get(custom_id, missing))
        except Exception as exc:
            _log.warning("batch_poll_failed", batch_id=batch_id, error=f"{type(exc).__name__}: {exc}"[:300])
            for waited, waiter in list(self._waiters.values()):
                if waited == batch_id and not waiter.done():
                    waiter.set_exception(ModelAPIError(name, f"batch {batch_id}: {exc}"))
        finally:
            self._pollers.pop(batch_id, None)

    async def _results(self, name: str, batch_id: str) -> dict[str, dict[str, Any]] | None:
        """Every result of the batch once it has ended, else None."""
        cfg = self.settings.models[name]
        client = self._client(name)
        if cfg.provider == "anthropic":
            return await _anthropic_results(client, batch_id)
        return await _openai_results(client, batch_id)


async def _anthropic_results(client: Any, batch_id: str) -> dict[str, dict[str, Any]] | None:
    batch = await client.messages.batches.retrieve(batch_id)
    if batch.processing_status != "ended":
        return None
    results: dict[str, dict[str, Any]] = {}
    async for entry in await client.messages.batches.results(batch_id):
        if entry.result.type == "succeeded":
            results[entry.custom_id] = {"ok": True, "body": entry.result.message.model_dump(mode="json")}
        else:
            results[entry.custom_id] = {
                "ok": False,
                "error": json.dumps(entry.result.model_dump(mode="json"))[:500],
            }
    return results


async def _openai_results(client: Any, batch_id: str) -> dict[str, dict[str, Any]] | None:
    batch = await client.batches.retrieve(batch_id)
    if batch.status not in _OPENAI_DONE:
        return None
    results: dict[str, dict[str, Any]] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        content = await client.files.content(file_id)
        for line in filter(str.strip, content.text.splitlines()):
            entry = json.loads(line)
            response = entry.get("response") or {}
            if response.get("status_code") == 200 and not entry.get("error"):  # noqa: PLR2004
                results[entry["custom_id"]] = {"ok": True, "body": response["body"]}
            else:
                error = entry.get("error") or response.get("body")
                results[entry["custom_id"]] = {"ok": False, "error": json.dumps(error)[:500]}
    return results


class BatchModel(WrapperModel):
    """Makes each call of the wrapped (configured) model through the provider's batch API."""

    def __init__(self, wrapped: Model, name: str, batcher: Batcher) -> None:
        super().__init__(wrapped)
        self.name = name
        self.batcher = batcher

    async def request(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        # Inside a run's step: the run and step name the call, so a replay finds its batch.
        step = DBOS.step_id
        custom_id = f"{DBOS.workflow_id}-{step}" if step is not None else f"call-{secrets.token_hex(8)}"
        if self.batcher.settings.models[self.name].provider == "anthropic" and not (model_settings or {}).get(
            "max_tokens"
        ):
            # Without a cap pydantic-ai asks Anthropic for the model's whole output budget and
            # streams it; a batch answers in one piece, so the call gets a cap that needs no stream.
            model_settings = cast(
                "ModelSettings", {**(model_settings or {}), "max_tokens": _ANTHROPIC_BATCH_MAX_TOKENS}
            )
        body = await self.batcher.body_of(self.name, messages, model_settings, model_request_parameters)
        result = await self.batcher.call(self.name, custom_id, body)
        if not result.get("ok"):
            raise ModelAPIError(
                self.wrapped.model_name, f"batch request {custom_id} failed: {result.get('error')}"
            )
        response = await self.batcher.parse(
            self.name, result["body"], messages, model_settings, model_request_parameters
        )
        response.provider_details = {**(response.provider_details or {}), "batch": True}
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,  # noqa: ARG002
    ) -> AsyncGenerator[StreamedResponse]:
        response = await self.request(messages, model_settings, model_request_parameters)
        yield CachedStreamedResponse(model_request_parameters, _stored=response)
