"""The durable run workflow and the DBOS engine that executes it.

A run's id is its DBOS workflow id. DBOS records the workflow's input and each step's output in
its system database; a process that restarts with the same `application_version` and
`executor_id` resumes every unfinished run from its last completed step.

Queues: background runs go through `agenthost-runs` (bounded per process). Runs on a conversation
thread go through `agenthost-threads`, partitioned by thread id with one run at a time per
partition, so a second run on a busy thread waits for the first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, DBOSClient, DBOSConfig, SetEnqueueOptions, SetWorkflowID

from agenthost.runtime.execution import RunExecution
from agenthost.runtime.runtime import current_runtime
from agenthost.runtime.spec import RunSpec
from agenthost.settings import DurabilitySettings, Settings
from agenthost.storage.engine import DatabaseURLs, create_dbos_engine

__all__ = [
    "RUN_QUEUE",
    "THREAD_QUEUE",
    "WORKFLOW_NAME",
    "configure_dbos",
    "launch_dbos",
    "shutdown_dbos",
    "start_run",
]

RUN_QUEUE = "agenthost-runs"
THREAD_QUEUE = "agenthost-threads"
WORKFLOW_NAME = "agenthost.run"
_queues: dict[str, Any] = {}
_workflow: list[Any] = []
# Where DBOS keeps its records (its URL, and its engine when agenthost shapes it), for `launch_dbos`.
_system: dict[str, Any] = {}
_log = structlog.get_logger(__name__)


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute one run; DBOS calls it again with the same input to recover the run."""
    runtime = current_runtime()
    run_id = DBOS.workflow_id
    assert run_id is not None
    task = asyncio.current_task()
    if task is not None:
        runtime.local_tasks[run_id] = task
    try:
        return await RunExecution(runtime, run_id, RunSpec.model_validate(spec)).execute()
    finally:
        runtime.local_tasks.pop(run_id, None)


def configure_dbos(settings: Settings, urls: DatabaseURLs) -> None:
    """Create the process's DBOS instance (one per process) and register the run workflow."""
    durability = settings.durability
    config: DBOSConfig = {
        "name": durability.app_name,
        "system_database_url": urls.dbos_url,
        "application_version": durability.application_version,
        "executor_id": durability.executor_id,
        "log_level": "WARNING",
        "run_migrations": True,
    }
    engine = create_dbos_engine(urls)
    if engine is not None:
        config["system_database_engine"] = engine
    _system.update(url=urls.dbos_url, engine=engine)
    DBOS(config=config)
    if not _workflow:
        # Registered here, not at import, because the recovery limit comes from the configuration.
        # A run whose server crashed this many times is left to an operator (status `dead`).
        _workflow.append(
            DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=durability.max_recovery_attempts)(_run)
        )
    # DBOS installs its own console handler; route its records through agenthost's formatter
    # instead, and keep only warnings (it logs every launch detail at INFO).
    dbos_logger = logging.getLogger("dbos")
    dbos_logger.handlers[:] = []
    dbos_logger.propagate = True
    dbos_logger.setLevel(logging.WARNING)


async def launch_dbos(settings: Settings) -> list[str]:
    """Launch DBOS from inside the server's event loop, so recovered and queued runs execute on it.

    Returns the ids of the runs DBOS resumes: those a previous process of this executor and
    application version left executing."""
    recovered = await asyncio.to_thread(_pending_runs, settings.durability)
    DBOS.launch()
    concurrency = settings.durability.queue_concurrency
    _queues[RUN_QUEUE] = await DBOS.register_queue_async(
        RUN_QUEUE, worker_concurrency=concurrency, polling_interval_sec=0.2, on_conflict="always_update"
    )
    _queues[THREAD_QUEUE] = await DBOS.register_queue_async(
        THREAD_QUEUE,
        worker_concurrency=concurrency,
        partition_concurrency=1,
        polling_interval_sec=0.1,
        on_conflict="always_update",
    )
    return recovered


def _pending_runs(durability: DurabilitySettings) -> list[str]:
    """The runs DBOS will recover at launch, read before it launches (once launched, recovery
    re-enqueues them at once, and they can no longer be told from runs that were only queued).

    Same selection as DBOS's own: PENDING workflows of this application, executor and version."""
    engine: sa.Engine | None = _system.get("engine")
    try:
        client = DBOSClient(
            system_database_url=None if engine is not None else _system["url"],
            system_database_engine=engine,
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


def shutdown_dbos(grace_seconds: float) -> None:
    DBOS.destroy(workflow_completion_timeout_sec=max(0, int(grace_seconds)))


async def start_run(run_id: str, spec: RunSpec) -> Any:
    """Start, or enqueue, the workflow; starting an existing id is a no-op that returns its handle."""
    workflow = _workflow[0]
    payload = spec.model_dump(mode="json")
    with SetWorkflowID(run_id):
        if spec.thread_id is not None:
            with SetEnqueueOptions(queue_partition_key=spec.thread_id):
                return await _queues[THREAD_QUEUE].enqueue_async(workflow, payload)
        if spec.queued:
            return await _queues[RUN_QUEUE].enqueue_async(workflow, payload)
        return await DBOS.start_workflow_async(workflow, payload)
