"""The durable run workflow and the DBOS engine that executes it.

A run's id is its DBOS workflow id. DBOS records the workflow's input and each step's output in
its system database; a process that restarts with the same `application_version` and
`executor_id` resumes every unfinished run from its last completed step.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

from agenthost.runtime.execution import RunExecution
from agenthost.runtime.runtime import current_runtime
from agenthost.runtime.spec import RunSpec
from agenthost.settings import Settings
from agenthost.storage.engine import DatabaseURLs, create_dbos_engine

__all__ = ["RUN_QUEUE", "configure_dbos", "launch_dbos", "run_workflow", "shutdown_dbos", "start_run"]

RUN_QUEUE = "agenthost-runs"
_queue: list[Any] = []  # the run queue, registered at launch
WORKFLOW_NAME = "agenthost.run"


@DBOS.workflow(name=WORKFLOW_NAME)
async def run_workflow(spec: dict[str, Any]) -> dict[str, Any]:
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
    """Create the process's DBOS instance (one per process)."""
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
    DBOS(config=config)
    # DBOS installs its own console handler; route its records through agenthost's formatter
    # instead, and keep only warnings (it logs every launch detail at INFO).
    dbos_logger = logging.getLogger("dbos")
    dbos_logger.handlers[:] = []
    dbos_logger.propagate = True
    dbos_logger.setLevel(logging.WARNING)


async def launch_dbos(settings: Settings) -> None:
    """Launch DBOS from inside the server's event loop, so recovered and queued runs execute on it."""
    DBOS.launch()
    _queue[:] = [
        await DBOS.register_queue_async(
            RUN_QUEUE,
            worker_concurrency=settings.durability.queue_concurrency,
            polling_interval_sec=0.2,
            on_conflict="always_update",
        )
    ]


def shutdown_dbos(grace_seconds: float) -> None:
    DBOS.destroy(workflow_completion_timeout_sec=max(0, int(grace_seconds)))


async def start_run(run_id: str, spec: RunSpec, *, background: bool) -> Any:
    """Start (or, for a background run, enqueue) the workflow; starting an existing id is a no-op."""
    with SetWorkflowID(run_id):
        if background:
            return await _queue[0].enqueue_async(run_workflow, spec.model_dump(mode="json"))
        return await DBOS.start_workflow_async(run_workflow, spec.model_dump(mode="json"))
