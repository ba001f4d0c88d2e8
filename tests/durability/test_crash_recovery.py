"""SIGKILL a server mid-run; the next process finishes every accepted run from its last step."""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agenthost.testing import MockLLMServer
from tests.durability.conftest import lines
from tests.harness import Server, collect_sse, wait_for_status

pytestmark = pytest.mark.slow
RUNS = 20


def conversation_key(prompt: str) -> str:
    return hashlib.sha1(prompt.encode()).hexdigest()[:12]


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
    assert run["status"] == "succeeded"
    assert lines(tool_log / "charge.log") == ["[crash] fragile"]
    results = [e.json() for e in events if e.event == "tool.result" and e.json()["name"] == "charge"]
    assert len(results) == 1
    assert results[0]["outcome"] == "unknown"
    assert results[0]["error"].startswith("tool_outcome_unknown")
    charge_steps = [s for s in steps if s["name"] == "charge"]
    assert charge_steps[0]["outcome"] == "unknown"


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
