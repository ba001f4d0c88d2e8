"""`/v1/runs`: status, listing, event replay and live tail, cancel."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from agenthost.errors import InvalidRequestError
from agenthost.runtime.approvals import decide
from agenthost.server.deps import RecoveryDep, RuntimeDep, ServiceDep
from agenthost.server.schemas import ApprovalDecision, ForkRequest, RunList, RunView, approval_view, run_view
from agenthost.server.sse import event_stream
from agenthost.storage.runs import RunFilter

router = APIRouter(prefix="/v1/runs", tags=["runs"])

RunId = Annotated[str, Path(min_length=1, max_length=64, description="The run id.")]
Status = Literal["queued", "running", "waiting_approval", "succeeded", "failed", "dead", "cancelled"]


def _encode_cursor(at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{run_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), run_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequestError("cursor is not one this server returned", code="invalid_cursor") from None


@router.get("", response_model=RunList)
async def list_runs(  # noqa: PLR0917 - FastAPI maps each parameter to a query field
    service: ServiceDep,
    runtime: RuntimeDep,
    status: Annotated[Status | None, Query()] = None,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query(max_length=256)] = None,
    created_after: Annotated[datetime | None, Query(description="ISO 8601, inclusive.")] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Runs, newest first, filtered; page with `cursor`."""
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            msg = f"{name} must include a timezone offset (e.g. 2026-11-21T10:00:00Z)"
            raise InvalidRequestError(msg, code="invalid_request")
    limit = min(limit, runtime.settings.server.max_page_size)
    rows = await service.list_runs(
        RunFilter(
            status=status,
            agent=agent,
            user_id=user_id,
            created_after=created_after,
            created_before=created_before,
            cursor=_decode_cursor(cursor) if cursor else None,
            limit=limit,
        )
    )
    next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
    return JSONResponse(
        {"object": "list", "data": [run_view(row) for row in rows], "next_cursor": next_cursor}
    )


@router.get("/{run_id}", response_model=RunView)
async def get_run(run_id: RunId, service: ServiceDep) -> Response:
    """A run's status and, once finished, its output, usage, cost, latency and steps."""
    return JSONResponse(run_view(await service.get(run_id)))


@router.get("/{run_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def run_events(
    run_id: RunId,
    service: ServiceDep,
    runtime: RuntimeDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, description="Same as the Last-Event-ID header.")] = None,
) -> Response:
    """SSE replay of a run's events, then its live tail; resume with `Last-Event-ID`."""
    await service.get(run_id)
    after_seq = after or 0
    if last_event_id is not None:
        if not last_event_id.isdigit():
            msg = "Last-Event-ID must be an event id this server sent (a non-negative integer)"
            raise InvalidRequestError(msg, code="invalid_last_event_id")
        after_seq = int(last_event_id)
    return event_stream(
        service.follow(run_id, after_seq), heartbeat=runtime.settings.server.heartbeat_interval, run_id=run_id
    )


@router.post("/{run_id}/cancel", response_model=RunView)
async def cancel_run(run_id: RunId, service: ServiceDep) -> Response:
    """Cancel a queued or running run; 409 if it already ended."""
    return JSONResponse(run_view(await service.cancel(run_id)))


@router.get("/{run_id}/steps")
async def run_steps(run_id: RunId, recovery: RecoveryDep) -> Response:
    """The run's checkpointed steps: kind (model/tool/approval), name, timing, tokens, cost, outcome."""
    return JSONResponse({"object": "list", "run_id": run_id, "data": await recovery.steps(run_id)})


@router.post("/{run_id}/resume", response_model=RunView)
async def resume_run(run_id: RunId, recovery: RecoveryDep) -> Response:
    """Re-execute a `dead` run from the step that failed; earlier steps replay. 409 otherwise."""
    return JSONResponse(run_view(await recovery.resume(run_id)), status_code=202)


@router.post("/{run_id}/fork", response_model=RunView, status_code=202)
async def fork_run(run_id: RunId, body: ForkRequest, recovery: RecoveryDep) -> Response:
    """A new run replaying this one's steps before `from_step` from the record, executing from there."""
    row = await recovery.fork(run_id, body.from_step)
    location = f"/v1/runs/{row['id']}"
    return JSONResponse(run_view(row), status_code=202, headers={"Location": location})


ApprovalId = Annotated[str, Path(min_length=1, max_length=64, description="The approval id.")]


@router.post("/{run_id}/approvals/{approval_id}")
async def decide_approval(
    run_id: RunId, approval_id: ApprovalId, body: ApprovalDecision, runtime: RuntimeDep
) -> Response:
    """Approve or deny a pending tool call; 409 if it was already decided or the run is not waiting."""
    row = await decide(
        runtime,
        run_id,
        approval_id,
        approve=body.decision == "approve",
        reason=body.reason,
        by=body.by or "anonymous",
    )
    return JSONResponse(approval_view(row))
