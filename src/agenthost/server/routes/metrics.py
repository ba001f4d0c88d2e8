"""`GET /metrics`: Prometheus exposition (see `observability/metrics.py` for the series)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from agenthost.errors import ForbiddenError
from agenthost.observability.metrics import CONTENT_TYPE_LATEST, render, set_breaker_states
from agenthost.server.deps import RuntimeDep, authenticate
from agenthost.server.openapi import error_responses

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **error_responses(403, s403="A role that does not see all runs: `forbidden`."),
    },
)
async def metrics(runtime: RuntimeDep, request: Request) -> Response:
    """Every series of this process; breaker states are read from their store (shared when Redis).

    Needs an operator or admin credential (any role that sees all runs) unless
    `[auth] public_metrics = true`: the series name agents, models, users' spend and error rates."""
    if not runtime.settings.auth.public_metrics:
        principal = await authenticate(request)
        if principal.role.sees != "all":
            raise ForbiddenError(f"role {principal.role_name!r} may not read metrics")
    set_breaker_states(await runtime.gateway.breakers.states())
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
