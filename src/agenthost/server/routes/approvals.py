"""`/v1/approvals`: tool calls waiting for (or given) a person's decision."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from agenthost.server.deps import PrincipalDep, RuntimeDep
from agenthost.server.schemas import approval_view

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@router.get("")
async def list_approvals(  # noqa: PLR0917 - FastAPI maps each parameter to a query field
    runtime: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[
        Literal["pending", "approved", "denied", "expired", "cancelled"] | None, Query()
    ] = "pending",
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    tool: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Approvals, newest first; pending ones by default."""
    rows = await runtime.backends.approvals.list_approvals(
        status=status,
        run_id=run_id,
        agent=agent,
        tool=tool,
        limit=limit,
        visibility=principal.visibility(),
    )
    redact = runtime.policies.redaction.value
    data = [approval_view({**row, "args": redact(row["agent"], row["args"])}) for row in rows]
    return JSONResponse({"object": "list", "data": data})
