"""`GET /v1/costs` (spend from the ledger: totals, per hour, top runs, breakdowns) and `GET /v1/alerts`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from agenthost.costs.report import spend_report
from agenthost.errors import ErrorCode, ForbiddenError, InvalidRequestError
from agenthost.server.deps import PrincipalDep, RuntimeDep
from agenthost.server.openapi import error_responses
from agenthost.server.query import IsoDateTime

router = APIRouter(prefix="/v1", tags=["costs"])


@router.get("/costs")
async def costs(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    start: Annotated[
        IsoDateTime | None,
        Query(
            alias="from",
            description="Start: a date-time with its offset, or a date (its midnight UTC). "
            "Default: today 00:00 UTC.",
        ),
    ] = None,
    end: Annotated[IsoDateTime | None, Query(alias="to", description="End, exclusive. Default: now.")] = None,
) -> dict[str, Any]:
    """Total, today, average per run, spend per hour over the last 24 h, the 5 most expensive runs,
    and spend by model, agent, user, key and tier, for the range. Callers whose role sees only
    their own (or their team's) runs get their own spend only."""
    if start is not None and end is not None and start >= end:
        msg = "`from` must be before `to`"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_RANGE)
    return await spend_report(runtime.backends.ledger, start, end, principal.visibility())


@router.get("/alerts", responses=error_responses(403))
async def alerts(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    kind: Annotated[
        Literal["budget", "hourly_spend", "run_cost"] | None, Query(description="Only alerts of this kind.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Alert history, newest first: budget thresholds, hourly spend, costly runs; with delivery.
    Alerts are about everyone's spend: roles that see all runs only (operator, admin)."""
    if principal.role.sees != "all":
        raise ForbiddenError(f"role {principal.role_name!r} may not read alerts")
    rows = await runtime.policies.alerts.history(kind=kind, limit=limit)
    data = [
        {
            "id": row["id"],
            "kind": row["kind"],
            "message": row["message"],
            "data": row["data"],
            "delivery": row["delivery"],
            "attempts": row["attempts"],
            "created_at": row["created_at"].isoformat(),
        }
        for row in rows
    ]
    return {"object": "list", "data": data}
