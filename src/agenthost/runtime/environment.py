"""What executing and serving runs needs in one process, built once by the composition root
(`runtime/process.py`) and passed explicitly: to the durable workflow (which DBOS may start on its
own, at recovery or from a queue: it reaches this through the closure it was registered with, not
through a global), to the run service and to the server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agenthost.costs.alerts import Alerts
from agenthost.costs.budgets import Budgets
from agenthost.gateway.batch import Batcher
from agenthost.runtime.events import EventBus, EventWriter
from agenthost.runtime.registry import AgentRegistry
from agenthost.runtime.state import EventSink, ToolPolicy
from agenthost.security.audit import AuditLog
from agenthost.security.output import OutputRedaction
from agenthost.security.ratelimit import RateLimiter
from agenthost.security.screening import Screener
from agenthost.settings import Settings
from agenthost.storage.approvals import ApprovalStore
from agenthost.storage.ledger import LedgerStore, LedgerWriter
from agenthost.storage.runs import RunStart, RunStore
from agenthost.storage.threads import ThreadStore

__all__ = ["LocalRuns", "Policies", "RunEnvironment", "RunStores"]


@dataclass(frozen=True)
class RunStores:
    """The tables of runs: runs and events, approvals, threads, the spend ledger."""

    runs: RunStore
    approvals: ApprovalStore
    threads: ThreadStore
    ledger: LedgerStore


@dataclass(frozen=True)
class Policies:
    """What every run and call is held to: budgets and alerts, rate limits, screening, redaction,
    and the audit log that records it."""

    budgets: Budgets
    alerts: Alerts
    limiter: RateLimiter
    screener: Screener
    redaction: OutputRedaction
    audit: AuditLog


@dataclass
class LocalRuns:
    """Runs executing in this process."""

    tasks: dict[str, asyncio.Task[object]] = field(default_factory=dict)
    """Their tasks, so that a cancel interrupts them at once."""
    cancelled: set[str] = field(default_factory=set)
    """Runs a client cancelled, as opposed to runs interrupted by shutdown (which recover)."""
    starts: dict[str, RunStart] = field(default_factory=dict)
    """What the request that started a run hands its workflow in this process (its data key and
    fork point; a recovered or queued run reads them from its row instead)."""


@dataclass(frozen=True)
class RunEnvironment:
    """Settings, agents, stores, policies and event plumbing of this process."""

    settings: Settings
    registry: AgentRegistry
    stores: RunStores
    policies: Policies
    events: EventSink
    batcher: Batcher
    ledger: LedgerWriter
    """Ledger rows written on a request's path (front-door calls, routing classifiers)."""
    local: LocalRuns = field(default_factory=LocalRuns)

    def tool_policy(self, agent: str) -> ToolPolicy:
        """How `agent`'s tools are executed and approved."""
        config = self.settings.agents.get(agent)
        return ToolPolicy(
            config.tools if config is not None else {},
            self.settings.default_tool_risk,
            self.settings.durability.approval_timeout_seconds,
        )

    @property
    def bus(self) -> EventBus:
        return self.events.bus

    @property
    def writer(self) -> EventWriter:
        return self.events.writer
