"""The FastAPI application factory and its lifespan (storage, durable engine, event writer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import structlog
from fastapi import FastAPI

from agenthost._version import __version__
from agenthost.costs.alerts import Alerts
from agenthost.costs.budgets import Budgets, budget_store
from agenthost.gateway.batch import Batcher
from agenthost.observability.metrics import MetricsMiddleware
from agenthost.runtime.events import EventBus, EventWriter
from agenthost.runtime.recovery import RunRecovery
from agenthost.runtime.registry import AgentRegistry
from agenthost.runtime.runtime import Runtime, install_runtime
from agenthost.runtime.service import RunService
from agenthost.runtime.workflow import configure_dbos, launch_dbos, shutdown_dbos
from agenthost.server.errors import install_error_handlers
from agenthost.server.middleware import BodyLimitMiddleware, RequestIdMiddleware
from agenthost.server.routes import (
    agents,
    approvals,
    costs,
    health,
    metrics,
    openai_compat,
    runs,
    seed,
    threads,
)
from agenthost.settings import Settings, load_settings
from agenthost.storage.approvals import ApprovalStore
from agenthost.storage.engine import create_app_engine, database_urls
from agenthost.storage.ledger import LedgerStore
from agenthost.storage.migrate import upgrade
from agenthost.storage.runs import RunStore
from agenthost.storage.threads import ThreadStore

__all__ = ["create_app"]

_ROUTERS = (
    health.router,
    metrics.router,
    costs.router,
    agents.router,
    runs.router,
    openai_compat.router,
    approvals.router,
    threads.router,
    seed.router,
)

_log = structlog.get_logger(__name__)


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
    urls = database_urls(settings.database_url.get_secret_value())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, urls)
        engine = create_app_engine(urls)
        store = RunStore(engine)
        writer = EventWriter(store, settings.durability.events_flush_interval)
        alerts = Alerts(engine, settings.alerts)
        runtime = Runtime(
            settings,
            urls,
            engine,
            registry,
            store,
            EventBus(),
            writer,
            ApprovalStore(engine),
            ThreadStore(engine),
            Budgets(settings, budget_store(settings, engine), alerts),
            alerts,
            Batcher(settings, engine),
        )
        install_runtime(runtime)
        registry.gateway.bind(engine)
        await registry.gateway.warm()
        service = RunService(runtime)
        app.state.runtime = runtime
        app.state.service = service
        recovery = RunRecovery(runtime, service)
        app.state.recovery = recovery
        configure_dbos(settings, urls)
        await launch_dbos(settings)
        writer.start()
        retention = timedelta(days=settings.ledger.retention_days)
        reconcile = asyncio.create_task(
            _reconcile_loop(recovery, LedgerStore(engine), runtime.budgets, retention),
            name="agenthost-reconcile",
        )
        _log.info("server_started", agents=[e.name for e in registry], version=__version__)
        try:
            yield
        finally:
            reconcile.cancel()
            await _drain(runtime, settings.server.shutdown_grace_seconds)
            await writer.stop()
            await runtime.budgets.drain(2.0)
            await alerts.drain(2.0)
            shutdown_dbos(0)
            install_runtime(None)
            await engine.dispose()
            _log.info("server_stopped")

    app = FastAPI(title="agenthost", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    for router in _ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware)
    return app


async def _reconcile_loop(
    recovery: RunRecovery, ledger: LedgerStore, budgets: Budgets, retention: timedelta, interval: float = 60.0
) -> None:
    """Settle lost and crash-looping runs and purge ledger rows past retention, at start-up and
    then every `interval` seconds."""
    while True:
        try:
            settled = await recovery.reconcile()
            if any(settled.values()):
                _log.warning("runs_settled", **settled)
            await budgets.alerts.redeliver_pending()
            await budgets.purge_expired()
            purged = await ledger.purge(datetime.now(UTC) - retention)
            if purged:
                _log.info("ledger_purged", rows=purged, retention_days=retention.days)
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
