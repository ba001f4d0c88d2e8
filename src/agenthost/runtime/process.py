"""The composition root of a process that executes runs: everything is built here, once, in
order, and passed explicitly; everything is closed here, in reverse.

The server's lifespan opens it (`server/app.py`); tests open it in-process; a worker process will
open it the same way. Nothing it builds is reachable through a module-level global.

Order: storage (migrated) -> gateway (model chains on their breakers and caches) -> agents ->
policies (budgets, alerts, rate limits, screening, redaction, audit) -> the run environment ->
DBOS (the run workflow and the retention schedule; launching it recovers unfinished runs) ->
the event writer. Shutdown lets runs executing here finish within the grace period (the rest are
recovered by the next start), flushes events, waits briefly for settlements and alert deliveries,
stops DBOS and closes storage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog

from agenthost.costs.alerts import Alerts
from agenthost.costs.budgets import Budgets
from agenthost.gateway.batch import Batcher
from agenthost.gateway.models import Gateway, GatewayStores
from agenthost.observability.metrics import RUNS_RECOVERED
from agenthost.runtime.environment import Policies, RunEnvironment, RunStores
from agenthost.runtime.events import EventBus, EventWriter
from agenthost.runtime.recovery import RunRecovery
from agenthost.runtime.registry import AgentRegistry
from agenthost.runtime.service import RunService
from agenthost.runtime.state import EventSink
from agenthost.runtime.workflow import DurableRuns
from agenthost.security.audit import AuditLog
from agenthost.security.output import OutputRedaction
from agenthost.security.privacy import Privacy
from agenthost.security.ratelimit import RateLimiter
from agenthost.security.screening import Screener
from agenthost.settings import Settings
from agenthost.storage.backends import Backends
from agenthost.storage.ledger import LedgerWriter

__all__ = ["Runtime", "open_runtime"]

_log = structlog.get_logger(__name__)
_LOGGED_IDS = 100
_BOOKKEEPING_SECONDS = 60.0


@dataclass
class Runtime:
    """What a process built to execute and serve runs."""

    settings: Settings
    backends: Backends
    gateway: Gateway
    env: RunEnvironment
    durable: DurableRuns
    service: RunService
    recovery: RunRecovery
    privacy: Privacy
    recovered: list[str] = field(default_factory=list)
    """Runs DBOS resumed at this start (a previous process left them executing)."""
    bookkeeping: asyncio.Task[None] | None = None

    @property
    def registry(self) -> AgentRegistry:
        return self.env.registry

    @property
    def policies(self) -> Policies:
        return self.env.policies


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Build the process (see the module docstring), yield it, and close it."""
    backends = await Backends.open(settings)
    runtime: Runtime | None = None
    try:
        runtime = await _build(settings, backends)
        await _start(runtime)
        yield runtime
    finally:
        if runtime is not None:
            await _stop(runtime)
        await backends.aclose()


async def _build(settings: Settings, backends: Backends) -> Runtime:
    gateway = Gateway(
        settings, GatewayStores(backends.breakers, backends.response_cache, backends.semantic_cache)
    )
    registry = AgentRegistry(settings, gateway)
    alerts = Alerts(backends.alerts, settings.alerts)
    audit = AuditLog(backends.audit)
    policies = Policies(
        budgets=Budgets(settings, backends.budget_counters, alerts),
        alerts=alerts,
        limiter=RateLimiter(settings.rate_limits, backends.redis_keys, shared=backends.rate_counters),
        screener=Screener(settings.screening),
        redaction=OutputRedaction(settings),
        audit=audit,
    )
    env = RunEnvironment(
        settings=settings,
        registry=registry,
        stores=RunStores(backends.runs, backends.approvals, backends.threads, backends.ledger),
        policies=policies,
        events=EventSink(EventBus(), EventWriter(backends.runs, settings.durability.events_flush_interval)),
        batcher=Batcher(settings, backends.batches),
        ledger=LedgerWriter(backends.ledger),
    )
    durable = DurableRuns(env, backends.urls)
    service = RunService(env, durable)
    privacy = Privacy.over(backends, audit, settings)
    return Runtime(settings, backends, gateway, env, durable, service, RunRecovery(env, service), privacy)


async def _start(runtime: Runtime) -> None:
    await runtime.gateway.warm()
    # Recovered runs screen their tool outputs: load the screening corpus before DBOS launches.
    await asyncio.to_thread(runtime.policies.screener.load)
    runtime.durable.configure()
    privacy = runtime.privacy
    runtime.durable.add_schedule("retention", runtime.settings.retention.schedule, privacy.enforce_retention)
    runtime.recovered = await runtime.durable.launch()
    if runtime.recovered:
        RUNS_RECOVERED.inc(len(runtime.recovered))
        # Ids of the first runs only: a large backlog must not make one huge log line.
        _log.info("runs_recovered", count=len(runtime.recovered), run_ids=runtime.recovered[:_LOGGED_IDS])
    runtime.env.writer.start()
    runtime.bookkeeping = asyncio.create_task(_bookkeeping(runtime), name="agenthost-bookkeeping")


async def _stop(runtime: Runtime) -> None:
    if runtime.bookkeeping is not None:
        runtime.bookkeeping.cancel()
    await _drain(runtime.env, runtime.settings.server.shutdown_grace_seconds)
    await runtime.env.writer.stop()
    await runtime.policies.budgets.drain(2.0)
    await runtime.policies.alerts.drain(2.0)
    runtime.durable.shutdown(0)


async def _drain(env: RunEnvironment, grace_seconds: float) -> None:
    """Let runs executing here finish within the grace period; the rest recover on next start."""
    tasks = list(env.local.tasks.values())
    if not tasks:
        return
    _log.info("draining_runs", runs=len(tasks), grace_seconds=grace_seconds)
    _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
        _log.warning("runs_left_for_recovery", runs=len(pending))


async def _bookkeeping(runtime: Runtime) -> None:
    """Settle lost and crash-looping runs, redeliver pending alerts and drop ended budget
    counters, at start-up and then every minute. (Retention, the ledger's included, is the
    scheduled retention job's.)"""
    while True:
        try:
            settled = await runtime.recovery.reconcile()
            if any(settled.values()):
                _log.warning("runs_settled", **settled)
            await runtime.policies.alerts.redeliver_pending()
            await runtime.policies.budgets.purge_expired()
        except Exception:
            _log.exception("reconcile_failed")
        await asyncio.sleep(_BOOKKEEPING_SECONDS)
