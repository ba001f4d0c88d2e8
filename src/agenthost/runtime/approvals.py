"""Human approval of tool calls: a durable wait inside the run, for as long as days.

pydantic-ai collects the calls of tools that need approval as deferred requests and asks the run's
capability for decisions (`handle_deferred_tool_calls`). The run then:

1. records the approvals (a step: the rows, with their deadline, are written once);
2. marks itself `waiting_approval` and emits `approval.required`;
3. waits on `DBOS.recv_async`, which survives restarts: a decision sent while the server was down
   is delivered when the run resumes, and the deadline counts from the first wait;
4. reads the decisions from the `approvals` table in a step (the table is authoritative; the
   message is only a wake-up, so a decision whose message was lost is still found);
5. past the deadline, expires what is still pending (a denial) and carries on.

Approved calls run; denied ones return the denial to the model, which continues without them.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbos import DBOS
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolDenied
from pydantic_core import to_jsonable_python

from agenthost.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from agenthost.runtime.execution import RunExecution
    from agenthost.runtime.runtime import Runtime

__all__ = ["APPROVAL_TOPIC", "approval_id", "await_approvals", "decide"]

APPROVAL_TOPIC = "agenthost.approval"
_DECIDED = ("approved", "denied", "expired")


def approval_id(run_id: str, tool_call_id: str) -> str:
    """Deterministic, so a replayed run asks for the same approvals."""
    return "apr_" + hashlib.sha256(f"{run_id}\x00{tool_call_id}".encode()).hexdigest()[:24]


async def await_approvals(run: RunExecution, requests: DeferredToolRequests) -> DeferredToolResults:
    runtime = run.runtime
    store = runtime.approvals

    async def request() -> dict[str, Any]:
        now = datetime.now(UTC)
        rows = []
        for call in requests.approvals:
            timeout = run.tool_config(call.tool_name).approval_timeout_seconds
            expires = now + timedelta(seconds=timeout or runtime.settings.durability.approval_timeout_seconds)
            rows.append(
                {
                    "id": approval_id(run.run_id, call.tool_call_id),
                    "run_id": run.run_id,
                    "agent": run.spec.agent,
                    "user_id": run.spec.user_id,
                    "tool_call_id": call.tool_call_id,
                    "tool_name": call.tool_name,
                    "args": to_jsonable_python(call.args_as_dict(), fallback=str),
                    "status": "pending",
                    "requested_at": now,
                    "expires_at": expires,
                }
            )
        await store.request(rows)
        return {
            "approvals": [
                {**row, "requested_at": now.isoformat(), "expires_at": row["expires_at"].isoformat()}
                for row in rows
            ]
        }

    recorded = await DBOS.run_step_async({"name": "approval:request"}, request)
    pending = {row["id"]: row for row in recorded["approvals"]}
    await runtime.store.set_status(run.run_id, "waiting_approval", only_from=frozenset({"running"}))
    for row in pending.values():
        run.emit(
            "approval.required",
            {
                "approval_id": row["id"],
                "tool_call_id": row["tool_call_id"],
                "name": row["tool_name"],
                "args": row["args"],
                "expires_at": row["expires_at"],
            },
        )
    await run.flush_events()
    deadline = max(datetime.fromisoformat(row["expires_at"]) for row in pending.values()).timestamp()
    decisions: dict[str, dict[str, Any]] = {}
    while pending:
        # Always wait (even past the deadline) so the run takes the same steps when replayed.
        remaining = max(deadline - time.time(), 0.01)
        woke = await DBOS.recv_async(APPROVAL_TOPIC, timeout_seconds=remaining) is not None
        decided = await DBOS.run_step_async({"name": "approval:read"}, _read, run, list(pending), not woke)
        for row in decided:
            decisions[row["id"]] = row
            pending.pop(row["id"], None)
        if not woke and pending:
            # Past the deadline: everything left was just expired by `_read`.
            break
    await runtime.store.set_status(run.run_id, "running", only_from=frozenset({"waiting_approval"}))
    results = DeferredToolResults()
    for call in requests.approvals:
        row = decisions[approval_id(run.run_id, call.tool_call_id)]
        run.emit(
            "approval.resolved",
            {
                "approval_id": row["id"],
                "tool_call_id": call.tool_call_id,
                "name": call.tool_name,
                "decision": row["status"],
                "by": row["decided_by"],
                "at": row["decided_at"],
                "reason": row["reason"],
            },
        )
        if row["status"] == "approved":
            results.approvals[call.tool_call_id] = True
        else:
            why = f": {row['reason']}" if row["reason"] else ""
            verb = (
                "expired without a decision"
                if row["status"] == "expired"
                else f"was denied by {row['decided_by']}"
            )
            results.approvals[call.tool_call_id] = ToolDenied(f"The call to {call.tool_name} {verb}{why}.")
    return results


async def _read(run: RunExecution, ids: list[str], expire: bool) -> list[dict[str, Any]]:
    """The decided approvals among `ids`; with `expire`, first expire those still pending."""
    store = run.runtime.approvals
    if expire:
        now = datetime.now(UTC)
        for pending_id in ids:
            await store.decide(
                pending_id, "expired", "system:timeout", "no decision before the deadline", now
            )
    rows = await store.of_run(run.run_id, ids)
    return [
        {
            "id": row["id"],
            "status": row["status"],
            "decided_by": row["decided_by"],
            "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
            "reason": row["reason"],
        }
        for row in rows
        if row["status"] in _DECIDED
    ]


async def decide(
    runtime: Runtime, run_id: str, approval: str, *, approve: bool, reason: str | None, by: str
) -> dict[str, Any]:
    """Record a person's decision and wake the run; 409 if it is not pending any more."""
    row = await runtime.approvals.get(approval)
    if row is None or row["run_id"] != run_id:
        msg = f"run {run_id!r} has no approval {approval!r}"
        raise NotFoundError(msg, code="approval_not_found")
    if row["status"] != "pending":
        when = row["decided_at"].isoformat() if row["decided_at"] else "earlier"
        msg = f"approval {approval!r} is already {row['status']} (by {row['decided_by']} at {when})"
        raise ConflictError(msg, code="approval_already_decided")
    run = await runtime.store.get(run_id)
    if run is None or run["status"] != "waiting_approval":
        status = run["status"] if run else "gone"
        msg = f"run {run_id!r} is {status}, not waiting for approval"
        raise ConflictError(msg, code="run_not_waiting")
    status = "approved" if approve else "denied"
    if not await runtime.approvals.decide(approval, status, by, reason, datetime.now(UTC)):
        msg = f"approval {approval!r} was decided by someone else a moment ago"
        raise ConflictError(msg, code="approval_already_decided")
    # The table holds the decision; the message only wakes the run (a lost one costs a delay, not
    # the decision: the run re-reads the table when it wakes or times out).
    await DBOS.send_async(
        run_id, {"approval_id": approval}, APPROVAL_TOPIC, idempotency_key=f"{approval}:decided"
    )
    decided = await runtime.approvals.get(approval)
    assert decided is not None
    return decided
