"""Dead runs, resume, fork (time travel) and the steps timeline, on DBOS's workflow records.

* A run is `dead` when a model call or a tool failed (the error names the step), when it crashed
  its server more than `durability.max_recovery_attempts` times, or when it failed unexpectedly.
  `resume` re-executes it from the failed step: earlier steps replay from the record (no model call
  is made again), later events are dropped and regenerated.
* `fork` starts a new run whose steps before N are copied from the original, so they replay, and
  which executes from step N: debugging "what if" from any point of a run. Approvals it replays
  become its own: decided if the decision is before N, else asked again (`fork_approvals`).
* `steps` is the timeline of checkpointed steps, with timing, tokens, cost and outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID
from pydantic import ValidationError

from agenthost.errors import ConflictError, ContentErasedError, ErrorCode, InvalidRequestError
from agenthost.records import ACTIVE_STATUSES, ERASED, ModelStepRecord
from agenthost.runtime.approvals import fork_approvals
from agenthost.runtime.environment import RunEnvironment
from agenthost.runtime.service import RunService, new_run_id
from agenthost.security.sealing import Sealer
from agenthost.storage.runs import RunStart

__all__ = ["RunRecovery"]

_log = structlog.get_logger(__name__)
_DEAD_DBOS = frozenset({"MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ERROR"})


class RunRecovery:
    """Operations on the durable record of runs."""

    def __init__(self, env: RunEnvironment, service: RunService) -> None:
        self.env = env
        self.service = service
        self.store = env.stores.runs

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's checkpointed steps, oldest first (tool errors opened with the run's key and
        redacted like its events)."""
        row = await self.service.get(run_id)
        sealer = Sealer(await self.store.data_key(run_id))
        redaction = self.env.policies.redaction

        def error_of(sealed: str) -> Any:
            try:
                return redaction.value(row["agent"], sealer.open(sealed))
            except (ContentErasedError, ValueError):
                return ERASED

        return [_step_view(step, error_of) for step in await DBOS.list_workflow_steps_async(run_id)]

    async def resume(self, run_id: str) -> dict[str, Any]:
        """Re-execute a dead run from its failed step (or from its last checkpoint)."""
        row = await self.service.get(run_id)
        if row["status"] != "dead":
            msg = f"run {run_id!r} is {row['status']}; only a dead run can be resumed"
            raise ConflictError(msg, code=ErrorCode.RUN_NOT_RESUMABLE)
        error = row["error"] or {}
        status = await DBOS.get_workflow_status_async(run_id)
        after_seq = int(error.get("seq") or 0)
        await self.store.reopen(run_id, after_seq)
        if status is not None and status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
            await DBOS.resume_workflow_async(run_id)
        else:
            step = error.get("step") or await self._next_step(run_id)
            await DBOS.rewind_workflow_async(run_id, start_step=int(step))
        _log.info("run_resumed", run_id=run_id, from_step=error.get("step"))
        return await self.service.get(run_id)

    async def fork(self, run_id: str, from_step: int) -> dict[str, Any]:
        """A new run: steps before `from_step` replay from this run's record, the rest execute."""
        source = await self.service.get(run_id)
        if source["status"] in ACTIVE_STATUSES:
            msg = f"run {run_id!r} is still {source['status']}; fork it once it has ended"
            raise ConflictError(msg, code=ErrorCode.RUN_NOT_FORKABLE)
        last = await self._next_step(run_id)
        if not 1 <= from_step <= last:
            msg = f"from_step must be between 1 and {last} for this run (see GET /v1/runs/{run_id}/steps)"
            raise InvalidRequestError(msg, code=ErrorCode.INVALID_STEP)
        fork_id = new_run_id()
        now = datetime.now(UTC)
        row = {
            "id": fork_id,
            "agent": source["agent"],
            "status": "running",
            "user_id": source["user_id"],
            "key_id": source.get("key_id"),
            "team": source.get("team"),
            "thread_id": None,
            "input": source["input"],
            "metadata": source["metadata"],
            "forked_from": run_id,
            "fork_step": from_step,
            "created_at": now,
            "started_at": now,
            # The steps it replays were sealed with the source's key: the fork shares it.
            "data_key": await self.store.data_key(run_id),
        }
        await self.store.create(row)
        # Before the fork starts: the approvals it replays become its own (decided or asked again).
        steps = await DBOS.list_workflow_steps_async(run_id)
        tools = self.env.tool_policy(source["agent"])
        await fork_approvals(
            self.env.stores.approvals,
            timeout_of=tools.approval_timeout,
            source=source,
            fork_id=fork_id,
            from_step=from_step,
            steps=steps,
            sealer=Sealer(row["data_key"]),
        )
        self.env.local.starts[fork_id] = RunStart(row["data_key"], from_step, None)
        with SetWorkflowID(fork_id):
            await DBOS.fork_workflow_async(run_id, from_step)
        row.pop("data_key")
        _log.info("run_forked", run_id=fork_id, source=run_id, from_step=from_step)
        return row

    async def _next_step(self, run_id: str) -> int:
        steps = await DBOS.list_workflow_steps_async(run_id)
        return max((step["function_id"] for step in steps), default=0) + 1

    async def reconcile(self, older_than: timedelta = timedelta(seconds=60)) -> dict[str, int]:
        """Settle unfinished rows whose workflow is gone or beyond recovery.

        * no workflow at all (the process died between recording the run and starting it): `failed`;
        * DBOS gave up recovering it (`max_recovery_attempts`), or it errored: `dead`.
        """
        lost: list[str] = []
        dead = 0
        now = datetime.now(UTC)
        for run_id, created_at in await self.store.unfinished():
            status = await DBOS.get_workflow_status_async(run_id)
            if status is None:
                # Young rows may be between their insert and their workflow's start.
                if created_at < now - older_than:
                    lost.append(run_id)
            elif status.status in _DEAD_DBOS:
                error = {
                    "code": "recovery_limit_exceeded"
                    if status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
                    else "run_failed",
                    "message": "the run crashed its server too many times; resume it when the cause is fixed"
                    if status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
                    else str(status.error or "the workflow failed"),
                }
                dead += await self.store.mark_dead(run_id, error, datetime.now(UTC))
        await self.store.fail_lost(lost, datetime.now(UTC), "the server stopped before the run started")
        return {"lost": len(lost), "dead": dead}


def _step_view(step: Any, error_of: Callable[[str], Any]) -> dict[str, Any]:
    name: str = step["function_name"]
    kind, _, label = name.partition(":")
    output = step["output"] if isinstance(step["output"], dict) else {}
    started, completed = step["started_at_epoch_ms"], step["completed_at_epoch_ms"]
    view: dict[str, Any] = {
        "step": step["function_id"],
        "kind": {"model": "model", "tool": "tool", "tool-start": "tool", "approval": "approval"}.get(
            kind, "other"
        ),
        "name": label or name,
        "started_at": _iso(started),
        "completed_at": _iso(completed),
        "duration_ms": (completed - started) if started is not None and completed is not None else None,
        "outcome": "error" if step["error"] is not None else "ok",
    }
    if kind == "model":
        view.update(_model_details(output))
    elif kind == "tool":
        view["outcome"] = output.get("outcome", view["outcome"])
        if view["outcome"] != "ok" and isinstance(output.get("sealed"), str):
            error = error_of(output["sealed"])
            view["error"] = (
                {"type": output["error_type"], "message": error} if output.get("error_type") else error
            )
    elif kind == "tool-start":
        view["name"] = f"{label} (start marker)"
    return view


def _model_details(output: dict[str, Any]) -> dict[str, Any]:
    """What the timeline shows of a model step: its accounting (never sealed)."""
    try:
        record = ModelStepRecord.model_validate(output)
    except ValidationError:
        return {}
    if record.error is not None or record.call is None:
        error = record.error.model_dump() if record.error is not None else None
        return {"outcome": "error", "error": error}
    call = record.call
    return {
        "model": call.model,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cost": {"nanousd": call.cost.nanousd, "status": call.cost.status},
    }


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat()
