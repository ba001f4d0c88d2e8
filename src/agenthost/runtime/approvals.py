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

A fork replays the steps before its fork point from the run it was forked from, including that
run's `approval:request` (whose rows carry that run's approval ids) and, when it was decided before
the fork point, its `approval:read`. The fork still gets approvals of its own (`fork_approvals`,
when it is made): a decision it replays is copied into them, so it continues without waiting; a
request it replays without the decision is asked again, under the fork's own id, so the fork never
waits on an approval that nobody can decide. Decisions are matched by tool call id, not approval id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dbos import DBOS
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolDenied
from pydantic_core import to_jsonable_python

from agenthost.errors import ConflictError, ErrorCode, NotFoundError
from agenthost.records import EventType
from agenthost.runtime.state import RunState
from agenthost.security.sealing import Sealer
from agenthost.storage.approvals import ApprovalStore
from agenthost.storage.runs import RunStore

__all__ = ["APPROVAL_TOPIC", "ApprovalWait", "approval_id", "await_approvals", "decide", "fork_approvals"]

APPROVAL_TOPIC = "agenthost.approval"
_DECIDED = ("approved", "denied", "expired")


@dataclass(frozen=True)
class ApprovalWait:
    """What approval waits use besides the run's state: the approvals table and the run's status."""

    approvals: ApprovalStore
    runs: RunStore


def approval_id(run_id: str, tool_call_id: str) -> str:
    """Deterministic, so a replayed run asks for the same approvals."""
    return "apr_" + hashlib.sha256(f"{run_id}\x00{tool_call_id}".encode()).hexdigest()[:24]


async def await_approvals(
    run: RunState, wait: ApprovalWait, requests: DeferredToolRequests
) -> DeferredToolResults:
    """Record the calls' approvals, wait durably for the decisions, and return them."""
    recorded: list[dict[str, Any]] = run.open(
        await DBOS.run_step_async({"name": "approval:request"}, _request, run, wait, requests)
    )["approvals"]
    own = {row["tool_call_id"]: approval_id(run.run_id, row["tool_call_id"]) for row in recorded}
    call_of = {row["id"]: row["tool_call_id"] for row in recorded}
    rows = recorded
    if any(row["id"] != own[row["tool_call_id"]] for row in recorded):
        # Replayed from the run this one was forked from: wait on this run's own approvals.
        rows = await _adopt(run, wait, recorded)
    # All of them, decided or not: the loop below must take the steps the recorded run took.
    pending = {row["id"]: row for row in rows}
    if any(row["status"] == "pending" for row in rows):
        await wait.runs.set_status(run.run_id, "waiting_approval", only_from=frozenset({"running"}))
    for row in pending.values():
        run.emit(
            EventType.APPROVAL_REQUIRED,
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
        decided = run.open(
            await DBOS.run_step_async({"name": "approval:read"}, _read, run, wait, list(pending), not woke)
        )
        for row in decided:
            # A read step a fork replays names the approvals of the run it was forked from.
            key = own.get(row.get("tool_call_id") or call_of.get(row["id"], ""), row["id"])
            if key != row["id"]:
                await _settle(wait, key, row)
            decisions[key] = {**row, "id": key}
            pending.pop(key, None)
        if not woke and pending:
            # Past the deadline: everything left was just expired by `_read`.
            break
    await wait.runs.set_status(run.run_id, "running", only_from=frozenset({"waiting_approval"}))
    return _results(run, requests, decisions)


async def _request(run: RunState, wait: ApprovalWait, requests: DeferredToolRequests) -> dict[str, Any]:
    """The `approval:request` step: record the pending approvals (rows and their deadlines); what
    DBOS keeps of them is sealed (the calls' arguments)."""
    now = datetime.now(UTC)
    rows = [
        _new_row(
            run.tools.approval_timeout,
            run.run_id,
            {
                "tool_call_id": call.tool_call_id,
                "tool_name": call.tool_name,
                "args": to_jsonable_python(call.args_as_dict(), fallback=str),
            },
            agent=run.spec.agent,
            user_id=run.spec.user_id,
            now=now,
        )
        for call in requests.approvals
    ]
    await wait.approvals.request(rows)
    return run.seal({"approvals": [_recorded(row) for row in rows]})


def _results(
    run: RunState, requests: DeferredToolRequests, decisions: dict[str, dict[str, Any]]
) -> DeferredToolResults:
    """Emit each decision and turn it into pydantic-ai's: approved, or denied with the reason."""
    results = DeferredToolResults()
    for call in requests.approvals:
        row = decisions[approval_id(run.run_id, call.tool_call_id)]
        run.emit(
            EventType.APPROVAL_RESOLVED,
            {
                "approval_id": row["id"],
                "tool_call_id": call.tool_call_id,
                "name": call.tool_name,
                "decision": row["status"],
                "by": row["decided_by"],
                "for": row.get("decided_for"),
                "at": row["decided_at"],
                "reason": row["reason"],
            },
        )
        if row["status"] == "approved":
            results.approvals[call.tool_call_id] = True
        else:
            why = f": {row['reason']}" if row["reason"] else ""
            # The model is told the person's name when an operator decided on their behalf.
            verb = (
                "expired without a decision"
                if row["status"] == "expired"
                else f"was denied by {row.get('decided_for') or row['decided_by']}"
            )
            results.approvals[call.tool_call_id] = ToolDenied(f"The call to {call.tool_name} {verb}{why}.")
    return results


async def _read(run: RunState, wait: ApprovalWait, ids: list[str], expire: bool) -> dict[str, str]:
    """The decided approvals among `ids` (sealed: who decided, and why); with `expire`, first
    expire those still pending."""
    store = wait.approvals
    if expire:
        now = datetime.now(UTC)
        for pending_id in ids:
            await store.decide(
                pending_id, "expired", "system:timeout", "no decision before the deadline", now
            )
    rows = await store.of_run(run.run_id, ids)
    decided = [
        {
            "id": row["id"],
            "tool_call_id": row["tool_call_id"],
            "status": row["status"],
            "decided_by": row["decided_by"],
            "decided_for": row["decided_for"],
            "decided_at": _iso(row["decided_at"]),
            "reason": row["reason"],
        }
        for row in rows
        if row["status"] in _DECIDED
    ]
    return run.seal(decided)


async def fork_approvals(
    store: ApprovalStore,
    *,
    timeout_of: Callable[[str], float],
    source: dict[str, Any],
    fork_id: str,
    from_step: int,
    steps: Sequence[Any],
    sealer: Sealer,
) -> None:
    """Record the approvals of a fork of `source` (its DBOS `steps`) that replays those before `from_step`.

    For each request the fork replays: if it replays the decision too, the fork's approval is
    that decision (so it continues without waiting); otherwise it is pending, with a deadline
    counted from now, for someone to decide on the fork. Written before the fork starts.
    """
    copied = [
        {**step, "output": _opened(sealer, step["output"])}
        for step in steps
        if step["function_id"] < from_step
    ]
    requested = [
        row
        for step in copied
        if step["function_name"] == "approval:request" and isinstance(step["output"], dict)
        for row in step["output"].get("approvals", [])
        if isinstance(row, dict) and {"id", "tool_call_id", "tool_name"} <= row.keys()
    ]
    if not requested:
        return
    call_of = {row["id"]: row["tool_call_id"] for row in requested}
    decided: dict[str, dict[str, Any]] = {}
    for step in copied:
        if step["function_name"] == "approval:read" and isinstance(step["output"], list):
            for row in step["output"]:
                call = row.get("tool_call_id") or call_of.get(row.get("id", ""))
                if call is not None and row.get("status") in _DECIDED:
                    decided[call] = row
    now = datetime.now(UTC)
    rows = []
    for row in requested:
        fresh = _new_row(timeout_of, fork_id, row, agent=source["agent"], user_id=source["user_id"], now=now)
        decision = decided.get(row["tool_call_id"])
        if decision is not None:
            fresh.update(
                status=decision["status"],
                requested_at=datetime.fromisoformat(row["requested_at"]),
                expires_at=datetime.fromisoformat(row["expires_at"]),
                decided_by=decision["decided_by"],
                decided_for=decision.get("decided_for"),
                decided_at=datetime.fromisoformat(decision["decided_at"]) if decision["decided_at"] else now,
                reason=decision["reason"],
            )
        rows.append(fresh)
    await store.request(rows)


def _opened(sealer: Sealer, output: Any) -> Any:
    """A recorded step output, opened when it is sealed (unreadable ones count as nothing)."""
    if isinstance(output, dict) and set(output) == {"sealed"}:
        try:
            return sealer.open(output["sealed"])
        except Exception:
            return None
    return output


async def _adopt(run: RunState, wait: ApprovalWait, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This fork's own approvals for requests it replayed (in the recorded order).

    `fork_approvals` wrote them when the fork was made; any missing (a fork made by an earlier
    version) are asked for now, so the run never waits on an approval nobody can decide.
    """
    store = wait.approvals
    ids = [approval_id(run.run_id, row["tool_call_id"]) for row in recorded]
    found = {row["id"] for row in await store.of_run(run.run_id, ids)}
    now = datetime.now(UTC)
    await store.request(
        [
            _new_row(
                run.tools.approval_timeout,
                run.run_id,
                row,
                agent=run.spec.agent,
                user_id=run.spec.user_id,
                now=now,
            )
            for row, new_id in zip(recorded, ids, strict=True)
            if new_id not in found
        ]
    )
    # Read back: on a replay of this run, the rows written the first time are the ones that count.
    current = {row["id"]: row for row in await store.of_run(run.run_id, ids)}
    return [_recorded(current[new_id]) for new_id in ids]


async def _settle(wait: ApprovalWait, own_id: str, decision: dict[str, Any]) -> None:
    """A fork replayed a decision: make sure its own approval shows it (no-op once it does)."""
    at = datetime.fromisoformat(decision["decided_at"]) if decision["decided_at"] else datetime.now(UTC)
    await wait.approvals.decide(
        own_id,
        decision["status"],
        decision["decided_by"],
        decision["reason"],
        at,
        on_behalf_of=decision.get("decided_for"),
    )


def _new_row(
    timeout_of: Callable[[str], float],
    run_id: str,
    call: dict[str, Any],
    *,
    agent: str,
    user_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A pending approval row for `call` (tool_call_id, tool_name, args), due by its tool's deadline."""
    timeout = timeout_of(call["tool_name"])
    return {
        "id": approval_id(run_id, call["tool_call_id"]),
        "run_id": run_id,
        "agent": agent,
        "user_id": user_id,
        "tool_call_id": call["tool_call_id"],
        "tool_name": call["tool_name"],
        "args": call["args"],
        "status": "pending",
        "requested_at": now,
        "expires_at": now + timedelta(seconds=timeout),
    }


def _recorded(row: dict[str, Any]) -> dict[str, Any]:
    """An approval row as `approval:request` records it (JSON: dates as ISO 8601)."""
    keys = ("id", "run_id", "agent", "user_id", "tool_call_id", "tool_name", "args", "status")
    return {
        **{key: row[key] for key in keys},
        "requested_at": row["requested_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def decide(
    approvals: ApprovalStore,
    runs: RunStore,
    run_id: str,
    approval: str,
    *,
    approve: bool,
    reason: str | None,
    by: str,
    on_behalf_of: str | None = None,
) -> dict[str, Any]:
    """Record a decision (made by `by`, the authenticated caller, possibly for `on_behalf_of`) and
    wake the run; 409 if it is not pending any more."""
    row = await approvals.get(approval)
    if row is None or row["run_id"] != run_id:
        msg = f"run {run_id!r} has no approval {approval!r}"
        raise NotFoundError(msg, code=ErrorCode.APPROVAL_NOT_FOUND)
    if row["status"] != "pending":
        when = row["decided_at"].isoformat() if row["decided_at"] else "earlier"
        msg = f"approval {approval!r} is already {row['status']} (by {row['decided_by']} at {when})"
        raise ConflictError(msg, code=ErrorCode.APPROVAL_ALREADY_DECIDED)
    run = await runs.get(run_id)
    if run is None or run["status"] != "waiting_approval":
        status = run["status"] if run else "gone"
        msg = f"run {run_id!r} is {status}, not waiting for approval"
        raise ConflictError(msg, code=ErrorCode.RUN_NOT_WAITING)
    status = "approved" if approve else "denied"
    if not await approvals.decide(approval, status, by, reason, datetime.now(UTC), on_behalf_of=on_behalf_of):
        msg = f"approval {approval!r} was decided by someone else a moment ago"
        raise ConflictError(msg, code=ErrorCode.APPROVAL_ALREADY_DECIDED)
    # The table holds the decision; the message only wakes the run (a lost one costs a delay, not
    # the decision: the run re-reads the table when it wakes or times out).
    await DBOS.send_async(
        run_id, {"approval_id": approval}, APPROVAL_TOPIC, idempotency_key=f"{approval}:decided"
    )
    decided = await approvals.get(approval)
    assert decided is not None
    return decided
