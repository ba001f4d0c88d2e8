"""`/v1/runs`: status, listing, event replay and live tail, cancel."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema
from starlette.responses import Response

from agenthost.errors import ErrorCode, ForbiddenError, InvalidRequestError
from agenthost.records import TERMINAL_STATUSES
from agenthost.runtime.approvals import decide
from agenthost.security.audit import actor_fields
from agenthost.security.policy import agent_tool_risk
from agenthost.server.deps import (
    PrincipalDep,
    RecoveryDep,
    RuntimeDep,
    ServiceDep,
    visible_run,
    visible_stream_run,
)
from agenthost.server.middleware import request_id_of
from agenthost.server.openapi import SSE_RESPONSE_CLASS, error_responses, sse_response
from agenthost.server.query import IsoDateTime
from agenthost.server.schemas import (
    MAX_EVENT_SEQ,
    ApprovalDecision,
    ForkRequest,
    RunList,
    RunView,
    approval_view,
    run_view,
)
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
        raise InvalidRequestError(
            "cursor is not one this server returned", code=ErrorCode.INVALID_CURSOR
        ) from None


# An event number from 0 to MAX_EVENT_SEQ (2**31-1), leading zeros allowed: the OpenAPI
# document's pattern for `Last-Event-ID`; `_last_event_id` accepts exactly these.
LAST_EVENT_ID_PATTERN = (
    r"^0*(?:[0-9]{1,9}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}"
    r"|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])$"
)


def _last_event_id(value: str) -> int:
    """The event number in a `Last-Event-ID` header; 422 unless it is one this server could send.

    ASCII digits only (`str.isdigit` also accepts `²`, which `int` refuses), and the length is
    checked before `int` so no oversized number is parsed or reaches the database."""
    digits = value.lstrip("0") or "0"
    if value.isascii() and value.isdigit() and len(digits) <= len(str(MAX_EVENT_SEQ)):
        seq = int(digits)
        if seq <= MAX_EVENT_SEQ:
            return seq
    msg = f"Last-Event-ID must be an event id this server sent (an integer from 0 to {MAX_EVENT_SEQ})"
    raise InvalidRequestError(msg, code=ErrorCode.INVALID_LAST_EVENT_ID)


@router.get("", response_model=RunList)
async def list_runs(  # noqa: PLR0917 - FastAPI maps each parameter to a query field
    service: ServiceDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[Status | None, Query()] = None,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query(max_length=256)] = None,
    created_after: Annotated[IsoDateTime | None, Query(description="ISO 8601, inclusive.")] = None,
    created_before: Annotated[IsoDateTime | None, Query(description="ISO 8601, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Runs, newest first, filtered; page with `cursor`."""
    limit = min(limit, runtime.settings.server.max_page_size)
    rows = await service.list_runs(
        RunFilter(
            status=status,
            agent=agent,
            user_id=user_id,
            visibility=principal.visibility(),
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


_NOT_FOUND = error_responses(404, s404="No such run, or one the caller may not see: `run_not_found`.")
_CHANGE = error_responses(
    403,
    404,
    409,
    s403="The caller's role may not change runs: `forbidden`.",
    s404=_NOT_FOUND[404]["description"],
)


@router.get("/{run_id}", response_model=RunView, responses=_NOT_FOUND)
async def get_run(run_id: RunId, service: ServiceDep, principal: PrincipalDep) -> Response:
    """A run's status and, once finished, its output, usage, cost, latency and steps."""
    return JSONResponse(run_view(await visible_run(service, principal, run_id)))


@router.get(
    "/{run_id}/events",
    response_class=SSE_RESPONSE_CLASS,
    responses={
        **sse_response(
            "Server-sent events: the run's events from `after` (or `Last-Event-ID`) on, then its "
            "live tail until its last event; `id` is the event number."
        ),
        204: {"description": "The run has ended and the client has every event: do not reconnect."},
        **error_responses(
            403,
            404,
            s403="A stream token for another run or thread: `stream_token_scope`.",
            s404=_NOT_FOUND[404]["description"],
        ),
    },
)
async def run_events(  # noqa: PLR0917 - FastAPI maps each parameter to a request part
    run_id: RunId,
    service: ServiceDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    request: Request,
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this event (the `id` of the last event received)."),
        WithJsonSchema({"type": "string", "pattern": LAST_EVENT_ID_PATTERN}),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_SEQ, description="Same as the Last-Event-ID header.")
    ] = None,
    token: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="A stream token (`POST /v1/stream-tokens`) instead of an API key, for "
            "`EventSource`; accepted here only.",
        ),
    ] = None,
) -> Response:
    """SSE replay of a run's events, then its live tail until its last event; resume with
    `Last-Event-ID`. 204 when the run has ended and the client already has every event, which
    tells `EventSource` to stop reconnecting."""
    del token  # read by the authentication dependency, which also sets the token's scope
    after_seq = after or 0
    if last_event_id is not None:
        after_seq = _last_event_id(last_event_id)
    run = await visible_stream_run(request, service, principal, run_id)
    if await _has_every_event(service, run, after_seq):
        return Response(status_code=204, headers={"X-Run-Id": run_id, "Cache-Control": "no-store"})
    return event_stream(
        service.follow(run_id, after_seq), heartbeat=runtime.settings.server.heartbeat_interval, run_id=run_id
    )


async def _has_every_event(service: ServiceDep, run: dict[str, Any], after_seq: int) -> bool:
    """Whether `run` has ended and has no event after `after_seq`. A run's final state is stored
    together with its last events, so an ended row means the database holds all of them."""
    run_id = run["id"]
    if run["status"] not in TERMINAL_STATUSES or service.env.bus.history(run_id, after_seq) is not None:
        return False
    return not await service.store.events_after(run_id, after_seq, limit=1)


@router.post("/{run_id}/cancel", response_model=RunView, responses=_CHANGE)
async def cancel_run(run_id: RunId, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Cancel a queued or running run; 409 if it already ended."""
    await _writable_run(service, principal, run_id)
    return JSONResponse(run_view(await service.cancel(run_id)))


@router.get("/{run_id}/steps", responses={**_NOT_FOUND, **error_responses(410)})
async def run_steps(run_id: RunId, recovery: RecoveryDep, principal: PrincipalDep) -> Response:
    """The run's checkpointed steps: kind (model/tool/approval), name, timing, tokens, cost, outcome."""
    await visible_run(recovery.service, principal, run_id)
    return JSONResponse({"object": "list", "run_id": run_id, "data": await recovery.steps(run_id)})


@router.post("/{run_id}/resume", response_model=RunView, status_code=202, responses=_CHANGE)
async def resume_run(run_id: RunId, recovery: RecoveryDep, principal: PrincipalDep) -> Response:
    """Re-execute a `dead` run from the step that failed; earlier steps replay. 409 otherwise."""
    await _writable_run(recovery.service, principal, run_id)
    return JSONResponse(run_view(await recovery.resume(run_id)), status_code=202)


@router.post("/{run_id}/fork", response_model=RunView, status_code=202, responses=_CHANGE)
async def fork_run(
    run_id: RunId, body: ForkRequest, recovery: RecoveryDep, principal: PrincipalDep
) -> Response:
    """A new run replaying this one's steps before `from_step` from the record, executing from there."""
    await _writable_run(recovery.service, principal, run_id)
    row = await recovery.fork(run_id, body.from_step)
    location = f"/v1/runs/{row['id']}"
    return JSONResponse(run_view(row), status_code=202, headers={"Location": location})


ApprovalId = Annotated[str, Path(min_length=1, max_length=64, description="The approval id.")]


@router.post(
    "/{run_id}/approvals/{approval_id}",
    responses=error_responses(
        403,
        404,
        409,
        s404="`run_not_found`, `approval_not_found`.",
        s409="`approval_already_decided`, `run_not_waiting`.",
    ),
)
async def decide_approval(  # noqa: PLR0917 - FastAPI maps each parameter to a request part
    run_id: RunId,
    approval_id: ApprovalId,
    body: ApprovalDecision,
    runtime: RuntimeDep,
    service: ServiceDep,
    principal: PrincipalDep,
    request: Request,
) -> Response:
    """Approve or deny a pending tool call; 409 if it was already decided or the run is not waiting.

    The caller's role must allow approving the tool's risk (critical tools: operator or admin). The
    decider recorded is the authenticated caller; `by` names the person it decides for, which only
    roles that see all runs may do (403 otherwise, unless `by` is the caller's own user)."""
    run = await visible_run(service, principal, run_id)
    decider = principal.user_id or principal.subject
    on_behalf_of = body.by if body.by and body.by != decider else None
    if on_behalf_of is not None and principal.role.sees != "all":
        msg = f"role {principal.role_name!r} may not decide on behalf of someone else (`by`)"
        raise ForbiddenError(msg)
    pending = await runtime.backends.approvals.get(approval_id)
    if pending is not None and pending["run_id"] == run_id:
        risk = agent_tool_risk(runtime.settings, run["agent"], pending["tool_name"])
        if not principal.role.may_approve(risk):
            tool = pending["tool_name"]
            msg = f"role {principal.role_name!r} may not decide calls of {risk}-risk tool {tool!r}"
            raise ForbiddenError(msg)
    row = await decide(
        runtime.backends.approvals,
        runtime.backends.runs,
        run_id,
        approval_id,
        approve=body.decision == "approve",
        reason=body.reason,
        by=decider,
        on_behalf_of=on_behalf_of,
    )
    await runtime.policies.audit.append(
        "approval.decided",
        **actor_fields(principal.subject, principal.user_id),
        subject_user=run["user_id"],
        target=approval_id,
        details={
            "run_id": run_id,
            "tool": row["tool_name"],
            "decision": row["status"],
            "decided_for": row["decided_for"],
            "reason": row["reason"],
        },
        request_id=request_id_of(request.scope),
    )
    return JSONResponse(
        approval_view({**row, "args": runtime.policies.redaction.value(row["agent"], row["args"])})
    )


async def _writable_run(service: ServiceDep, principal: PrincipalDep, run_id: str) -> None:
    """The run is visible and the caller may act on runs (not read-only)."""
    await visible_run(service, principal, run_id)
    if not principal.role.run:
        raise ForbiddenError(f"role {principal.role_name!r} may not change runs")
