"""`GET /v1/costs` (spend from the ledger: totals, per hour, top runs, breakdowns) and `GET /v1/alerts`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from agenthost.costs.report import spend_report
from agenthost.errors import ErrorCode, ForbiddenError, InvalidRequestError
from agenthost.server.deps import PrincipalDep, RuntimeDep

router = APIRouter(prefix="/v1", tags=["costs"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/costs")
async def costs(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Start (ISO 8601; UTC if no offset). Default: today 00:00 UTC."),
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="End, exclusive. Default: now.")] = None,
) -> dict[str, Any]:
    """Total, today, average per run, spend per hour over the last 24 h, the 5 most expensive runs,
    and spend by model, agent, user, key and tier, for the range. Callers whose role sees only
    their own (or their team's) runs get their own spend only."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        msg = "`from` must be before `to`"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_RANGE)
    return await spend_report(runtime.backends.ledger, start, end, principal.visibility())


@router.get("/alerts")
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
