"""Routing by complexity: the heuristic on a labelled set, and routed runs through the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.harness import Server

from agenthost.gateway.routing import TIERS, classify
from agenthost.testing import MockLLMServer

LABELLED = yaml.safe_load((Path(__file__).parent / "data" / "routing_prompts.yaml").read_text())
CASES = [(tier, prompt) for tier, prompts in LABELLED.items() for prompt in prompts]


def test_the_labelled_set_covers_every_tier() -> None:
    assert set(LABELLED) == set(TIERS)
    assert all(len(prompts) >= 10 for prompts in LABELLED.values())


@pytest.mark.parametrize(("tier", "prompt"), CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_heuristic_routes_each_labelled_prompt(tier: str, prompt: str) -> None:
    found = classify(prompt)
    assert found.tier == tier, (found.score, found.signals)


def test_classification_is_fast() -> None:
    import time

    text = " ".join(prompt for _, prompt in CASES)
    started = time.perf_counter()
    for _ in range(100):
        classify(text)
    assert (time.perf_counter() - started) / 100 < 0.01  # well under a millisecond per typical input


def test_runs_are_routed_to_their_tier_model(server: Server, mock: MockLLMServer) -> None:
    with server.client() as client:
        simple = client.post("/v1/agents/router/run", json={"input": "What are your opening hours?"}).json()
        medium = client.post(
            "/v1/agents/router/run",
            json={"input": "Explain the difference between a refund and store credit."},
        ).json()
        forced = client.post("/v1/agents/router/run", json={"input": "hi", "tier": "complex"}).json()
        unrouted = client.post("/v1/agents/plain/run", json={"input": "hi", "tier": "complex"}).json()
    assert (simple["tier"], simple["model"]) == ("simple", "gpt-4o-mini")
    assert (medium["tier"], medium["model"]) == ("medium", "claude-haiku-4-5")
    assert (forced["tier"], forced["model"]) == ("complex", "gpt-4o")
    assert simple["metadata"]["routing"]["signals"] == []
    assert medium["metadata"]["routing"]["signals"] == ["explain"]
    assert forced["metadata"]["routing"] == {"tier": "complex", "forced": True}
    # gpt-4o is priced at its own rates ($2.50 / $10 per million).
    usage = forced["usage"]
    assert forced["cost"]["nanousd"] == usage["input_tokens"] * 2500 + usage["output_tokens"] * 10000
    assert unrouted["tier"] is None
    assert unrouted["model"] == "gpt-4o-mini"
    assert mock.stats()["by_protocol"] == {"openai": 3, "anthropic": 1}
