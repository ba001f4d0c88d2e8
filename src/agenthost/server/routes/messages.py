"""The Anthropic Messages front door: `POST /v1/messages`.

`model` names an agent (a durable run of it: the last user message is the input, earlier ones its
history) or a gateway model (the stateless passthrough). The shared door logic is
`server/door.py`; this module translates. The `anthropic` SDK sends its key as `x-api-key`
(agenthost's own header) and an `anthropic-version` header, which is accepted and not checked.

Errors on this route answer in Anthropic's envelope, `{"type": "error", "error": {"type",
"message", "code"}, "request_id"}`, with the same statuses as the rest of the API (a request
that fails validation is a 400 `invalid_request_error`, as Anthropic answers it), because that
is what Anthropic clients parse; agenthost's stable `code` rides along inside `error`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from agenthost.errors import AgentHostError
from agenthost.gateway.anthropic_format import (
    MessagesRequest,
    MessageStreamWriter,
    error_envelope,
    message_body,
    message_id,
    split_agent_input,
    to_messages,
    to_parameters,
    to_settings,
)
from agenthost.gateway.frontdoor import DoorExtras
from agenthost.server.door import AgentCall, Door, DoorDep, GatewayCall
from agenthost.server.openapi import error_responses
from agenthost.server.routes.openai_compat import answer_responses
from agenthost.server.sse import door_stream


def _anthropic(response: Response) -> Response:
    """agenthost's rendering of an error (`{"error": {"code", "message", "request_id"}}`) in
    Anthropic's envelope, same status (but a 422 is a 400, as Anthropic answers invalid requests)."""
    error = json.loads(bytes(response.body))["error"]
    status = 400 if response.status_code == 422 else response.status_code  # noqa: PLR2004
    body = error_envelope(status, error["message"], error["code"], error.get("request_id"))
    if "param" in error:
        body["error"]["param"] = error["param"]
    kept = {k: v for k, v in response.headers.items() if k.lower() not in {"content-length", "content-type"}}
    return JSONResponse(body, status_code=status, headers=kept)


class AnthropicErrorsRoute(APIRoute):
    """A route whose errors (authentication, limits, validation, the call) use Anthropic's envelope:
    each is rendered by the app's own handler (one decision of status and code), then re-wrapped."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (AgentHostError, RequestValidationError, HTTPException) as exc:
                kind = next(k for k in type(exc).__mro__ if k in request.app.exception_handlers)
                rendered = await request.app.exception_handlers[kind](request, exc)
                return _anthropic(rendered)

        return route


router = APIRouter(prefix="/v1", tags=["anthropic-compatible"], route_class=AnthropicErrorsRoute)


class MessageObject(BaseModel):
    """A `message` object (Anthropic's schema), with agenthost's `agenthost` object."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: dict[str, int]
    agenthost: DoorExtras


class AnthropicErrorDetail(BaseModel):
    type: str = Field(description="Anthropic's error type (`invalid_request_error`, `not_found_error`, ...).")
    message: str
    code: str = Field(description="agenthost's stable error code (`ErrorCode`).")


class AnthropicError(BaseModel):
    """Anthropic's error envelope, which every error of this route uses."""

    type: Literal["error"]
    error: AnthropicErrorDetail
    request_id: str | None


def _anthropic_errors(*statuses: int) -> dict[int | str, Any]:
    described = error_responses(*statuses)
    return {s: {"model": AnthropicError, "description": described[s]["description"]} for s in statuses}


@router.post(
    "/messages",
    response_model=None,
    responses={
        **answer_responses(
            MessageObject, "With `stream: true`: Anthropic's message stream events (`message_start` ...)."
        ),
        # Every error this route answers is in Anthropic's envelope; a body over the size limit is
        # refused before routing (413) and an unexpected failure (500) in agenthost's own shape.
        **_anthropic_errors(400, 401, 402, 403, 404, 415, 422, 429, 502, 503, 504),
        **error_responses(413, 500),
    },
)
async def create_message(body: Annotated[MessagesRequest, Body()], door: DoorDep) -> Response:
    """An agent run or a gateway passthrough, in the Anthropic Messages format."""
    agent = door.kind(body.model) == "agent"
    body.check(agent=agent)
    if agent:
        return await _agent(body, door)
    provider = door.runtime.settings.models[body.model].provider
    call = GatewayCall(
        model=body.model,
        messages=await door.screen(to_messages(body)),
        settings=to_settings(body, provider=provider),
        parameters=to_parameters(body),
        user=door.principal.acting_user(body.user),
    )
    mid = message_id()
    if not body.stream:
        return JSONResponse(message_body(mid, body.model, await door.complete(call, mid)))
    events = await door.stream(call, mid)
    return door_stream(events, MessageStreamWriter(mid, body.model))


async def _agent(body: MessagesRequest, door: Door) -> Response:
    text, history = split_agent_input(body)
    call = AgentCall(
        agent=body.model,
        input=text,
        user=body.user,
        via="messages",
        history=history or None,
        max_tokens=body.max_tokens,
        sampling=body.sampling(),
    )
    run_id = await door.start(call)
    mid = f"msg_{run_id}"
    if not body.stream:
        return JSONResponse(message_body(mid, body.model, await door.outcome(run_id)))
    return door_stream(door.events(run_id), MessageStreamWriter(mid, body.model))
