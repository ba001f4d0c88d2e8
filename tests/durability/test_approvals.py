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
        assert decided.json()["decided_by"] == "dana"

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
    assert resolved["by"] == "dana"
    assert resolved["reason"] == "ok by me"
    assert resolved["at"]
    assert late.status_code == 409


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
