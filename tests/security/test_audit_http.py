"""The audit log through the server: key management, runs, tool calls, approvals and config
changes are recorded, hash-chained, admin-only, and `agenthost audit verify` checks the chain."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from agenthost.testing import MockLLMServer
from tests.harness import AGENTHOST, REPO, Server, render_toml, server_config, wait_for_status
from tests.security.test_auth import make_key


def test_actions_are_audited_and_the_chain_verifies(tmp_path: Path, mock: MockLLMServer) -> None:
    database = tmp_path / "data" / "a.db"
    config = server_config(f"sqlite:///{database}", mock.url)
    config["agents"]["support"]["prompt_version"] = "support-v3"
    server = Server(tmp_path, config).start()
    try:
        key, body = make_key(server, name="auditee", user_id="aud-1")
        with server.client() as admin:
            listed = {a["name"]: a["prompt_version"] for a in admin.get("/v1/agents").json()["data"]}
            plain = admin.post("/v1/agents/plain/run", json={"input": "hello"}).json()
        with server.client() as admin:
            admin.post(f"/v1/admin/keys/{body['id']}/rotate")
        with server.client(key=key) as client:
            run = client.post("/v1/agents/support/runs", json={"input": "[refund] order 5678 broke"}).json()
            wait_for_status(client, run["id"], {"waiting_approval"})
            approval = client.get("/v1/approvals", params={"run_id": run["id"]}).json()["data"][0]
            client.post(f"/v1/runs/{run['id']}/approvals/{approval['id']}", json={"decision": "approve"})
            wait_for_status(client, run["id"], {"succeeded"})
            assert client.get("/v1/audit").status_code == 403
        with server.client() as admin:
            entries = admin.get("/v1/audit", params={"limit": 100}).json()["data"]
            admin.post(f"/v1/admin/keys/{body['id']}/revoke")
            revoked = admin.get("/v1/audit", params={"action": "key.*"}).json()["data"]
    finally:
        server.stop()
    actions = [e["action"] for e in entries]
    for action in (
        "config.changed",
        "key.created",
        "key.rotated",
        "run.started",
        "approval.decided",
        "tool.called",
    ):
        assert action in actions, (action, actions)
    tool = next(e for e in entries if e["action"] == "tool.called")
    assert tool["details"]["tool"] == "refund"
    assert tool["details"]["args"]["order_id"] == "5678"
    # The prompt version: the configured label, else a fingerprint of the agent's prompts (the
    # same for every agent loaded from the same object, and shown in the agent listing).
    assert listed["support"] == "support-v3"
    assert listed["plain"].startswith("sha256:")
    assert listed["plain"] == listed["claude"]
    started = {e["target"]: e for e in entries if e["action"] == "run.started"}
    assert started[run["id"]]["prompt_version"] == "support-v3"
    assert started[run["id"]]["model"]
    assert tool["prompt_version"] == "support-v3"
    assert started[plain["id"]]["prompt_version"] == listed["plain"]
    assert "key.revoked" in [e["action"] for e in revoked]

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    config_path = tmp_path / "agenthost.toml"
    config_path.write_text(render_toml(config))
    verify = [str(AGENTHOST), "audit", "verify", "--config", str(config_path)]
    ok = subprocess.run(verify, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with sqlite3.connect(database) as conn:  # an insider edits one entry
        conn.execute("UPDATE audit_log SET action = 'run.cancelled' WHERE action = 'approval.decided'")
    tampered = subprocess.run(verify, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert tampered.returncode == 1, tampered.stdout
