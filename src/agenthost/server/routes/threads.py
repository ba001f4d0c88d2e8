"""`/v1/threads`: conversation history kept server-side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, TextPart, UserPromptPart
from starlette.responses import Response

from agenthost.errors import ConflictError, ErrorCode, ForbiddenError, NotFoundError
from agenthost.server.deps import PrincipalDep, RuntimeDep, ensure_thread
from agenthost.server.openapi import error_responses

router = APIRouter(prefix="/v1/threads", tags=["threads"])

_NOT_FOUND = error_responses(404, s404="No such thread, or one the caller may not see: `thread_not_found`.")
ThreadId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="The thread id.")]


@router.get("/{thread_id}", responses={**_NOT_FOUND, **error_responses(410)})
async def get_thread(thread_id: ThreadId, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """The thread's messages (oldest first, as pydantic-ai stores them) and its runs."""
    await ensure_thread(runtime, principal, thread_id)
    summary = await runtime.backends.threads.summary(thread_id)
    if summary is None:
        msg = f"thread {thread_id!r} does not exist"
        raise NotFoundError(msg, code=ErrorCode.THREAD_NOT_FOUND)
    messages = ModelMessagesTypeAdapter.validate_python(summary["messages"])
    redact = runtime.policies.redaction.value
    return JSONResponse(
        {
            "id": thread_id,
            "object": "thread",
            "messages": redact(None, summary["messages"]),
            "turns": [redact(None, _turn(message)) for message in messages],
            "runs": [
                {**row, "created_at": row["created_at"].isoformat()}  # rows of id, status, agent, created_at
                for row in summary["runs"]
            ],
        }
    )


@router.delete(
    "/{thread_id}",
    responses={
        **_NOT_FOUND,
        **error_responses(403, 409, s409="A run on the thread is in progress: `thread_busy`."),
    },
)
async def delete_thread(thread_id: ThreadId, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """Forget the thread's history (its runs stay, detached); 409 while a run on it is in progress."""
    await ensure_thread(runtime, principal, thread_id)
    if not principal.role.run:
        raise ForbiddenError(f"role {principal.role_name!r} may not delete threads")
    if await runtime.backends.runs.thread_busy(thread_id):
        msg = f"thread {thread_id!r} has a run in progress; cancel it or wait"
        raise ConflictError(msg, code=ErrorCode.THREAD_BUSY)
    if await runtime.backends.threads.summary(thread_id) is None:
        msg = f"thread {thread_id!r} does not exist"
        raise NotFoundError(msg, code=ErrorCode.THREAD_NOT_FOUND)
    removed = await runtime.backends.threads.delete(thread_id)
    return JSONResponse({"id": thread_id, "object": "thread", "deleted": True, "messages_removed": removed})


def _turn(message: object) -> dict[str, str]:
    """A readable digest of one message: who spoke and the text."""
    if isinstance(message, ModelRequest):
        text = " ".join(
            p.content for p in message.parts if isinstance(p, UserPromptPart) and isinstance(p.content, str)
        )
        return {"role": "user", "text": text}
    parts = getattr(message, "parts", [])
    return {"role": "assistant", "text": "".join(p.content for p in parts if isinstance(p, TextPart))}
