"""`GET /v1/costs`: spend from the ledger (totals, per hour, top runs, breakdowns)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from agenthost.costs.report import spend_report
from agenthost.errors import InvalidRequestError
from agenthost.server.deps import RuntimeDep

router = APIRouter(prefix="/v1", tags=["costs"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/costs")
async def costs(
    runtime: RuntimeDep,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Start (ISO 8601; UTC if no offset). Default: today 00:00 UTC."),
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="End, exclusive. Default: now.")] = None,
) -> dict[str, Any]:
    """Total, today, average per run, spend per hour over the last 24 h, the 5 most expensive runs,
    and spend by model, agent, user, key and tier, for the range."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        msg = "`from` must be before `to`"
        raise InvalidRequestError(msg, code="invalid_range")
    return await spend_report(runtime.engine, start, end)
