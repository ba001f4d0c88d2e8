"""The Starlette app: chat endpoints for both protocols plus ``/_mock/*`` control endpoints.

Routes: ``POST /v1/chat/completions``, ``POST /v1/messages`` (``?beta=true`` too),
``POST /v1/messages/count_tokens``, ``GET /v1/models``, ``GET /health``, ``GET /_mock/stats``,
``POST /_mock/reset`` (body ``{"knobs": true}`` also restores the start-up config),
``GET|POST /_mock/config`` (POST body: any :class:`MockLLMConfig` fields to override).
``POST /v1/embeddings`` is :mod:`.embeddings_wire`, counted apart in ``app.state.embeddings``.
The providers' batch APIs are :mod:`.batch_wire` (``app.state.batches``): OpenAI's ``/v1/files``
(upload, get, content, delete) and ``/v1/batches`` (create, get, cancel) for chat completions, and
Anthropic's ``/v1/messages/batches`` (create, get, results, cancel); each request is answered as the
non-streaming endpoint would, after ``batch_delay_seconds``, and counted under ``batches`` in the stats.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agenthost.testing.mock_llm.anthropic_wire import AnthropicWire
from agenthost.testing.mock_llm.batch_wire import BatchEndpoints
from agenthost.testing.mock_llm.behaviour import DEFAULT_SCENARIO, MockEngine
from agenthost.testing.mock_llm.config import MockLLMConfig
from agenthost.testing.mock_llm.embeddings_wire import EmbeddingsEndpoint
from agenthost.testing.mock_llm.exchange import ERROR_STATUS, ErrorKind, MockRequestError
from agenthost.testing.mock_llm.openai_wire import OpenAIWire

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

    from agenthost.testing.mock_llm.config import FaultSpec
    from agenthost.testing.mock_llm.exchange import ChatRequest, Plan, StreamEvent, Wire

_JSON = "application/json"
_SSE_HEADERS = {"cache-control": "no-cache"}
_STATUS_FAULTS: dict[str, ErrorKind] = {
    "rate_limit": "rate_limit",
    "server_error": "server_error",
    "overloaded": "overloaded",
    # A 400: the request itself is refused, which a client must not retry.
    "bad_request": "invalid_request",
}
_HANG_POLL_S = 0.05


class StreamCutError(Exception):
    """Raised inside a response body to drop the connection mid-response (the ``stream_cut`` fault)."""


class _HideStreamCuts(logging.Filter):
    # uvicorn logs every exception escaping the app with a traceback; a deliberate cut is not news.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCutError))


_STREAM_CUT_FILTER = _HideStreamCuts()


def _header_float(request: Request, name: str) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise MockRequestError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise MockRequestError(f"{name} must not be negative")
    return value


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


async def _hang(request: Request, seconds: float) -> None:
    """Stall like a stuck upstream, but give up early once the client has hung up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(_HANG_POLL_S, remaining))
        if await request.is_disconnected():
            return


async def _cut_after(first_part: bytes) -> AsyncIterator[bytes]:
    yield first_part
    raise StreamCutError


async def _paced(
    events: list[StreamEvent], tokens_per_second: float | None, cut_at: int | None
) -> AsyncIterator[bytes]:
    if tokens_per_second is None:
        # Unpaced streams go out in one write: the client still parses separate SSE events.
        yield b"".join(event for event, _ in events[:cut_at])
    else:
        delay = 1 / tokens_per_second
        for event, is_token in events[:cut_at]:
            if is_token:
                await asyncio.sleep(delay)
            yield event
    if cut_at is not None:
        raise StreamCutError


def _stream(wire: Wire, chat: ChatRequest, plan: Plan, fault: FaultSpec | None) -> StreamingResponse:
    events = wire.stream_events(chat, plan)
    cut_at: int | None = None
    if fault is not None and fault.kind == "malformed":
        events = [events[0], (wire.malformed_event(), False), *events[1:]]
    elif fault is not None and fault.kind == "stream_cut":
        cut_at = max(1, len(events) // 2)
    return StreamingResponse(
        _paced(events, plan.tokens_per_second, cut_at), media_type="text/event-stream", headers=_SSE_HEADERS
    )


def _invalid(wire: Wire, message: str) -> Response:
    return Response(wire.error_body("invalid_request", message), 400, media_type=_JSON)


async def _parse(request: Request, wire: Wire) -> ChatRequest:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise MockRequestError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MockRequestError("the request body must be a JSON object")
    chat = wire.parse(body)
    headers = request.headers
    chat.scenario_header = headers.get("x-mock-scenario")
    chat.fault_header = headers.get("x-mock-fault")
    chat.latency_ms_header = _header_float(request, "x-mock-latency-ms")
    # 0 tokens/s cannot mean "never finish"; treat it as "no pacing" like an absent header.
    chat.tokens_per_second_header = _header_float(request, "x-mock-tokens-per-second") or None
    return chat


def _error_fault(wire: Wire, plan: Plan, fault: FaultSpec, kind: ErrorKind) -> Response:
    headers = {"retry-after": _retry_after(fault.retry_after)} if fault.kind == "rate_limit" else None
    message = f"mock {fault.kind} fault (scenario {plan.scenario!r}, turn {plan.turn})"
    return Response(wire.error_body(kind, message), ERROR_STATUS[kind], headers, media_type=_JSON)


async def _complete(chat: ChatRequest, wire: Wire, plan: Plan, fault: FaultSpec | None) -> Response:
    payload = wire.render(chat, plan)
    if plan.tokens_per_second is not None and plan.completion_tokens:
        await asyncio.sleep(plan.completion_tokens / plan.tokens_per_second)
    if fault is not None and fault.kind == "malformed":
        # Half of a JSON object is never valid JSON, and it is still deterministic.
        return Response(payload[: len(payload) // 2], media_type=_JSON)
    if fault is not None and fault.kind == "stream_cut":
        # Announce the full length, send half, then drop: the client sees an incomplete read.
        return StreamingResponse(
            _cut_after(payload[: len(payload) // 2]),
            media_type=_JSON,
            headers={"content-length": str(len(payload))},
        )
    return Response(payload, media_type=_JSON)


async def _chat(request: Request, wire: Wire, engine: MockEngine) -> Response:
    try:
        chat = await _parse(request, wire)
        plan = engine.plan(chat)
    except MockRequestError as exc:
        return _invalid(wire, str(exc))
    if plan.latency_s > 0:
        await asyncio.sleep(plan.latency_s)
    fault = plan.fault
    if fault is not None:
        if fault.kind == "timeout":
            await _hang(request, fault.hang_seconds)
        elif (error_kind := _STATUS_FAULTS.get(fault.kind)) is not None:
            return _error_fault(wire, plan, fault, error_kind)
    if chat.stream:
        return _stream(wire, chat, plan, fault)
    return await _complete(chat, wire, plan, fault)


class _Endpoints:
    """Route handlers bound to one engine."""

    def __init__(self, engine: MockEngine) -> None:
        self.engine = engine
        self.openai: Wire = OpenAIWire()
        self.anthropic: Wire = AnthropicWire()

    async def chat_completions(self, request: Request) -> Response:
        return await _chat(request, self.openai, self.engine)

    async def messages(self, request: Request) -> Response:
        return await _chat(request, self.anthropic, self.engine)

    async def count_tokens(self, request: Request) -> Response:
        try:
            chat = await _parse(request, self.anthropic)
        except MockRequestError as exc:
            return _invalid(self.anthropic, str(exc))
        return JSONResponse({"input_tokens": chat.prompt_tokens})

    async def models(self, _: Request) -> Response:
        names = ["mock", *(name for name in self.engine.config.scenarios if name != DEFAULT_SCENARIO)]
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "agenthost-mock"} for name in names]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(self, _: Request) -> Response:
        return JSONResponse(self.engine.stats.snapshot())

    async def reset(self, request: Request) -> Response:
        raw = await request.body()
        try:
            options: Any = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, 400)
        self.engine.reset(knobs=isinstance(options, dict) and bool(options.get("knobs")))
        return JSONResponse({"status": "ok"})

    async def config(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                knobs = json.loads(await request.body())
            except ValueError:
                return JSONResponse({"error": "the body must be JSON"}, 400)
            if not isinstance(knobs, dict):
                return JSONResponse({"error": "the body must be a JSON object"}, 400)
            try:
                self.engine.configure(**knobs)
            except ValidationError as exc:
                return JSONResponse({"error": json.loads(exc.json(include_url=False))}, 422)
        return JSONResponse(self.engine.config.model_dump(mode="json"))


def create_mock_app(config: MockLLMConfig | None = None) -> Starlette:
    """Build the mock LLM ASGI app; serve it with any ASGI server.

    Example::

        app = create_mock_app(MockLLMConfig(latency_ms=5))
        uvicorn.run(app, host="127.0.0.1", port=8800)

    The :class:`MockEngine` behind it is ``app.state.engine``.
    """
    engine = MockEngine(config or MockLLMConfig())
    endpoints = _Endpoints(engine)
    embeddings = EmbeddingsEndpoint()
    batches = BatchEndpoints(engine, endpoints.openai, endpoints.anthropic)
    logging.getLogger("uvicorn.error").addFilter(_STREAM_CUT_FILTER)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings.create, methods=["POST"]),
            Route("/v1/messages", endpoints.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", endpoints.count_tokens, methods=["POST"]),
            Route("/v1/models", endpoints.models, methods=["GET"]),
            Route("/health", endpoints.health, methods=["GET"]),
            Route("/_mock/stats", endpoints.stats, methods=["GET"]),
            Route("/_mock/reset", endpoints.reset, methods=["POST"]),
            Route("/_mock/config", endpoints.config, methods=["GET", "POST"]),
            *batches.routes(),
        ]
    )
    app.state.engine = engine
    app.state.embeddings = embeddings
    app.state.batches = batches
    return app
