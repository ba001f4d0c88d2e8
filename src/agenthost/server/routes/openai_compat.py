"""The OpenAI-compatible front door: `POST /v1/chat/completions` and `GET /v1/models[/{id}]`.

`model` names either an agent (the messages become a durable run of it: the last user message is
the input, earlier ones its history) or a gateway model from `[models]` (a stateless passthrough
with every gateway feature: retries, breakers, fallbacks, pricing; no workflow, no checkpoint).
Every documented parameter is honoured or refused (`CHAT_PARAMETERS`); the shared door logic is
`server/door.py`. The official `openai` SDK works against it unmodified, streaming or not.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.responses import Response

from agenthost.errors import ErrorCode, InvalidRequestError, NotFoundError
from agenthost.gateway.frontdoor import DoorExtras
from agenthost.gateway.openai_format import (
    ChatCompletionRequest,
    ChunkWriter,
    completion_body,
    completion_id,
    to_messages,
    to_parameters,
    to_settings,
)
from agenthost.runtime.process import Runtime
from agenthost.server.deps import RuntimeDep
from agenthost.server.door import AgentCall, DoorDep, GatewayCall
from agenthost.server.openapi import error_responses, sse_response
from agenthost.server.schemas import MAX_INT64, MAX_OUTPUT_TOKENS, MIN_INT64
from agenthost.server.sse import door_stream

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


class ModelObject(BaseModel):
    """An OpenAI model object: an agent (`owned_by: agenthost:agent`) or a gateway model."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: Literal["agenthost:agent", "agenthost:gateway"]


class ChatCompletion(BaseModel):
    """A `chat.completion` object (OpenAI's schema), with agenthost's `agenthost` object."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, int]
    agenthost: DoorExtras


def answer_responses(model: type[BaseModel], stream: str, *, json_data: bool = True) -> dict[int | str, Any]:
    """The 200 of a front door: `model` as JSON, or with `stream: true` server-sent events."""
    sse = sse_response(stream, json_data=json_data)[200]
    return {200: {"model": model, "description": f"{model.__doc__}\n\n{stream}", "content": sse["content"]}}


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


def _models(runtime: Runtime) -> list[ModelObject]:
    data = [ModelObject(id=e.name, owned_by="agenthost:agent") for e in runtime.registry]
    data += [
        ModelObject(id=name, owned_by="agenthost:gateway")
        for name in runtime.settings.models
        if name not in runtime.settings.agents
    ]
    return data


@router.get("/models")
async def list_models(runtime: RuntimeDep) -> ModelList:
    """Agents and gateway models, as OpenAI model objects."""
    return ModelList(data=_models(runtime))


@router.get("/models/{model_id}", responses=error_responses(404))
async def get_model(
    model_id: Annotated[str, Path(min_length=1, max_length=256)], runtime: RuntimeDep
) -> ModelObject:
    """One agent or gateway model; 404 `model_not_found` for a name this server does not serve."""
    for model in _models(runtime):
        if model.id == model_id:
            return model
    raise NotFoundError(f"model {model_id!r} does not exist", code=ErrorCode.MODEL_NOT_FOUND)


@router.post(
    "/chat/completions",
    response_model=None,
    responses={
        **answer_responses(
            ChatCompletion,
            "With `stream: true`: `chat.completion.chunk` events, then `[DONE]`.",
            json_data=False,
        ),
        **error_responses(400, 402, 403, 404, 502, 503, 504),
    },
)
async def chat_completions(body: Annotated[ChatCompletionRequest, Body()], door: DoorDep) -> Response:
    """An agent run or a gateway passthrough, in the Chat Completions format."""
    _check_integers(body)
    agent = door.kind(body.model) == "agent"
    body.check(agent=agent)
    if agent:
        return await _agent(body, door)
    user = door.principal.acting_user(body.user)
    call = GatewayCall(
        model=body.model,
        messages=await door.screen(to_messages(body.messages)),
        settings=to_settings(body),
        parameters=to_parameters(body),
        user=user,
    )
    completion = completion_id()
    if not body.stream:
        outcome = await door.complete(call, completion)
        return JSONResponse(completion_body(completion, body.model, outcome))
    events = await door.stream(call, completion)
    return door_stream(events, ChunkWriter(completion, body.model, include_usage=_usage(body)))


def _usage(body: ChatCompletionRequest) -> bool:
    return body.stream_options is not None and body.stream_options.include_usage


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


async def _agent(body: ChatCompletionRequest, door: DoorDep) -> Response:
    *earlier, last = body.messages
    if last.role != "user":
        msg = "the last message must be the user's when `model` names an agent"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_REQUEST)
    call = AgentCall(
        agent=body.model,
        input=last.text(),
        user=body.user,
        via="chat.completions",
        history=to_messages(earlier) if earlier else None,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        sampling=body.sampling(),
        metadata=body.metadata,
    )
    run_id = await door.start(call)
    completion = f"chatcmpl-{run_id}"
    if not body.stream:
        return JSONResponse(completion_body(completion, body.model, await door.outcome(run_id)))
    return door_stream(door.events(run_id), ChunkWriter(completion, body.model, include_usage=_usage(body)))
