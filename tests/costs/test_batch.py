"""Batch mode: runs marked `"priority": "batch"` send their model calls through the providers'
batch APIs (the mock's OpenAI Batch and Anthropic Message Batches), survive a restart while their
batch is pending, and are priced at the batch rate."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from agenthost.testing import MockLLMServer
from tests.harness import Server, server_config, wait_for_status

BATCH = {"collect_seconds": 0.3, "poll_seconds": 0.2}
RATES = {"plain": (150, 600), "claude": (1000, 5000)}  # nano-USD per input, output token


def recorded(database: Path) -> bool:
    with sqlite3.connect(database) as db:
        try:
            return bool(db.execute("SELECT count(*) FROM batch_requests").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return False


def batch_stats(mock: MockLLMServer) -> dict[str, Any]:
    stats: dict[str, Any] = mock.engine.stats.batch_snapshot()
    return stats


@pytest.mark.parametrize(("agent", "protocol"), [("plain", "openai"), ("claude", "anthropic")])
def test_batch_runs_complete_through_the_batch_api_at_half_price(
    tmp_path: Path, mock: MockLLMServer, agent: str, protocol: str
) -> None:
    # Long enough for the three runs to reach their first call on a busy machine.
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}", mock.url, batch={**BATCH, "collect_seconds": 2.0}
    )
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            ids = [
                client.post(
                    f"/v1/agents/{agent}/runs", json={"input": f"batch me {i}", "priority": "batch"}
                ).json()["id"]
                for i in range(3)
            ]
            runs = [
                wait_for_status(client, run_id, {"succeeded", "failed", "dead"}, timeout=30) for run_id in ids
            ]
            report = client.get("/v1/costs").json()
    finally:
        server.stop()
    assert [r["status"] for r in runs] == ["succeeded"] * 3, runs[0]["error"]
    assert [r["output"] for r in runs] == [f"Mock reply to: batch me {i}" for i in range(3)]
    stats = batch_stats(mock)
    assert stats["by_protocol"][protocol]["created"] == 1  # the three calls were collected into one batch
    assert stats["requests"] == 3
    assert mock.stats()["total_calls"] == 0  # nothing went through the interactive endpoint
    rates = RATES[agent]
    for run in runs:
        usage = run["usage"]
        list_price = usage["input_tokens"] * rates[0] + usage["output_tokens"] * rates[1]
        assert run["cost"]["nanousd"] == round(list_price * 0.5)
    assert report["savings"]["by_reason"]["batch"]["nanousd"] == sum(r["cost"]["nanousd"] for r in runs)


def test_a_batch_run_survives_a_restart_while_its_batch_is_pending(
    tmp_path: Path, mock: MockLLMServer
) -> None:
    mock.configure(batch_delay_seconds=3.0)
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url, batch=BATCH)
    server = Server(tmp_path, config).start()
    with server.client() as client:
        run_id = client.post("/v1/agents/plain/runs", json={"input": "patience", "priority": "batch"}).json()[
            "id"
        ]
        deadline = time.monotonic() + 10
        # Killed once the call is recorded against its batch (the window before that is documented).
        while not recorded(tmp_path / "a.db"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert batch_stats(mock)["created"] == 1
    server.kill()
    restarted = Server(tmp_path, config).start()
    try:
        with restarted.client() as client:
            run = wait_for_status(client, run_id, {"succeeded", "failed", "dead"}, timeout=30)
    finally:
        restarted.stop()
    assert run["status"] == "succeeded"
    assert run["output"] == "Mock reply to: patience"
    assert batch_stats(mock)["created"] == 1  # the recovered run waited for its batch, it did not resubmit


def test_batch_needs_a_provider_model(tmp_path: Path, mock: MockLLMServer) -> None:
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url)
    config["agents"]["own"] = {"path": "tests.agents.plain:agent", "model": "openai:gpt-4o-mini"}
    server = Server(tmp_path, config, env={"OPENAI_API_KEY": "sk-unused"}).start()
    try:
        with server.client() as client:
            refused = client.post("/v1/agents/own/runs", json={"input": "hi", "priority": "batch"})
            runs = client.get("/v1/runs").json()["data"]
    finally:
        server.stop()
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "batch_unsupported"
    assert runs == []
