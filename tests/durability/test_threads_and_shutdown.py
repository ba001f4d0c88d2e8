"""Conversation threads (history across runs, one run at a time) and graceful shutdown."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from agenthost.testing import MockLLMServer
from tests.harness import ADMIN_HEADERS, Server, wait_for_status


def conversation(mock: MockLLMServer, first_prompt: str) -> dict[str, int]:
    key = hashlib.sha1(first_prompt.encode()).hexdigest()[:12]
    by_turn: dict[str, int] = mock.stats()["by_conversation"][key]["by_turn"]
    return by_turn


def test_thread_history_is_given_to_the_next_run(
    make_server: Callable[..., Server], mock: MockLLMServer
) -> None:
    first, second = "[remember] my name is Ada", "[remember] what is my name?"
    server = make_server().start()
    with server.client() as client:
        one = client.post("/v1/agents/crashy/run", json={"input": first, "thread_id": "t-ada"}).json()
        two = client.post("/v1/agents/crashy/run", json={"input": second, "thread_id": "t-ada"}).json()
        thread = client.get("/v1/threads/t-ada").json()
        assert [run["id"] for run in thread["runs"]] == [one["id"], two["id"]]
        deleted = client.delete("/v1/threads/t-ada")
        gone = client.get("/v1/threads/t-ada")
        three = client.post(
            "/v1/agents/crashy/run", json={"input": "[remember] fresh start", "thread_id": "t-ada"}
        )
    assert one["status"] == two["status"] == "succeeded"
    assert one["thread_id"] == "t-ada"
    assert two["output"] == f"noted: {second}"
    # The second request carried the first exchange: same conversation, one assistant turn before it.
    assert conversation(mock, first) == {"0": 1, "1": 1}
    assert [turn["role"] for turn in thread["turns"]] == ["user", "assistant", "user", "assistant"]
    assert thread["turns"][0]["text"] == first
    assert thread["turns"][3]["text"] == f"noted: {second}"
    assert deleted.status_code == 200
    assert deleted.json()["messages_removed"] == 4
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "thread_not_found"
    assert three.json()["status"] == "succeeded"
    assert conversation(mock, "[remember] fresh start") == {"0": 1}  # no history after the delete


def test_second_run_on_a_busy_thread_waits_or_is_rejected(
    durable_server: Server, mock: MockLLMServer
) -> None:
    server = durable_server
    results: dict[str, Any] = {}

    def slow_first() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers=ADMIN_HEADERS) as client:
            body = {"input": "[slow] first on the thread", "thread_id": "t-busy"}
            results["first"] = client.post("/v1/agents/crashy/run", json=body).json()

    first = threading.Thread(target=slow_first)
    first.start()
    with server.client() as client:
        deadline = time.monotonic() + 10
        while not client.get("/v1/runs", params={"status": "running", "agent": "crashy"}).json()["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        body = {"input": "[remember] second", "thread_id": "t-busy", "if_busy": "reject"}
        rejected = client.post("/v1/agents/crashy/run", json=body)
        busy_delete = client.delete("/v1/threads/t-busy")
        body["if_busy"] = "queue"
        queued = client.post("/v1/agents/crashy/run", json=body).json()
    first.join()
    assert rejected.status_code == 409
    assert rejected.json()["error"]["code"] == "thread_busy"
    assert busy_delete.status_code == 409
    assert results["first"]["status"] == queued["status"] == "succeeded"
    assert datetime.fromisoformat(queued["started_at"]) >= datetime.fromisoformat(
        results["first"]["completed_at"]
    )
    # The queued run saw the first run's exchange in its history.
    assert conversation(mock, "[slow] first on the thread")["1"] == 1


def test_sigterm_exits_within_grace_and_the_run_finishes_after_restart(
    make_server: Callable[..., Server], mock: MockLLMServer
) -> None:
    server = make_server(server={"shutdown_grace_seconds": 1.0}).start()
    with server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[slow] mind the shutdown"}).json()[
            "id"
        ]
        wait_for_status(client, run_id, {"running"})
    started = time.monotonic()
    server.stop(timeout=30)
    stopped_in = time.monotonic() - started
    assert stopped_in < 1.0 + 5.0
    restarted = make_server(server={"shutdown_grace_seconds": 1.0}).start()
    with restarted.client() as client:
        run = wait_for_status(client, run_id, {"succeeded", "failed", "dead", "cancelled"})
    assert run["status"] == "succeeded"
    assert run["output"].startswith("This answer takes its time")
