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
from starlette.middleware.cors import CORSMiddleware

from agenthost._version import __version__
from agenthost.config.roles import resolve_roles
from agenthost.observability.metrics import MetricsMiddleware
from agenthost.runtime.process import open_runtime
from agenthost.security.audit import AuditLog
from agenthost.security.auth import Authenticator
from agenthost.security.jwt import JWTVerifier
from agenthost.security.keys import KeyManager
from agenthost.security.stream_tokens import StreamTokens
from agenthost.server.deps import authenticate
from agenthost.server.errors import install_error_handlers
from agenthost.server.middleware import BodyLimitMiddleware, RequestIdMiddleware, cors_options
from agenthost.server.openapi import install_docs, install_openapi
from agenthost.server.query import reject_unknown_query
from agenthost.server.routes import (
    agents,
    approvals,
    costs,
    health,
    keys,
    messages,
    metrics,
    openai_compat,
    privacy,
    responses,
    runs,
    seed,
    stream_tokens,
    threads,
)
from agenthost.server.schemas import input_chars_limit
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
    responses.router,
    messages.router,
    approvals.router,
    threads.router,
    privacy.router,
    seed.router,
    stream_tokens.router,
)

_log = structlog.get_logger(__name__)
_DESCRIPTION = (
    "Self-hosted runtime for Pydantic AI agents. Every error is "
    '`{"error": {"code", "message", "request_id"}}` (the `Error` schema); send an API key as '
    "`X-API-Key` or `Authorization: Bearer` (JWTs as Bearer) to every operation that lists a "
    "security requirement."
)


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
            app.state.stream_tokens = StreamTokens(
                settings.server.stream_tokens, app.state.authenticator, runtime.backends.audit
            )
            await _audit_config(settings, runtime.policies.audit)
            _warn_if_open(settings)
            _log.info("server_started", agents=[e.name for e in runtime.registry], version=__version__)
            yield
        _log.info("server_stopped")

    app = FastAPI(
        title="agenthost",
        version=__version__,
        lifespan=lifespan,
        # Served from local files by `install_docs`: the pages work offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Unknown query parameters are a 422, checked after authentication (a 401 comes first).
    for router in _PUBLIC:
        app.include_router(router, dependencies=[Depends(reject_unknown_query)])
    for router in _ROUTERS:
        app.include_router(router, dependencies=[Depends(authenticate), Depends(reject_unknown_query)])
    install_openapi(
        app,
        guard=authenticate,
        auth_required=settings.auth.mode != "none",
        input_chars=input_chars_limit(settings.screening),
        input_screened=settings.screening.enabled,
        agents=settings.agents,
        also_protected=() if settings.auth.public_metrics else ("/metrics",),
        description=_DESCRIPTION,
    )
    install_docs(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    if settings.server.cors.enabled:
        # Outside every route: a preflight is answered here, before authentication.
        app.add_middleware(CORSMiddleware, **cors_options(settings.server.cors))
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
