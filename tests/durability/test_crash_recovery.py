"""SIGKILL a server mid-run; the next process finishes every accepted run from its last step."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agenthost.testing import MockLLMServer, Scenario, ToolCallSpec, Turn
from tests.durability.conftest import lines
from tests.harness import Server, collect_sse, metric_value, wait_for, wait_for_status

pytestmark = pytest.mark.slow
RUNS = 20


def conversation_key(prompt: str) -> str:
    return hashlib.sha1(prompt.encode()).hexdigest()[:12]


def log_events(server: Server) -> list[dict[str, Any]]:
    """The JSON log records the server's log file holds (every process that used its workdir)."""
    found = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and "event" in record:
                found.append(record)
    return found


def test_sigkill_mid_run_loses_nothing_and_repeats_nothing_completed(
    make_server: Callable[..., Server], mock: MockLLMServer, tool_log: Path
) -> None:
    """20 background runs of model -> lookup -> model -> charge -> model; SIGKILL; restart.

    All runs succeed with the right output; no model call that completed before the kill is made
    again (at most the one in flight per run is repeated); the at-most-once `charge` tool ran at
    most once per run.
    """
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    tools = {"charge": {"execution": "at_most_once"}}
    server = make_server(tools=tools, durability={"queue_concurrency": RUNS}).start()
    prompts = [f"[crash] item-{i}" for i in range(RUNS)]
    with server.client() as client:
        ids = [client.post("/v1/agents/crashy/runs", json={"input": p}).json()["id"] for p in prompts]
    time.sleep(rng.uniform(0.3, 1.6))
    server.kill()
    calls_at_kill = mock.stats()["total_calls"]

    restarted = make_server(tools=tools, durability={"queue_concurrency": RUNS}).start()
    with restarted.client() as client:
        finished = [
            wait_for_status(client, run_id, {"succeeded", "failed", "dead"}, timeout=90) for run_id in ids
        ]
        unknown: set[str] = set()
        for prompt, run_id in zip(prompts, ids, strict=True):
            events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
            assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1)), f"seed {seed}"
            if any(e.event == "tool.result" and e.json()["outcome"] == "unknown" for e in events):
                unknown.add(prompt)
        # The kill lost no spend: every recorded model call is in the ledger exactly once.
        spend = client.get("/v1/costs", params={"from": "2000-01-01T00:00:00Z"}).json()["total"]

    assert [run["status"] for run in finished] == ["succeeded"] * RUNS, f"seed {seed}"
    assert spend["calls"] == 3 * RUNS, f"seed {seed}"
    assert spend["runs"] == RUNS, f"seed {seed}"
    assert spend["nanousd"] == sum(run["cost"]["nanousd"] for run in finished) > 0, f"seed {seed}"
    assert [run["output"] for run in finished] == [f"done: {p}" for p in prompts], f"seed {seed}"

    conversations = mock.stats()["by_conversation"]
    repeats = 0
    for prompt in prompts:
        turns = conversations[conversation_key(prompt)]["by_turn"]
        assert sorted(turns) == ["0", "1", "2"], f"seed {seed}: {prompt} {turns}"
        counts = sorted(turns.values())
        # Every completed call was replayed from the record; only the one in flight ran twice.
        assert counts in ([1, 1, 1], [1, 1, 2]), f"seed {seed}: {prompt} {turns}"
        repeats += counts[-1] - 1
    assert repeats <= RUNS
    assert mock.stats()["total_calls"] == 3 * RUNS + repeats
    assert calls_at_kill <= 3 * RUNS

    charges = Counter(lines(tool_log / "charge.log"))
    for prompt in prompts:
        if prompt in unknown:
            # Interrupted by the kill (before or after its first line): never run again.
            assert charges[prompt] <= 1, f"seed {seed}: {prompt} {charges}"
        else:
            assert charges[prompt] == 1, f"seed {seed}: {prompt} {charges}"
    lookups = Counter(lines(tool_log / "lookup.log"))
    assert all(lookups[p] >= 1 for p in prompts)


def test_at_most_once_tool_interrupted_reports_outcome_unknown(
    make_server: Callable[..., Server], mock: MockLLMServer, tool_log: Path
) -> None:
    """Killed inside an at-most-once tool: it is not run again, and the run says so."""
    tools = {"charge": {"execution": "at_most_once"}}
    server = make_server(tools=tools).start()
    with server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[crash] fragile"}).json()["id"]
    deadline = time.monotonic() + 30
    while "[crash] fragile" not in lines(tool_log / "charge.log"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    server.kill()  # charge sleeps 0.2 s after logging: the kill lands inside it

    restarted = make_server(tools=tools).start()
    with restarted.client() as client:
        run = wait_for_status(client, run_id, {"succeeded", "failed", "dead"})
        events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
        steps = client.get(f"/v1/runs/{run_id}/steps").json()["data"]
        metrics = client.get("/metrics").text
    assert run["status"] == "succeeded"
    assert lines(tool_log / "charge.log") == ["[crash] fragile"]
    results = [e.json() for e in events if e.event == "tool.result" and e.json()["name"] == "charge"]
    assert len(results) == 1
    assert results[0]["outcome"] == "unknown"
    assert results[0]["error"].startswith("tool_outcome_unknown")
    charge_steps = [s for s in steps if s["name"] == "charge"]
    assert charge_steps[0]["outcome"] == "unknown"
    # The restart says what it recovered, and which call's outcome is unknown (logs and metrics).
    logged = log_events(restarted)
    recovered = [e for e in logged if e["event"] == "runs_recovered"]
    assert [(e["count"], e["run_ids"]) for e in recovered] == [(1, [run_id])]
    unknown = [e for e in logged if e["event"] == "tool_outcome_unknown"]
    assert len(unknown) == 1
    assert (unknown[0]["run_id"], unknown[0]["tool"], unknown[0]["step"]) == (
        run_id,
        "charge",
        charge_steps[0]["step"],
    )
    assert unknown[0]["level"] == "warning"
    assert metric_value(metrics, "agenthost_runs_recovered_total") == 1
    assert metric_value(metrics, "agenthost_tool_outcome_unknown_total", agent="crashy", tool="charge") == 1


def test_at_least_once_tool_interrupted_runs_again(
    make_server: Callable[..., Server], mock: MockLLMServer, tool_log: Path
) -> None:
    """Killed inside an at-least-once tool: the call runs again after the restart."""
    tools = {"charge": {"execution": "at_least_once"}}
    server = make_server(tools=tools).start()
    with server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": "[crash] sturdy"}).json()["id"]
    deadline = time.monotonic() + 30
    while "[crash] sturdy" not in lines(tool_log / "charge.log"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    server.kill()

    restarted = make_server(tools=tools).start()
    with restarted.client() as client:
        run = wait_for_status(client, run_id, {"succeeded", "failed", "dead"})
    assert run["status"] == "succeeded"
    assert lines(tool_log / "charge.log") == ["[crash] sturdy", "[crash] sturdy"]


# Like `crash`, without the scenario's own latency, so a test can slow the last model call down.
RECOUNT = {
    "recount": Scenario(
        match=r"^\[recount\]",
        turns=(
            Turn(tool_calls=(ToolCallSpec(name="lookup", arguments={"item": "{last_user}"}),)),
            Turn(tool_calls=(ToolCallSpec(name="charge", arguments={"item": "{last_user}"}),)),
            Turn(text="done: {last_user}"),
        ),
    ),
    "recount_more": Scenario(
        match=r"^\[recount-more\]",
        turns=(
            Turn(tool_calls=(ToolCallSpec(name="lookup", arguments={"item": "{last_user}"}),)),
            Turn(tool_calls=(ToolCallSpec(name="charge", arguments={"item": "{last_user}"}),)),
            Turn(tool_calls=(ToolCallSpec(name="lookup", arguments={"item": "again {last_user}"}),)),
            Turn(text="done: {last_user}"),
        ),
    ),
}


def test_usage_after_recovery_counts_the_tool_calls_made_before_the_crash(
    make_server: Callable[..., Server], mock: MockLLMServer, tool_log: Path
) -> None:
    """Killed after both tool calls completed, during the last model call: once recovered, the
    run's usage counts both (replayed) calls, and `max_tool_calls` still counts them."""
    mock.configure(scenarios={**mock.engine.config.scenarios, **RECOUNT})
    server = make_server().start()
    counted, limited = "[recount] two", "[recount-more] two"
    with server.client() as client:
        run_id = client.post("/v1/agents/crashy/runs", json={"input": counted}).json()["id"]
        body = {"input": limited, "limits": {"max_tool_calls": 2}}
        limited_id = client.post("/v1/agents/crashy/runs", json=body).json()["id"]
    wait_for(lambda: {counted, limited} <= set(lines(tool_log / "charge.log")), timeout=30)
    # `charge` sleeps 0.2 s after logging: the next model calls start after this.
    mock.configure(latency_ms=10_000)

    def at_last_call(prompt: str) -> bool:
        conversation = mock.stats()["by_conversation"].get(conversation_key(prompt), {})
        return "2" in conversation.get("by_turn", {})

    wait_for(lambda: at_last_call(counted) and at_last_call(limited), timeout=30)
    server.kill()
    mock.configure(latency_ms=0)

    restarted = make_server().start()
    with restarted.client() as client:
        run = wait_for_status(client, run_id, {"succeeded", "failed", "dead"})
        events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
        steps = client.get(f"/v1/runs/{run_id}/steps").json()["data"]
        stopped = wait_for_status(client, limited_id, {"succeeded", "failed", "dead"})
    assert run["status"] == "succeeded", run
    tools = [s for s in steps if s["kind"] == "tool" and "start marker" not in s["name"]]
    assert [(s["name"], s["outcome"]) for s in tools] == [("lookup", "ok"), ("charge", "ok")]
    models = [s for s in steps if s["kind"] == "model"]
    expected = {
        "input_tokens": sum(s["input_tokens"] for s in models),
        "output_tokens": sum(s["output_tokens"] for s in models),
        "requests": 3,
        "tool_calls": 2,
    }
    expected["total_tokens"] = expected["input_tokens"] + expected["output_tokens"]
    assert len(models) == 3
    assert run["usage"] == expected
    completed = events[-1]
    assert completed.event == "run.completed"
    assert completed.json()["usage"] == expected
    # The third tool call would be one more than allowed: refused after the recovery as before it.
    assert stopped["status"] == "failed", stopped
    assert stopped["error"]["code"] == "budget_exceeded"
    assert stopped["error"]["limit"] == "max_tool_calls"
    assert stopped["usage"]["tool_calls"] == 2
    assert lines(tool_log / "lookup.log", f"again {limited}") == []
    # Each tool ran once: nothing completed before the kill ran again.
    assert lines(tool_log / "charge.log").count(counted) == 1
