"""Dead runs (the dead-letter queue), resume from the failed step, fork from step N, the steps timeline."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from agenthost.testing import MockLLMServer
from tests.durability.conftest import lines
from tests.harness import Server, collect_sse, wait_for_status

ENDED = {"succeeded", "failed", "dead", "cancelled"}


def turns(mock: MockLLMServer, prompt: str) -> dict[str, int]:
    key = hashlib.sha1(prompt.encode()).hexdigest()[:12]
    by_turn: dict[str, int] = mock.stats()["by_conversation"][key]["by_turn"]
    return by_turn


def test_steps_timeline(durable_server: Server, mock: MockLLMServer) -> None:
    """Each checkpointed step with kind, name, timing, tokens, cost and outcome."""
    with durable_server.client() as client:
        run = client.post("/v1/agents/crashy/run", json={"input": "[crash] timeline"}).json()
        steps = client.get(f"/v1/runs/{run['id']}/steps").json()["data"]
        missing = client.get("/v1/runs/run_nope/steps")
    assert [(s["kind"], s["name"]) for s in steps] == [
        ("model", "gpt-4o-mini"),
        ("tool", "lookup"),
        ("model", "gpt-4o-mini"),
        ("tool", "charge (start marker)"),
        ("tool", "charge"),
        ("model", "gpt-4o-mini"),
    ]
    assert [s["step"] for s in steps] == sorted(s["step"] for s in steps)
    assert all(s["outcome"] == "ok" for s in steps)
    assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in steps)
    models = [s for s in steps if s["kind"] == "model"]
    assert sum(s["cost"]["nanousd"] for s in models) == run["cost"]["nanousd"]
    assert sum(s["input_tokens"] for s in models) == run["usage"]["input_tokens"]
    assert sum(s["output_tokens"] for s in models) == run["usage"]["output_tokens"]
    assert missing.status_code == 404


def test_failed_tool_makes_the_run_dead_and_resume_continues_from_that_step(
    durable_server: Server, mock: MockLLMServer, shared_tool_log: Path
) -> None:
    prompt = "[boom] payment"
    tool_log = shared_tool_log
    with durable_server.client() as client:
        run = client.post("/v1/agents/crashy/run", json={"input": prompt}).json()
        assert run["status"] == "dead", run
        assert run["error"]["code"] == "tool_error"
        assert "payment service is down" in run["error"]["message"]
        dead = client.get("/v1/runs", params={"status": "dead", "agent": "crashy"}).json()["data"]
        assert run["id"] in [r["id"] for r in dead]
        steps = client.get(f"/v1/runs/{run['id']}/steps").json()["data"]
        failed = [s for s in steps if s["outcome"] == "error"]
        assert [s["name"] for s in failed] == ["explode"]
        assert run["error"]["step"] == failed[0]["step"]
        not_dead = client.post("/v1/runs/run_nope/resume")
        assert not_dead.status_code == 404

        (tool_log / "explode.ok").touch()  # the operator fixes the cause
        resumed = client.post(f"/v1/runs/{run['id']}/resume")
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["status"] == "running"
        done = wait_for_status(client, run["id"], ENDED)
        events = collect_sse(client, "GET", f"/v1/runs/{run['id']}/events")
        twice = client.post(f"/v1/runs/{run['id']}/resume")
    assert done["status"] == "succeeded"
    assert done["output"] == f"recovered: exploded {prompt} safely"
    assert done["error"] is None
    # The steps before the failure replayed: no model call or lookup was made again.
    assert turns(mock, prompt) == {"0": 1, "1": 1, "2": 1}
    assert lines(tool_log / "lookup.log", prompt) == [prompt]
    assert lines(tool_log / "explode.log", prompt) == [prompt, prompt]
    (tool_log / "explode.ok").unlink()
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    assert [e.event for e in events].count("run.dead") == 0
    assert events[-1].event == "run.completed"
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "run_not_resumable"


def test_a_run_that_keeps_crashing_its_server_goes_dead(
    make_server: Callable[..., Server], mock: MockLLMServer, tool_log: Path
) -> None:
    """Beyond `max_recovery_attempts` restarts the run is not retried again: it is dead."""
    durability = {"max_recovery_attempts": 2}
    server = make_server(durability=durability).start()
    with server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[suicide] again"}).json()["id"]
    assert server.process is not None
    server.process.wait(30)  # the tool killed it
    status = "running"
    for _ in range(6):
        restarted = make_server(durability=durability)
        try:
            restarted.start()
        except RuntimeError:
            continue  # recovery ran the run again, and it killed the server while starting
        deadline = time.monotonic() + 10
        with restarted.client() as client:
            while time.monotonic() < deadline and restarted.process and restarted.process.poll() is None:
                try:
                    status = client.get(f"/v1/runs/{run_id}").json()["status"]
                except httpx.HTTPError:
                    break  # killed mid-request
                if status == "dead":
                    break
                time.sleep(0.2)
        if status == "dead":
            break
        restarted.stop()
    assert status == "dead"
    with restarted.client() as client:
        run = client.get(f"/v1/runs/{run_id}").json()
        listed = client.get("/v1/runs", params={"status": "dead"}).json()["data"]
    assert run["error"]["code"] == "recovery_limit_exceeded"
    assert run_id in [r["id"] for r in listed]
    assert 2 <= len(lines(tool_log / "suicide.log")) <= 3


def test_fork_replays_steps_before_n_and_executes_from_n(
    durable_server: Server, mock: MockLLMServer, shared_tool_log: Path
) -> None:
    prompt = "[crash] fork-me"
    tool_log = shared_tool_log
    with durable_server.client() as client:
        source = client.post("/v1/agents/crashy/run", json={"input": prompt}).json()
        steps = client.get(f"/v1/runs/{source['id']}/steps").json()["data"]
        second_model = [s for s in steps if s["kind"] == "model"][1]["step"]
        response = client.post(f"/v1/runs/{source['id']}/fork", json={"from_step": second_model})
        assert response.status_code == 202, response.text
        fork = response.json()
        assert fork["forked_from"] == source["id"]
        assert fork["fork_step"] == second_model
        assert response.headers["location"] == f"/v1/runs/{fork['id']}"
        done = wait_for_status(client, fork["id"], ENDED)
        too_far = client.post(f"/v1/runs/{source['id']}/fork", json={"from_step": 99})
        zero = client.post(f"/v1/runs/{source['id']}/fork", json={"from_step": 0})
    assert done["status"] == "succeeded"
    assert done["output"] == source["output"] == f"done: {prompt}"
    # Model call 1 and the lookup came from the record; call 2 onwards ran again, and so did charge.
    assert turns(mock, prompt) == {"0": 1, "1": 2, "2": 2}
    assert lines(tool_log / "lookup.log", prompt) == [prompt]
    assert lines(tool_log / "charge.log", prompt) == [prompt, prompt]
    assert too_far.status_code == 422
    assert too_far.json()["error"]["code"] == "invalid_step"
    assert zero.status_code == 422
