"""`GET /metrics`: Prometheus exposition (see `observability/metrics.py` for the series)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from agenthost.observability.metrics import CONTENT_TYPE_LATEST, render, set_breaker_states
from agenthost.server.deps import RuntimeDep

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    """Every series of this process; breaker states are read from their store (shared when Redis)."""
    set_breaker_states(await runtime.registry.gateway.breakers.states())
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
