"""The FastAPI application factory and its lifespan (storage, durable engine, event writer)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator

import structlog
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from agenthost._version import __version__
from agenthost.config.roles import resolve_roles
from agenthost.costs.alerts import Alerts
from agenthost.costs.budgets import Budgets, budget_store
from agenthost.gateway.batch import Batcher
from agenthost.observability.metrics import RUNS_RECOVERED, MetricsMiddleware
from agenthost.runtime.events import EventBus, EventWriter
from agenthost.runtime.recovery import RunRecovery
from agenthost.runtime.registry import AgentRegistry
from agenthost.runtime.runtime import Runtime, install_runtime
from agenthost.runtime.service import RunService
from agenthost.runtime.workflow import configure_dbos, launch_dbos, shutdown_dbos
from agenthost.security.audit import AuditLog
from agenthost.security.auth import Authenticator
from agenthost.security.jwt import JWTVerifier
from agenthost.security.keys import KeyManager
from agenthost.security.output import OutputRedaction
from agenthost.security.privacy import RetentionJob, register_retention_job, schedule_retention_job
from agenthost.security.ratelimit import RateLimiter
from agenthost.security.screening import Screener
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
from agenthost.storage.alerts import AlertStore
from agenthost.storage.approvals import ApprovalStore
from agenthost.storage.audit import AuditStore
from agenthost.storage.batches import BatchStore
from agenthost.storage.engine import DatabaseURLs, create_app_engine, database_urls
from agenthost.storage.keys import KeyStore
from agenthost.storage.migrate import upgrade
from agenthost.storage.runs import RunStore
from agenthost.storage.threads import ThreadStore

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
_LOGGED_IDS = 100


def create_app(settings: Settings | None = None, registry: AgentRegistry | None = None) -> FastAPI:
    """Build the app. Agents are imported now, so a bad config fails before the server binds.

    Example:
        >>> from agenthost.settings import Settings
        >>> app = create_app(Settings())
        >>> app.title
        'agenthost'
    """
    settings = settings or load_settings()
    registry = registry or AgentRegistry(settings)
    # Built now: an unreadable key file or a weak key is a config error before the server binds.
    jwt = settings.auth.jwt
    jwt_verifier = JWTVerifier(jwt, config_dir=settings.config_dir) if jwt is not None else None
    urls = database_urls(settings.database_url.get_secret_value())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, urls)
        engine = create_app_engine(urls)
        runtime = _build_runtime(settings, urls, engine, registry)
        writer, alerts = runtime.writer, runtime.alerts
        install_runtime(runtime)
        registry.gateway.bind(engine)
        await registry.gateway.warm()
        service = RunService(runtime)
        app.state.authenticator = Authenticator(
            settings.auth, resolve_roles(settings.roles), KeyManager(KeyStore(engine)), jwt=jwt_verifier
        )
        app.state.runtime = runtime
        app.state.service = service
        recovery = RunRecovery(runtime, service)
        app.state.recovery = recovery
        app.state.audit = runtime.audit
        await _audit_config(settings, runtime.audit)
        await _launch_durable(settings, urls, runtime)
        writer.start()
        reconcile = asyncio.create_task(
            _reconcile_loop(recovery, runtime.budgets),
            name="agenthost-reconcile",
        )
        _warn_if_open(settings)
        _log.info("server_started", agents=[e.name for e in registry], version=__version__)
        try:
            yield
        finally:
            reconcile.cancel()
            await _drain(runtime, settings.server.shutdown_grace_seconds)
            await writer.stop()
            await runtime.budgets.drain(2.0)
            await alerts.drain(2.0)
            await runtime.limiter.aclose()
            shutdown_dbos(0)
            install_runtime(None)
            await engine.dispose()
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


def _build_runtime(
    settings: Settings, urls: DatabaseURLs, engine: AsyncEngine, registry: AgentRegistry
) -> Runtime:
    redis_url = settings.redis.url.get_secret_value() if settings.redis.url is not None else None
    store = RunStore(engine)
    alerts = Alerts(AlertStore(engine), settings.alerts)
    return Runtime(
        settings,
        urls,
        engine,
        registry,
        store,
        EventBus(),
        EventWriter(store, settings.durability.events_flush_interval),
        ApprovalStore(engine),
        ThreadStore(engine),
        Budgets(settings, budget_store(settings, engine), alerts),
        alerts,
        Batcher(settings, BatchStore(engine)),
        OutputRedaction(settings),
        RateLimiter(
            settings.rate_limits, redis_url, settings.redis.key_prefix, settings.redis.max_connections
        ),
        AuditLog(AuditStore(engine)),
        Screener(settings.screening),
    )


async def _launch_durable(settings: Settings, urls: DatabaseURLs, runtime: Runtime) -> None:
    """Start DBOS (recovering runs left by a previous process) and schedule the retention job;
    load the screening corpus first (when similarity screening is on), as recovered runs screen."""
    await asyncio.to_thread(runtime.screener.load)
    configure_dbos(settings, urls)
    job = RetentionJob(
        runtime.engine, urls, settings.retention, runtime.audit, settings.ledger.retention_days
    )
    register_retention_job(job)
    recovered = await launch_dbos(settings)
    if recovered:
        RUNS_RECOVERED.inc(len(recovered))
        # Ids of the first runs only: a large backlog must not make one huge log line.
        _log.info("runs_recovered", count=len(recovered), run_ids=recovered[:_LOGGED_IDS])
    await schedule_retention_job(settings.retention.schedule)


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


async def _reconcile_loop(recovery: RunRecovery, budgets: Budgets, interval: float = 60.0) -> None:
    """Settle lost and crash-looping runs, redeliver pending alerts and drop ended budget
    counters, at start-up and then every `interval` seconds. (Retention, the ledger's included, is
    the scheduled retention job's.)"""
    while True:
        try:
            settled = await recovery.reconcile()
            if any(settled.values()):
                _log.warning("runs_settled", **settled)
            await budgets.alerts.redeliver_pending()
            await budgets.purge_expired()
        except Exception:
            _log.exception("reconcile_failed")
        await asyncio.sleep(interval)


async def _drain(runtime: Runtime, grace_seconds: float) -> None:
    """Let runs executing here finish within the grace period; the rest recover on next start."""
    tasks = list(runtime.local_tasks.values())
    if not tasks:
        return
    _log.info("draining_runs", runs=len(tasks), grace_seconds=grace_seconds)
    _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
        _log.warning("runs_left_for_recovery", runs=len(pending))
