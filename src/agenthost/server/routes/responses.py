"""The OpenAI Responses (Open Responses) front door: `POST /v1/responses`, `GET /v1/responses/{id}`.

`model` names an agent (a durable run of it, on a conversation thread) or a gateway model (the
stateless passthrough). The shared door logic is `server/door.py`; this module translates.

Conversations: an agent's response id is its run id, and every agent response is a run on a
thread (`response.conversation.id`, readable at `/v1/threads/{id}`). `previous_response_id`
names a response of a conversation: the latest one's thread is continued, so the agent sees the
whole history; an earlier one starts a new thread (a branch) from the conversation as it was then.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.responses import Response

from agenthost.errors import ConflictError, ErrorCode, InvalidRequestError
from agenthost.gateway.frontdoor import DoorExtras, Outcome, extras
from agenthost.gateway.responses_format import (
    ResponsesRequest,
    ResponseStreamWriter,
    response_body,
    response_id,
    split_agent_input,
    to_messages,
    to_parameters,
    to_settings,
)
from agenthost.records import Cost
from agenthost.server.deps import ensure_thread, visible_run
from agenthost.server.door import AgentCall, Door, DoorDep, GatewayCall
from agenthost.server.openapi import error_responses
from agenthost.server.routes.openai_compat import answer_responses
from agenthost.server.sse import door_stream

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


class ResponseObject(BaseModel):
    """A `response` object (OpenAI's schema), with agenthost's `agenthost` object when finished."""

    id: str
    object: Literal["response"]
    created_at: int
    status: str
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None
    conversation: dict[str, str] | None
    agenthost: DoorExtras | None = None


_STATUS = {"succeeded": "completed", "failed": "failed", "dead": "failed", "cancelled": "cancelled"}


@router.post(
    "/responses",
    response_model=None,
    responses={
        **answer_responses(
            ResponseObject, "With `stream: true`: the Responses streaming events (`response.created` ...)."
        ),
        **error_responses(400, 402, 403, 404, 409, 502, 503, 504),
    },
)
async def create_response(body: Annotated[ResponsesRequest, Body()], door: DoorDep) -> Response:
    """An agent run or a gateway passthrough, in the Responses format."""
    agent = door.kind(body.model) == "agent"
    body.check(agent=agent)
    if agent:
        return await _agent(body, door)
    call = GatewayCall(
        model=body.model,
        messages=await door.screen(to_messages(body)),
        settings=to_settings(body),
        parameters=to_parameters(body),
        user=door.principal.acting_user(body.user),
        output_param="text",
    )
    rid = response_id()
    if not body.stream:
        return JSONResponse(response_body(rid, body, await door.complete(call, rid)))
    events = await door.stream(call, rid)
    return door_stream(events, ResponseStreamWriter(rid, body, conversation=None))


@router.get(
    "/responses/{response_id}",
    responses={200: {"model": ResponseObject, "description": "The response."}, **error_responses(404)},
)
async def get_response(
    response_id: Annotated[str, Path(min_length=1, max_length=128)], door: DoorDep
) -> dict[str, Any]:
    """An agent's response (its run) as a `response` object; gateway responses are not stored."""
    row = await visible_run(door.service, door.principal, response_id)
    request = ResponsesRequest(model=row["agent"], input=" ")
    status = _STATUS.get(row["status"], "in_progress")
    outcome = None
    if status == "completed":
        output = row.get("output")
        outcome = Outcome(
            text=output if isinstance(output, str) else str(output),
            tool_calls=[],
            finish="stop",
            input_tokens=row.get("input_tokens") or 0,
            output_tokens=row.get("output_tokens") or 0,
            extras=extras(
                run_id=response_id,
                served_by=row.get("model"),
                cost=Cost(nanousd=row.get("cost_nanousd") or 0, status=row.get("cost_status") or "none"),
            ),
        )
    error = row.get("error") if status == "failed" else None
    return response_body(
        response_id,
        request,
        outcome,
        conversation=row.get("thread_id"),
        status=status,
        error={"code": error["code"], "message": error["message"]} if error else None,
    )


def _new_conversation(door: Door) -> str:
    # A retry under the same Idempotency-Key must name the same thread to find its first run.
    key = door.idempotency_key
    digest = hashlib.sha256(f"{door.principal.subject}\x00{key}".encode()).hexdigest()[:24] if key else None
    return f"conv_{digest or secrets.token_hex(12)}"


async def _conversation(body: ResponsesRequest, door: Door) -> tuple[str, list[Any] | None]:
    """The thread the response goes on, and the stored history it starts from: a new thread; the
    previous response's thread if that is its latest response; or, for an earlier response, a new
    thread (a branch) starting from the conversation as it was at that response."""
    previous = body.previous_response_id
    if previous is None:
        return _new_conversation(door), None
    row = await visible_run(door.service, door.principal, previous)
    thread_id = row.get("thread_id")
    if not thread_id:
        msg = (
            f"response {previous!r} is not part of a conversation (only agent responses of /v1/responses are)"
        )
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_REQUEST, status=400)
    await ensure_thread(door.runtime, door.principal, thread_id)
    threads = door.runtime.backends.threads
    summary = await threads.summary(thread_id)
    latest = summary["runs"][-1]["id"] if summary and summary["runs"] else previous
    if latest == previous:
        return str(thread_id), None
    history = await threads.history_until(thread_id, previous)
    if history is None:
        msg = f"response {previous!r} added nothing to its conversation (it did not complete)"
        raise ConflictError(msg)
    return _new_conversation(door), history


async def _agent(body: ResponsesRequest, door: Door) -> Response:
    text, history = split_agent_input(body)
    thread_id, stored = await _conversation(body, door)
    call = AgentCall(
        agent=body.model,
        input=text,
        user=body.user,
        via="responses",
        history=history or None,
        max_tokens=body.max_output_tokens,
        sampling=body.sampling(),
        metadata=body.metadata,
        thread_id=thread_id,
        stored_history=stored,
    )
    run_id = await door.start(call)
    if not body.stream:
        outcome = await door.outcome(run_id)
        return JSONResponse(response_body(run_id, body, outcome, conversation=thread_id))
    return door_stream(door.events(run_id), ResponseStreamWriter(run_id, body, conversation=thread_id))
