"""Run guards against a runaway agent (the mock keeps asking for a tool): every limit stops it
before the call that would cross it, the run fails with `budget_exceeded` naming the limit, and
what it did is kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agenthost.testing import MockLLMServer
from tests.harness import Server, server_config

RUNAWAY = "[runaway] where is my parcel?"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("guards")
    config = server_config(f"sqlite:///{tmp / 'a.db'}", mock_server.url)
    # The support agent keeps the default limits; `plain` gets its own, lower step limit.
    config["agents"]["capped"] = {
        "path": "agent:support_agent",
        "model": "mock",
        "limits": {"max_model_steps": 4},
    }
    server = Server(tmp, config).start()
    yield server
    server.stop()


def runaway(client: httpx.Client, agent: str = "support", **limits: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"input": RUNAWAY}
    if limits:
        body["limits"] = limits
    response = client.post(f"/v1/agents/{agent}/run", json=body, timeout=60)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    assert run["status"] == "failed", run["error"]
    assert run["error"]["code"] == "budget_exceeded"
    return run


def test_the_default_step_limit_stops_a_runaway_and_cannot_be_raised(
    guarded: Server, mock: MockLLMServer
) -> None:
    with guarded.client() as client:
        run = runaway(client, max_model_steps=1000)  # asking for more changes nothing
        steps = client.get(f"/v1/runs/{run['id']}/steps").json()["data"]
    assert run["error"]["limit"] == "max_model_steps"
    assert mock.stats()["total_calls"] == 15
    assert run["usage"]["requests"] == 15
    assert run["usage"]["tool_calls"] == 15
    # What it did is kept: every step, and the text it had produced.
    assert len(steps) == 30
    assert run["output"] == "Let me look that up."
    assert run["cost"]["status"] == "priced"
    assert run["cost"]["nanousd"] > 0


def test_an_agent_limit_replaces_the_default(guarded: Server, mock: MockLLMServer) -> None:
    with guarded.client() as client:
        run = runaway(client, agent="capped")
    assert run["error"]["limit"] == "max_model_steps"
    assert mock.stats()["total_calls"] == 4


def test_tool_call_limit(guarded: Server, mock: MockLLMServer) -> None:
    with guarded.client() as client:
        run = runaway(client, max_tool_calls=3)
    assert run["error"]["limit"] == "max_tool_calls"
    assert run["usage"]["tool_calls"] == 3
    assert mock.stats()["total_calls"] == 4  # the 4th answer asked for a 4th tool call


@pytest.mark.parametrize("limit", [1500, 3000])
def test_token_limit_is_never_crossed(guarded: Server, mock: MockLLMServer, limit: int) -> None:
    with guarded.client() as client:
        run = runaway(client, max_tokens=limit)
    assert run["error"]["limit"] == "max_tokens"
    assert 0 < run["usage"]["total_tokens"] <= limit
    assert mock.stats()["total_calls"] == run["usage"]["requests"]


def test_cost_limit_is_never_crossed(guarded: Server) -> None:
    limit_usd = 0.0006  # gpt-4o-mini: $0.15 / $0.60 per million tokens
    with guarded.client() as client:
        run = runaway(client, max_cost_usd=limit_usd)
    assert run["error"]["limit"] == "max_cost_usd"
    assert run["usage"]["requests"] >= 2
    assert 0 < run["cost"]["nanousd"] <= limit_usd * 1e9


@pytest.mark.parametrize(
    "limits", [{"max_cost_usd": -1}, {"max_model_steps": 0}, {"max_steps": 3}, {"max_tokens": "many"}]
)
def test_bad_limits_are_rejected_and_nothing_is_written(guarded: Server, limits: dict[str, Any]) -> None:
    with guarded.client() as client:
        before = client.get("/v1/runs").json()["data"]
        response = client.post("/v1/agents/support/run", json={"input": "hi", "limits": limits})
        after = client.get("/v1/runs").json()["data"]
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert len(after) == len(before)


def test_time_limit_counts_time_in_model_calls(guarded: Server, mock: MockLLMServer) -> None:
    mock.configure(latency_ms=150)
    with guarded.client() as client:
        run = runaway(client, max_seconds=0.5)
    assert run["error"]["limit"] == "max_seconds"
    # ~0.15 s per call: the 4th or 5th call finds the budget of time spent.
    assert 3 <= run["usage"]["requests"] <= 6
