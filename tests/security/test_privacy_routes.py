"""`GET /v1/audit` and `DELETE /v1/users/{user_id}/data` on a real server, and the retention job
firing inside it (scheduled every second here)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agenthost.testing import MockLLMServer
from tests.harness import Server, server_config


def test_erase_and_audit_routes(tmp_path: Path, mock_server: MockLLMServer) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'a.db'}"
    config = server_config(url, mock_server.url, retention={"schedule": "* * * * * *"})
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            run = client.post(
                "/v1/agents/plain/run", json={"input": "[remember] hello", "user_id": "zoe"}
            ).json()
            receipt = client.delete("/v1/users/zoe/data")
            audit = client.get("/v1/audit", params={"action": "data.*"})
            bad = client.get("/v1/audit", params={"limit": 0})
            anonymous = client.get("/v1/audit", headers={"X-API-Key": ""})
            view = client.get(f"/v1/runs/{run['id']}").json()
        time.sleep(2.5)  # the retention job fires every second
    finally:
        server.stop()
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["runs_scrubbed"] == 1
    assert audit.status_code == 200, audit.text
    entries = audit.json()["data"]
    assert [e["action"] for e in entries] == ["data.erased"]
    assert (entries[0]["actor"], entries[0]["subject_user"]) == ("admin-key", "[erased]")
    assert bad.status_code == 422
    assert anonymous.status_code == 401
    assert view["input"] == "[erased]"
    with sqlite3.connect(tmp_path / "data" / "a.dbos.db") as db:
        fired = db.execute(
            "SELECT count(*) FROM workflow_status WHERE name = 'agenthost.retention' AND status = 'SUCCESS'"
        ).fetchone()[0]
    assert fired >= 1
    assert "Exception in schedule" not in server.log()
