"""Human approval of tool calls: a durable wait that survives restarts, times out, and is audited."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agenthost.testing import MockLLMServer
from tests.durability.conftest import lines
from tests.harness import Server, collect_sse, wait_for_status

ENDED = {"succeeded", "failed", "dead", "cancelled"}


def pending_approval(client: httpx.Client, run_id: str) -> dict[str, Any]:
    wait_for_status(client, run_id, {"waiting_approval"})
    approvals = client.get("/v1/approvals", params={"run_id": run_id}).json()["data"]
    assert len(approvals) == 1
    return approvals[0]


def test_approve_runs_the_tool_once_and_records_who_and_when(
    durable_server: Server, mock: MockLLMServer, shared_tool_log: Path
) -> None:
    item = "[approve] laptop"
    with durable_server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": item}).json()["id"]
        approval = pending_approval(client, run_id)
        assert approval["status"] == "pending"
        assert approval["tool"] == "pay"
        assert approval["args"] == {"item": item}
        assert lines(shared_tool_log / "pay.log", item) == []  # nothing happens before the decision
        listed = client.get("/v1/approvals", params={"status": "pending", "tool": "pay"}).json()["data"]
        assert approval["id"] in [a["id"] for a in listed]

        url = f"/v1/runs/{run_id}/approvals/{approval['id']}"
        decided = client.post(url, json={"decision": "approve", "reason": "ok by me", "by": "dana"})
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved"
        # The admin key decided, for dana: both are recorded, neither in place of the other.
        assert decided.json()["decided_by"] == "admin-key"
        assert decided.json()["decided_for"] == "dana"

        again = client.post(url, json={"decision": "approve"})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "approval_already_decided"

        run = wait_for_status(client, run_id, ENDED)
        events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
        late = client.post(url, json={"decision": "deny"})
    assert run["status"] == "succeeded"
    assert run["output"] == f"after approval: paid {item}"
    assert lines(shared_tool_log / "pay.log", item) == [item]
    types = [e.event for e in events]
    assert types.index("approval.required") < types.index("approval.resolved") < types.index("tool.result")
    resolved = next(e.json() for e in events if e.event == "approval.resolved")
    assert resolved["decision"] == "approved"
    assert resolved["by"] == "admin-key"
    assert resolved["for"] == "dana"
    assert resolved["reason"] == "ok by me"
    assert resolved["at"]
    assert late.status_code == 409
    with durable_server.client() as client:
        listed = client.get("/v1/approvals", params={"run_id": run_id, "status": "approved"}).json()["data"]
        audit = client.get("/v1/audit", params={"action": "approval.decided", "limit": 1000}).json()["data"]
    assert [(a["decided_by"], a["decided_for"]) for a in listed] == [("admin-key", "dana")]
    entry = next(e for e in audit if e["target"] == approval["id"])
    assert entry["actor"] == "admin-key"
    assert entry["details"]["decided_for"] == "dana"


def test_deny_continues_without_the_tool(
    durable_server: Server, mock: MockLLMServer, shared_tool_log: Path
) -> None:
    item = "[approve] yacht"
    with durable_server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": item}).json()["id"]
        approval = pending_approval(client, run_id)
        url = f"/v1/runs/{run_id}/approvals/{approval['id']}"
        assert (
            client.post(url, json={"decision": "deny", "reason": "too pricey", "by": "lee"}).status_code
            == 200
        )
        run = wait_for_status(client, run_id, ENDED)
    assert run["status"] == "succeeded"
    assert run["output"] == "after approval: The call to pay was denied by lee: too pricey."
    assert lines(shared_tool_log / "pay.log", item) == []


def test_timeout_denies(durable_server: Server, mock: MockLLMServer, shared_tool_log: Path) -> None:
    item = "[reserve] patience"
    with durable_server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": item}).json()["id"]
        approval = pending_approval(client, run_id)
        run = wait_for_status(client, run_id, ENDED, timeout=30)
        after = client.get("/v1/approvals", params={"run_id": run_id, "status": "expired"}).json()["data"]
        late = client.post(f"/v1/runs/{run_id}/approvals/{approval['id']}", json={"decision": "approve"})
    assert run["status"] == "succeeded"
    assert run["output"] == (
        "after approval: The call to reserve expired without a decision: no decision before the deadline."
    )
    assert [a["id"] for a in after] == [approval["id"]]
    assert after[0]["decided_by"] == "system:timeout"
    assert lines(shared_tool_log / "reserve.log", item) == []
    assert late.status_code == 409


def test_cancel_while_waiting_closes_the_approval(durable_server: Server, mock: MockLLMServer) -> None:
    with durable_server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[approve] never mind"}).json()["id"]
        approval = pending_approval(client, run_id)
        assert client.post(f"/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
        deadline = time.monotonic() + 10
        while client.get("/v1/approvals", params={"run_id": run_id}).json()["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        closed = client.get("/v1/approvals", params={"run_id": run_id, "status": "cancelled"}).json()["data"]
        late = client.post(f"/v1/runs/{run_id}/approvals/{approval['id']}", json={"decision": "approve"})
    assert [a["id"] for a in closed] == [approval["id"]]
    assert late.status_code == 409


def test_approval_errors(durable_server: Server, mock: MockLLMServer) -> None:
    with durable_server.client() as client:
        done = client.post("/v1/agents/crashy/run", json={"input": "plain question"}).json()
        missing = client.post(f"/v1/runs/{done['id']}/approvals/apr_nope", json={"decision": "approve"})
        bad = client.post(f"/v1/runs/{done['id']}/approvals/apr_nope", json={"decision": "maybe"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "approval_not_found"
    assert bad.status_code == 422


def test_approval_survives_a_crash(
    make_server: Callable[..., Server], mock: MockLLMServer, tool_log: Path
) -> None:
    """Waiting for approval, SIGKILL, restart, approve over HTTP: the run finishes, the tool ran once."""
    server = make_server().start()
    with server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[approve] crash-proof"}).json()["id"]
        approval = pending_approval(client, run_id)
    server.kill()
    calls_before = mock.stats()["total_calls"]

    restarted = make_server().start()
    with restarted.client() as client:
        time.sleep(0.5)
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "waiting_approval"
        url = f"/v1/runs/{run_id}/approvals/{approval['id']}"
        assert client.post(url, json={"decision": "approve", "by": "ops"}).status_code == 200
        run = wait_for_status(client, run_id, ENDED)
    assert run["status"] == "succeeded"
    assert run["output"] == "after approval: paid [approve] crash-proof"
    assert lines(tool_log / "pay.log") == ["[approve] crash-proof"]
    # The first model call was replayed from the record after the restart, not made again.
    assert mock.stats()["total_calls"] == calls_before + 1


def test_only_roles_that_decide_for_others_may_name_someone(
    durable_server: Server, mock: MockLLMServer
) -> None:
    """A user deciding on its own run is recorded as itself; naming someone else in `by` is a 403."""
    with durable_server.client() as admin:
        made = admin.post("/v1/admin/keys", json={"name": "approver", "role": "user", "user_id": "uma"})
        assert made.status_code == 201, made.text
    with durable_server.client(key=made.json()["key"]) as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[approve] my own call"}).json()["id"]
        approval = pending_approval(client, run_id)
        url = f"/v1/runs/{run_id}/approvals/{approval['id']}"
        named = client.post(url, json={"decision": "approve", "by": "the-boss"})
        still = client.get("/v1/approvals", params={"run_id": run_id}).json()["data"]
        mine = client.post(url, json={"decision": "approve", "by": "uma"})  # naming oneself is no claim
        run = wait_for_status(client, run_id, ENDED)
    with durable_server.client() as admin:
        audit = admin.get("/v1/audit", params={"action": "approval.decided", "limit": 1000}).json()["data"]
    assert named.status_code == 403
    assert named.json()["error"]["code"] == "forbidden"
    assert [a["status"] for a in still] == ["pending"]
    assert mine.status_code == 200, mine.text
    assert (mine.json()["decided_by"], mine.json()["decided_for"]) == ("uma", None)
    assert run["status"] == "succeeded"
    entry = next(e for e in audit if e["target"] == approval["id"])
    assert entry["actor"] == f"key:{made.json()['id']}"
    assert entry["actor_user"] == "uma"
    assert entry["details"]["decided_for"] is None


def approved_run(client: httpx.Client, item: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """A run that asked for approval of `pay`, got it (from the admin, for dana) and finished."""
    run_id = client.post("/v1/agents/crashy/runs", json={"input": item}).json()["id"]
    approval = pending_approval(client, run_id)
    url = f"/v1/runs/{run_id}/approvals/{approval['id']}"
    assert client.post(url, json={"decision": "approve", "by": "dana"}).status_code == 200
    assert wait_for_status(client, run_id, ENDED)["status"] == "succeeded"
    return run_id, approval, client.get(f"/v1/runs/{run_id}/steps").json()["data"]


def approval_events(client: httpx.Client, run_id: str) -> tuple[list[str], list[tuple[str, str]]]:
    events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
    required = [e.json()["approval_id"] for e in events if e.event == "approval.required"]
    resolved = [e.json() for e in events if e.event == "approval.resolved"]
    return required, [(data["approval_id"], data["decision"]) for data in resolved]


def test_a_fork_after_the_decision_replays_it(
    durable_server: Server, mock: MockLLMServer, shared_tool_log: Path
) -> None:
    """Forked after the approval was decided: the fork replays the decision and never waits."""
    item = "[approve] fork after the decision"
    with durable_server.client() as client:
        source_id, source_approval, steps = approved_run(client, item)
        read = next(s["step"] for s in steps if (s["kind"], s["name"]) == ("approval", "read"))
        # The approved call's start marker (the call runs again) and the last model call.
        for from_step in (read + 1, steps[-1]["step"]):
            fork = client.post(f"/v1/runs/{source_id}/fork", json={"from_step": from_step}).json()
            done = wait_for_status(client, fork["id"], ENDED)
            assert done["status"] == "succeeded", (from_step, done)
            assert done["output"] == f"after approval: paid {item}"
            listing = {"run_id": fork["id"]}
            assert client.get("/v1/approvals", params=listing).json()["data"] == []  # nothing pending
            own = client.get("/v1/approvals", params={**listing, "status": "approved"}).json()["data"]
            assert len(own) == 1
            assert own[0]["id"] != source_approval["id"]
            assert (own[0]["decided_by"], own[0]["decided_for"]) == ("admin-key", "dana")
            assert approval_events(client, fork["id"]) == ([own[0]["id"]], [(own[0]["id"], "approved")])
            late = client.post(f"/v1/runs/{fork['id']}/approvals/{own[0]['id']}", json={"decision": "deny"})
            assert late.status_code == 409, late.text
    assert lines(shared_tool_log / "pay.log", item) == [item, item]


def test_a_fork_before_the_decision_asks_for_its_own(
    durable_server: Server, mock: MockLLMServer, shared_tool_log: Path
) -> None:
    """Forked at or before the request, or while it waited: the fork asks again, under its own id."""
    item = "[approve] fork before the decision"
    with durable_server.client() as client:
        source_id, source_approval, steps = approved_run(client, item)
        read = next(s["step"] for s in steps if (s["kind"], s["name"]) == ("approval", "read"))
        for from_step in range(1, read + 1):
            fork = client.post(f"/v1/runs/{source_id}/fork", json={"from_step": from_step}).json()
            approval = pending_approval(client, fork["id"])
            assert approval["id"] != source_approval["id"]
            parents = client.post(
                f"/v1/runs/{fork['id']}/approvals/{source_approval['id']}", json={"decision": "approve"}
            )
            assert parents.status_code == 404
            url = f"/v1/runs/{fork['id']}/approvals/{approval['id']}"
            decided = client.post(url, json={"decision": "deny", "reason": f"not from {from_step}"})
            assert decided.status_code == 200, decided.text
            done = wait_for_status(client, fork["id"], ENDED)
            assert done["status"] == "succeeded", (from_step, done)
            assert done["output"] == (
                f"after approval: The call to pay was denied by admin-key: not from {from_step}."
            )
            assert approval_events(client, fork["id"]) == ([approval["id"]], [(approval["id"], "denied")])
        # A fork of that fork, after its own decision: the denial replays, under a third id.
        fork_steps = client.get(f"/v1/runs/{fork['id']}/steps").json()["data"]
        fork_read = [s["step"] for s in fork_steps if (s["kind"], s["name"]) == ("approval", "read")][-1]
        again = client.post(f"/v1/runs/{fork['id']}/fork", json={"from_step": fork_read + 1}).json()
        done = wait_for_status(client, again["id"], ENDED)
        listing = {"run_id": again["id"], "status": "denied"}
        denied = client.get("/v1/approvals", params=listing).json()["data"]
    assert done["output"] == f"after approval: The call to pay was denied by admin-key: not from {read}."
    assert len(denied) == 1
    assert denied[0]["id"] not in {approval["id"], source_approval["id"]}
    assert lines(shared_tool_log / "pay.log", item) == [item]
