"""The FastAPI application factory and its lifespan.

The lifespan opens the process's runtime (`runtime/process.py`: storage, gateway, agents,
policies, DBOS) and adds what only the HTTP server needs (the authenticator); routes reach them
through `app.state` and the dependencies in `server/deps.py`, never through a global.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator

import structlog
from fastapi import Depends, FastAPI

from agenthost._version import __version__
from agenthost.config.roles import resolve_roles
from agenthost.observability.metrics import MetricsMiddleware
from agenthost.runtime.process import open_runtime
from agenthost.security.audit import AuditLog
from agenthost.security.auth import Authenticator
from agenthost.security.jwt import JWTVerifier
from agenthost.security.keys import KeyManager
from agenthost.server.deps import authenticate
from agenthost.server.errors import install_error_handlers
from agenthost.server.middleware import BodyLimitMiddleware, RequestIdMiddleware
from agenthost.server.routes import (
    agents,
    approvals,
    costs,
    health,
    keys,
    metrics,
    openai_compat,
    privacy,
    runs,
    seed,
    threads,
)
from agenthost.settings import Settings, load_settings

__all__ = ["create_app"]

# Every router but these needs credentials (`[auth]`); /metrics decides for itself.
_PUBLIC = (health.router, metrics.router)
_ROUTERS = (
    keys.router,
    costs.router,
    agents.router,
    runs.router,
    openai_compat.router,
    approvals.router,
    threads.router,
    privacy.router,
    seed.router,
)

_log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; its lifespan builds everything else (and fails before the server binds).

    Example:
        >>> from agenthost.settings import Settings
        >>> app = create_app(Settings())
        >>> app.title
        'agenthost'
    """
    settings = settings or load_settings()
    # Built now: an unreadable key file or a weak key is a config error before the server binds.
    jwt = settings.auth.jwt
    jwt_verifier = JWTVerifier(jwt, config_dir=settings.config_dir) if jwt is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            app.state.authenticator = Authenticator(
                settings.auth,
                resolve_roles(settings.roles),
                KeyManager(runtime.backends.keys),
                jwt=jwt_verifier,
            )
            await _audit_config(settings, runtime.policies.audit)
            _warn_if_open(settings)
            _log.info("server_started", agents=[e.name for e in runtime.registry], version=__version__)
            yield
        _log.info("server_stopped")

    app = FastAPI(title="agenthost", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    for router in _PUBLIC:
        app.include_router(router)
    for router in _ROUTERS:
        app.include_router(router, dependencies=[Depends(authenticate)])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware)
    return app


async def _audit_config(settings: Settings, audit: AuditLog) -> None:
    """`config.changed` in the audit log when this configuration (secrets masked) differs from
    every one the log has seen."""
    masked = json.dumps(settings.masked(), sort_keys=True, default=str)
    digest = hashlib.sha256(masked.encode()).hexdigest()
    await audit.append(
        "config.changed",
        actor="system",
        actor_user=None,
        details={"sha256": digest, "agents": sorted(settings.agents), "auth": settings.auth.mode},
        dedupe_key=f"config:{digest}",
    )


def _warn_if_open(settings: Settings) -> None:
    if settings.auth.mode == "none":
        _log.warning(
            "authentication_disabled",
            message="AUTHENTICATION IS OFF ([auth] mode = none): every caller is an admin. "
            "Never expose this server beyond your own machine.",
        )
