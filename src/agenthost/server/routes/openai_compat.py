"""The OpenAI-compatible front door: `POST /v1/chat/completions` and `GET /v1/models`.

`model` names either an agent (the messages become a durable run of it: the last user message is
the input, earlier ones its history) or a gateway model from `[models]` (a stateless passthrough
with every gateway feature: retries, breakers, fallbacks, pricing; no workflow, no checkpoint).
The official `openai` SDK works against it unmodified, streaming or not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic_ai import messages as _messages
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.models import StreamedResponse
from starlette.responses import Response

from agenthost.costs.budgets import Reservation
from agenthost.costs.guard import estimate_call
from agenthost.costs.savings import call_record
from agenthost.errors import (
    ErrorCode,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    as_client_error,
)
from agenthost.gateway.cache import cache_scope
from agenthost.gateway.chain import primary_model
from agenthost.gateway.context import side_calls
from agenthost.gateway.openai_format import (
    ChatCompletionRequest,
    ChunkWriter,
    completion_body,
    completion_id,
    finish_reason_of,
    text_delta,
    to_messages,
    to_parameters,
    to_settings,
)
from agenthost.records import EventType, UsageRecord
from agenthost.runtime.process import Runtime
from agenthost.runtime.service import RunService
from agenthost.runtime.spec import RunSpec
from agenthost.security.auth import Principal
from agenthost.security.output import StreamRedactor
from agenthost.security.ratelimit import RateLimit
from agenthost.server.deps import PrincipalDep, RuntimeDep, ServiceDep
from agenthost.server.schemas import MAX_INT64, MAX_OUTPUT_TOKENS, MIN_INT64
from agenthost.storage.ledger import ledger_row

router = APIRouter(prefix="/v1", tags=["openai-compatible"])

_SSE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_MESSAGES = _messages.ModelMessagesTypeAdapter


@router.get("/models")
async def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """Agents and gateway models, as OpenAI model objects."""
    data = [
        {"id": e.name, "object": "model", "created": 0, "owned_by": "agenthost:agent"}
        for e in runtime.registry
    ]
    data += [
        {"id": name, "object": "model", "created": 0, "owned_by": "agenthost:gateway"}
        for name in runtime.settings.models
        if name not in runtime.settings.agents
    ]
    return {"object": "list", "data": data}


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: Annotated[ChatCompletionRequest, Body()],
    runtime: RuntimeDep,
    service: ServiceDep,
    principal: PrincipalDep,
    request: Request,
) -> Response:
    """An agent run or a gateway passthrough, in the Chat Completions format."""
    _check_integers(body)
    # Screen the user's messages (the last one of an agent run is screened when the run starts).
    body = await _screened(body, runtime, skip_last=body.model in runtime.settings.agents)
    if body.model in runtime.settings.agents:
        return await _agent(body, runtime, service, principal)
    if body.model in runtime.settings.models:
        principal.require_model(body.model)
        user = principal.acting_user(body.user)
        caller = _Caller(principal, *request.state.rate_limit)
        await runtime.policies.limiter.check_tokens(caller.identities, caller.overrides)  # 429 when spent
        return await _passthrough(body.model_copy(update={"user": user}), runtime, caller)
    known = sorted({*runtime.settings.agents, *runtime.settings.models})
    msg = f"model {body.model!r} is neither an agent nor a gateway model here; known: {known}"
    raise NotFoundError(msg, code=ErrorCode.MODEL_NOT_FOUND)


def _check_integers(body: ChatCompletionRequest) -> None:
    """422 for an integer parameter out of range, before anything is reserved, recorded or called
    (an unbounded `max_tokens` would otherwise size budget reservations and context budgets)."""
    problems = [
        {"field": name, "message": f"Input should be less than or equal to {MAX_OUTPUT_TOKENS}"}
        for name in ("max_tokens", "max_completion_tokens")
        if (getattr(body, name) or 0) > MAX_OUTPUT_TOKENS
    ]
    if body.seed is not None and not MIN_INT64 <= body.seed <= MAX_INT64:
        problems.append({"field": "seed", "message": "Input should be a signed 64-bit integer"})
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidRequestError(f"invalid request: {summary}", details={"errors": problems})


async def _screened(
    body: ChatCompletionRequest, runtime: Runtime, *, skip_last: bool
) -> ChatCompletionRequest:
    """The request with each user message screened (400 `input_rejected`, or wrapped per config)
    and each client-sent tool result screened as a tool output (indirect injection)."""
    messages = list(body.messages)
    for index, message in enumerate(messages[:-1] if skip_last else messages):
        if message.role not in ("user", "tool"):
            continue  # system and assistant messages come from the authenticated caller
        text = message.text()
        screened = await runtime.policies.screener.aenforce(
            text, source="input" if message.role == "user" else "tool"
        )
        if screened != text:
            messages[index] = message.model_copy(update={"content": screened})
    return body.model_copy(update={"messages": messages})


# --- passthrough ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Caller:
    """Who a passthrough call is charged to: ledger owner, budgets, and rate-limit identities."""

    principal: Principal
    identities: dict[str, str | None]
    overrides: dict[str, RateLimit] | None


async def _account(
    runtime: Runtime,
    completion: str,
    *,
    body: ChatCompletionRequest,
    response: _messages.ModelResponse,
    summaries: list[_messages.ModelResponse],
    reservation: Reservation,
    caller: _Caller,
) -> dict[str, Any]:
    """Price the call (with any context summaries it needed), write its ledger row, and charge its
    budgets the real cost."""
    primary = primary_model(runtime.gateway.passthrough(body.model))
    call = call_record(runtime.gateway.prices, primary, response, summaries=summaries)
    principal = caller.principal
    usage = UsageRecord(**call.model_dump(), user_id=body.user, key_id=principal.key_id, team=principal.team)
    await runtime.policies.limiter.record_tokens(caller.identities, call.tokens, caller.overrides)
    row = ledger_row(source=completion, seq=0, kind="passthrough", at=datetime.now(UTC), usage=usage)
    await runtime.env.ledger.record([row])
    nanousd = call.cost.nanousd
    await runtime.policies.budgets.settle(reservation, nanousd)
    if nanousd:
        await runtime.policies.budgets.check_hourly_spend(runtime.backends.ledger)
    return {"served_by": response.model_name, "cost": {"usd": call.cost.usd, **call.cost.model_dump()}}


async def _passthrough(body: ChatCompletionRequest, runtime: Runtime, caller: _Caller) -> Response:
    model = runtime.gateway.passthrough(body.model)
    cache_scope(enabled=True, tenant=body.user)
    messages = to_messages(body.messages)
    settings, parameters = to_settings(body), to_parameters(body)
    output = (settings or {}).get("max_tokens") or runtime.settings.limits.output_tokens_estimate
    _, estimate = estimate_call(runtime.gateway.prices, model, messages, parameters, output)
    reservation = await runtime.policies.budgets.reserve(None, body.user, estimate, caller.principal.payer())
    if not body.stream:
        try:
            with side_calls() as summaries:
                response = await model.request(messages, settings, parameters)
        except ModelAPIError as exc:
            await runtime.policies.budgets.settle(reservation, 0)
            raise as_client_error(exc) from exc
        text = "".join(p.content for p in response.parts if isinstance(p, _messages.TextPart)) or None
        text = runtime.policies.redaction.value(None, text)
        calls = [p for p in response.parts if isinstance(p, _messages.ToolCallPart)]
        completion = completion_id()
        accounted = await _account(
            runtime,
            completion,
            body=body,
            response=response,
            summaries=summaries,
            reservation=reservation,
            caller=caller,
        )
        return JSONResponse(
            completion_body(
                completion=completion,
                model=body.model,
                text=text,
                tool_calls=calls,
                finish_reason=finish_reason_of(response),
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                agenthost=accounted,
            )
        )
    stream = model.request_stream(messages, settings, parameters)
    return await _passthrough_stream(body, runtime, stream, reservation, caller)


async def _chunks(
    opened: StreamedResponse, writer: ChunkWriter, redactor: StreamRedactor | None
) -> AsyncIterator[str]:
    """The stream's chunks, its text redacted on the way (held back until entities are whole)."""
    async for event in opened:
        delta = text_delta(event)
        if delta and redactor is not None:
            safe = redactor.feed(delta)
            chunk = writer.text(safe) if safe else None
        else:
            chunk = writer.event(event)
        if chunk is not None:
            yield chunk
    if redactor is not None and (rest := redactor.flush()):
        yield writer.text(rest)


async def _passthrough_stream(
    body: ChatCompletionRequest,
    runtime: Runtime,
    stream: AbstractAsyncContextManager[StreamedResponse],
    reservation: Reservation,
    caller: _Caller,
) -> Response:
    try:
        # Opened here (the gateway waits for the first event) so a failure is still an HTTP error.
        with side_calls() as summaries:
            opened = await stream.__aenter__()
    except ModelAPIError as exc:
        await runtime.policies.budgets.settle(reservation, 0)
        raise as_client_error(exc) from exc
    writer = ChunkWriter(completion_id(), body.model)
    usage = body.stream_options is not None and body.stream_options.include_usage

    async def chunks() -> AsyncIterator[str]:
        failure: BaseException | None = None
        accounted: dict[str, Any] | None = None
        try:
            yield writer.role()
            async for chunk in _chunks(opened, writer, runtime.policies.redaction.stream(None)):
                yield chunk
            response = opened.get()
            accounted = await _account(
                runtime,
                writer.completion,
                body=body,
                response=response,
                summaries=summaries,
                reservation=reservation,
                caller=caller,
            )
            yield writer.finish(finish_reason_of(response))
            if usage:
                yield writer.usage(response.usage.input_tokens, response.usage.output_tokens, accounted)
            yield writer.done()
        except ModelAPIError as exc:
            failure = exc
            error = as_client_error(exc)
            yield writer.error(error.code, error.message)
            yield writer.done()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await stream.__aexit__(type(failure) if failure else None, failure, None)
            partial = opened.get()
            if accounted is None and (partial.usage.input_tokens or partial.usage.output_tokens):
                # Cut short (client gone, provider failed mid-way): what was used is still spent.
                await _account(
                    runtime,
                    writer.completion,
                    body=body,
                    response=partial,
                    summaries=summaries,
                    reservation=reservation,
                    caller=caller,
                )
            elif accounted is None:
                await runtime.policies.budgets.settle(reservation, 0)

    return StreamingResponse(chunks(), media_type="text/event-stream", headers=_SSE)


# --- agent ---------------------------------------------------------------------------------------


def _agent_spec(body: ChatCompletionRequest, principal: Principal) -> RunSpec:
    *earlier, last = body.messages
    if last.role != "user":
        msg = "the last message must be the user's when `model` names an agent"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_REQUEST)
    history = _MESSAGES.dump_python(to_messages(earlier), mode="json") if earlier else None
    return RunSpec(
        agent=body.model,
        input=last.text() or " ",
        **principal.run_owner(body.model, body.user),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        history=history,
        metadata={"via": "chat.completions"},
    )


async def _agent(
    body: ChatCompletionRequest, runtime: Runtime, service: RunService, principal: Principal
) -> Response:
    spec = _agent_spec(body, principal)
    submission = await service.submit(spec, idempotency_key=None)
    run_id = submission.row["id"]
    if not body.stream:
        row = await service.wait(submission, runtime.settings.server.chat_completions_timeout)
        if row is None:
            msg = f"run {run_id} did not finish in time; follow it at /v1/runs/{run_id}"
            raise ModelError(msg, code=ErrorCode.RUN_TIMEOUT, status=504)
        if row["status"] != "succeeded":
            error = row.get("error") or {"code": row["status"], "message": f"the run ended {row['status']}"}
            raise ModelError(f"run {run_id} {row['status']}: {error['message']}", code=error["code"])
        output = row["output"]
        return JSONResponse(
            completion_body(
                completion=f"chatcmpl-{run_id}",
                model=body.model,
                text=output if isinstance(output, str) else json.dumps(output),
                tool_calls=[],
                finish_reason="stop",
                input_tokens=row.get("input_tokens") or 0,
                output_tokens=row.get("output_tokens") or 0,
                agenthost={"run_id": run_id, "cost": {"nanousd": row.get("cost_nanousd") or 0}},
            )
        )
    writer = ChunkWriter(f"chatcmpl-{run_id}", body.model)
    include_usage = body.stream_options is not None and body.stream_options.include_usage

    async def chunks() -> AsyncIterator[str]:
        yield writer.role()
        async for event in service.follow(run_id):
            if event.type is EventType.TEXT_DELTA:
                yield writer.text(event.data["delta"])
            elif event.type is EventType.RUN_COMPLETED:
                yield writer.finish("stop")
                if include_usage:
                    usage = event.data["usage"]
                    extras = {"run_id": run_id, "cost": event.data["cost"]}
                    yield writer.usage(usage["input_tokens"], usage["output_tokens"], extras)
                yield writer.done()
            elif event.terminal:
                # A run that failed, died or was cancelled: an error chunk, then the end of stream.
                error = event.data.get("error") or {
                    "code": str(event.type),
                    "message": f"the run ended: {event.type}",
                }
                yield writer.error(error["code"], error["message"])
                yield writer.done()

    return StreamingResponse(chunks(), media_type="text/event-stream", headers=_SSE)
