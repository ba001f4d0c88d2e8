"""Liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from dbos import DBOS
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.responses import Response

from agenthost._version import __version__
from agenthost.server.deps import RuntimeDep
from agenthost.server.schemas import Readiness

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches a dependency."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: a check failed (`checks` says which)."}},
)
async def ready(runtime: RuntimeDep) -> Response:
    """Readiness: the database answers and the durable engine is launched; 503 otherwise."""
    checks: dict[str, str] = {}
    try:
        async with runtime.backends.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        DBOS.executor_id  # noqa: B018 - raises when DBOS is not launched
        checks["durability"] = "ok"
    except Exception as exc:
        checks["durability"] = f"error: {type(exc).__name__}"
    checks["agents"] = str(len(runtime.registry))
    healthy = all(value == "ok" for key, value in checks.items() if key != "agents")
    # Open breakers do not make the server unready (fallbacks may serve); they are shown.
    breakers = await runtime.gateway.breakers.states()
    body = {"status": "ready" if healthy else "not_ready", "checks": checks, "breakers": breakers}
    return JSONResponse(body, status_code=200 if healthy else 503)
