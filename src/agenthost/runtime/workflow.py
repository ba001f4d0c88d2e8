"""The DBOS engine of a process: the durable run workflow, its queues, and scheduled jobs.

A run's id is its DBOS workflow id. DBOS records the workflow's input and each step's output in
its system database (sealed with the run's data key where they hold what the run was asked and
said); a process that restarts with the same `application_version` and `executor_id` resumes
every unfinished run from its last completed step.

DBOS starts workflows on its own (recovery, queues, schedules), so it must find what a run needs
without arguments: `DurableRuns` registers the workflow as a closure over the process's
`RunEnvironment` (DBOS keeps the registration; agenthost keeps no module-level state), and
unregisters everything when it shuts down.

Queues: background runs go through `agenthost-runs` (bounded per process). Runs on a conversation
thread go through `agenthost-threads`, partitioned by (a digest of) the thread id with one run at
a time per partition, so a second run on a busy thread waits for the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, DBOSClient, DBOSConfig, ScheduleInput, SetEnqueueOptions, SetWorkflowID

from agenthost.errors import ErrorCode, RunError
from agenthost.runtime.environment import RunEnvironment
from agenthost.runtime.execution import RunExecution
from agenthost.runtime.spec import RunSpec
from agenthost.security.sealing import Sealer
from agenthost.storage.engine import DatabaseURLs, create_dbos_engine
from agenthost.storage.runs import RunStart

__all__ = ["RUN_QUEUE", "THREAD_QUEUE", "WORKFLOW_NAME", "DurableRuns", "ScheduledJob"]

RUN_QUEUE = "agenthost-runs"
THREAD_QUEUE = "agenthost-threads"
WORKFLOW_NAME = "agenthost.run"
_log = structlog.get_logger(__name__)

ScheduledJob = Callable[[datetime], Awaitable[dict[str, int]]]
"""A job run on a schedule (its time as the argument); what it returns is its step's record."""


class DurableRuns:
    """Configures, launches and stops DBOS for this process, and starts runs on it."""

    def __init__(self, env: RunEnvironment, urls: DatabaseURLs) -> None:
        self.env = env
        self.urls = urls
        self._engine: sa.Engine | None = None
        self._workflow: Any = None
        self._queues: dict[str, Any] = {}
        self._schedules: list[ScheduleInput] = []

    def configure(self) -> None:
        """Create the process's DBOS instance and register the run workflow (before `launch`)."""
        durability = self.env.settings.durability
        config: DBOSConfig = {
            "name": durability.app_name,
            "system_database_url": self.urls.dbos_url,
            "application_version": durability.application_version,
            "executor_id": durability.executor_id,
            "log_level": "WARNING",
            "run_migrations": True,
        }
        self._engine = create_dbos_engine(self.urls)
        if self._engine is not None:
            config["system_database_engine"] = self._engine
        DBOS(config=config)
        env = self.env

        async def run(payload: dict[str, Any]) -> dict[str, Any]:
            """Execute one run; DBOS calls it again with the same input to recover the run."""
            return await _execute(env, payload)

        # A run whose server crashed this many times is left to an operator (status `dead`).
        self._workflow = DBOS.workflow(
            name=WORKFLOW_NAME, max_recovery_attempts=durability.max_recovery_attempts
        )(run)
        # DBOS installs its own console handler; route its records through agenthost's formatter
        # instead, and keep only warnings (it logs every launch detail at INFO).
        dbos_logger = logging.getLogger("dbos")
        dbos_logger.handlers[:] = []
        dbos_logger.propagate = True
        dbos_logger.setLevel(logging.WARNING)

    def add_schedule(self, name: str, cron: str, job: ScheduledJob) -> None:
        """Run `job` on `cron` (UTC) once per firing across all replicas (its workflow id is the
        schedule and the time), and once more right after launch. Call before `launch`."""

        async def scheduled(scheduled_at: datetime, context: Any) -> None:  # noqa: ARG001 - DBOS's signature
            at = scheduled_at if scheduled_at.tzinfo is not None else scheduled_at.replace(tzinfo=UTC)
            await DBOS.run_step_async({"name": f"{name}:run"}, job, at)

        workflow = DBOS.workflow(name=f"agenthost.{name}")(scheduled)
        self._schedules.append(
            ScheduleInput(schedule_name=f"agenthost-{name}", workflow_fn=workflow, schedule=cron)
        )

    async def launch(self) -> list[str]:
        """Launch DBOS from inside the server's event loop, so recovered and queued runs execute on
        it; then its schedules. Returns the ids of the runs DBOS resumes: those a previous process
        of this executor and application version left executing."""
        durability = self.env.settings.durability
        recovered = await asyncio.to_thread(self._pending_runs)
        DBOS.launch()
        concurrency = durability.queue_concurrency
        self._queues[RUN_QUEUE] = await DBOS.register_queue_async(
            RUN_QUEUE, worker_concurrency=concurrency, polling_interval_sec=0.2, on_conflict="always_update"
        )
        self._queues[THREAD_QUEUE] = await DBOS.register_queue_async(
            THREAD_QUEUE,
            worker_concurrency=concurrency,
            partition_concurrency=1,
            polling_interval_sec=0.1,
            on_conflict="always_update",
        )
        if self._schedules:
            # Every replica may do this: the schedule is one row and each firing runs once. A pass
            # at start-up means a deployment that was down past a firing does not wait for the next.
            await DBOS.apply_schedules_async(self._schedules)
            for schedule in self._schedules:
                await asyncio.to_thread(DBOS.trigger_schedule, schedule["schedule_name"])
        return recovered

    def _pending_runs(self) -> list[str]:
        """The runs DBOS will recover at launch, read before it launches (once launched, recovery
        re-enqueues them at once, and they can no longer be told from runs that were only queued).

        Same selection as DBOS's own: PENDING workflows of this application, executor and version."""
        durability = self.env.settings.durability
        try:
            client = DBOSClient(
                system_database_url=None if self._engine is not None else self.urls.dbos_url,
                system_database_engine=self._engine,
                application_name=durability.app_name,
                lazy=True,
                retry_connection_errors=False,
            )
            try:
                pending = client.list_workflows(
                    status="PENDING",
                    name=WORKFLOW_NAME,
                    executor_id=durability.executor_id,
                    app_version=durability.application_version,
                    application_name=durability.app_name,
                    load_input=False,
                    load_output=False,
                )
            finally:
                client.destroy()
        except Exception as exc:
            # A first start has no DBOS tables yet; otherwise recovery goes on, unreported.
            _log.debug("recovered_runs_unknown", error=f"{type(exc).__name__}: {exc}"[:300])
            return []
        return [status.workflow_id for status in pending]

    async def start(self, run_id: str, spec: RunSpec, start: RunStart) -> Any:
        """Start, or enqueue, the run's workflow; starting an existing id is a no-op that returns
        its handle. The spec is sealed with the run's data key before DBOS records it."""
        if start.data_key is None:
            msg = f"run {run_id} has no data key: its content was erased"
            raise RunError(msg, code=ErrorCode.RUN_FAILED)
        payload = {"sealed": Sealer(start.data_key).seal(spec.model_dump(mode="json"))}
        if not spec.queued:
            # It executes here: hand it its key and fork point, sparing it a read of its row.
            self.env.local.starts[run_id] = start
        with SetWorkflowID(run_id):
            if spec.thread_id is not None:
                with SetEnqueueOptions(queue_partition_key=_partition(spec.thread_id)):
                    return await self._queues[THREAD_QUEUE].enqueue_async(self._workflow, payload)
            if spec.queued:
                return await self._queues[RUN_QUEUE].enqueue_async(self._workflow, payload)
            return await DBOS.start_workflow_async(self._workflow, payload)

    def shutdown(self, grace_seconds: float) -> None:
        """Stop DBOS and forget its registrations (a later start in this process registers anew)."""
        DBOS.destroy(workflow_completion_timeout_sec=max(0, int(grace_seconds)), destroy_registry=True)
        if self._engine is not None:
            self._engine.dispose()
        # DBOS made its (now stopped) thread pool the loop's default executor; give the loop a
        # working one back, for `asyncio.to_thread` after shutdown (or a runtime opened again).
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))


def _partition(thread_id: str) -> str:
    """A thread's queue partition: a digest, so DBOS's records never hold the thread id itself."""
    return "thread-" + hashlib.sha256(thread_id.encode()).hexdigest()[:32]


async def _execute(env: RunEnvironment, payload: dict[str, Any]) -> dict[str, Any]:
    run_id = DBOS.workflow_id
    assert run_id is not None
    start = env.local.starts.pop(run_id, None) or await env.stores.runs.start_info(run_id)
    if start is None:
        msg = f"run {run_id} has no row: it cannot be executed"
        raise RunError(msg, code=ErrorCode.RUN_LOST)
    if "sealed" in payload:
        spec = RunSpec.model_validate(Sealer(start.data_key).open(payload["sealed"]))
    else:  # a run recorded before inputs were sealed
        spec = RunSpec.model_validate(payload)
    task = asyncio.current_task()
    if task is not None:
        env.local.tasks[run_id] = task
    try:
        return await RunExecution(env, run_id, spec, start).execute()
    finally:
        env.local.tasks.pop(run_id, None)
