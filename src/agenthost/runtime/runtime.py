"""The process-wide runtime: what the durable workflow needs to execute a run.

DBOS workflows are module-level functions that DBOS may start on its own (recovery after a
crash, the queue), so they find their collaborators here rather than in arguments.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from agenthost.costs.alerts import Alerts
from agenthost.costs.budgets import Budgets
from agenthost.gateway.batch import Batcher
from agenthost.runtime.events import EventBus, EventWriter
from agenthost.runtime.registry import AgentRegistry
from agenthost.security.audit import AuditLog
from agenthost.security.output import OutputRedaction
from agenthost.security.ratelimit import RateLimiter
from agenthost.security.screening import Screener
from agenthost.settings import Settings
from agenthost.storage.approvals import ApprovalStore
from agenthost.storage.engine import DatabaseURLs
from agenthost.storage.ledger import LedgerStore, LedgerWriter
from agenthost.storage.runs import RunStore
from agenthost.storage.threads import ThreadStore

__all__ = ["Runtime", "current_runtime", "install_runtime"]


@dataclass
class Runtime:
    """Settings, agents, storage and event plumbing of this process."""

    settings: Settings
    urls: DatabaseURLs
    engine: AsyncEngine
    registry: AgentRegistry
    store: RunStore
    bus: EventBus
    writer: EventWriter
    approvals: ApprovalStore
    threads: ThreadStore
    budgets: Budgets
    alerts: Alerts
    batcher: Batcher
    redaction: OutputRedaction
    limiter: RateLimiter
    audit: AuditLog
    screener: Screener
    ledger: LedgerWriter = field(init=False)
    """Ledger rows written on a request's path (group commit)."""
    local_tasks: dict[str, asyncio.Task[object]] = field(default_factory=dict)
    """Runs executing in this process, so a cancel can interrupt them at once."""
    cancelled: set[str] = field(default_factory=set)
    """Runs a client cancelled, as opposed to runs interrupted by shutdown (which recover)."""

    def __post_init__(self) -> None:
        self.ledger = LedgerWriter(LedgerStore(self.engine))


_current: list[Runtime] = []


def install_runtime(runtime: Runtime | None) -> None:
    """Make `runtime` the one workflows use (None uninstalls)."""
    _current.clear()
    if runtime is not None:
        _current.append(runtime)


def current_runtime() -> Runtime:
    if not _current:
        msg = "agenthost runtime is not started in this process"
        raise RuntimeError(msg)
    return _current[0]
