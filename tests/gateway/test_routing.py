"""Routing by complexity: the heuristic on a labelled set, and routed runs through the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.harness import Server, metric_value, server_config

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
    assert forced["metadata"]["routing"] == {
        "tier": "complex",
        "source": "forced",
        "forced": True,
        "model": "mock-big",
    }
    # gpt-4o is priced at its own rates ($2.50 / $10 per million).
    usage = forced["usage"]
    assert forced["cost"]["nanousd"] == usage["input_tokens"] * 2500 + usage["output_tokens"] * 10000
    assert unrouted["tier"] is None
    assert unrouted["model"] == "gpt-4o-mini"
    assert mock.stats()["by_protocol"] == {"openai": 3, "anthropic": 1}
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert metric_value(metrics, "agenthost_routing_decisions_total", tier="complex", source="forced") >= 1
    assert (
        metric_value(metrics, "agenthost_routing_decisions_total", tier="medium", model="mock-anthropic") >= 1
    )


def test_a_model_classifier_routes_and_the_heuristic_covers_its_failures(
    tmp_path: Path, mock: MockLLMServer
) -> None:
    """`[routing] classifier` asks a cheap model; an answer that is not a tier leaves the heuristic."""
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url, routing={"classifier": "mock"})
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            # The mock answers "complex" to the classifier (and, being a mock, to the run as well).
            classified = client.post("/v1/agents/router/run", json={"input": "[tier-word] hi"}).json()
            # Here the mock answers "Mock reply to: ...": no tier, so the heuristic decides.
            fallback = client.post("/v1/agents/router/run", json={"input": "What time is it?"}).json()
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert (classified["tier"], classified["model"]) == ("complex", "gpt-4o")
    routing = classified["metadata"]["routing"]
    assert routing["source"] == "classifier"
    assert routing["classifier"] == "mock"
    assert routing["classifier_cost_status"] == "priced"
    assert routing["classifier_cost_nanousd"] > 0
    assert (fallback["tier"], fallback["model"]) == ("simple", "gpt-4o-mini")
    assert fallback["metadata"]["routing"]["source"] == "heuristic"
    assert fallback["metadata"]["routing"]["classifier_error"] == "ValueError"
    assert (
        metric_value(metrics, "agenthost_routing_decisions_total", source="classifier", tier="complex") == 1
    )
    # Classifier calls go through the gateway: 2 classifier requests + 2 runs reached the mock.
    assert mock.stats()["total_calls"] == 4


def test_an_idempotent_repeat_of_a_routed_run_does_not_ask_the_classifier_again(
    tmp_path: Path, mock: MockLLMServer
) -> None:
    """The repeat finds the run its key names before routing: no second (paid, unrecorded)
    classifier call; a different body under the key is still 409."""
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url, routing={"classifier": "mock"})
    server = Server(tmp_path, config).start()
    headers = {"Idempotency-Key": "route-me-once"}
    try:
        with server.client() as client:
            first = client.post("/v1/agents/router/run", json={"input": "[tier-word] once"}, headers=headers)
            calls_after_first = mock.stats()["total_calls"]
            again = client.post("/v1/agents/router/run", json={"input": "[tier-word] once"}, headers=headers)
            calls_after_repeat = mock.stats()["total_calls"]
            other = client.post("/v1/agents/router/run", json={"input": "[tier-word] other"}, headers=headers)
            calls_after_other = mock.stats()["total_calls"]
            spend = client.get("/v1/costs", params={"from": "2000-01-01T00:00:00Z"}).json()["total"]
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["metadata"]["routing"] == first.json()["metadata"]["routing"]
    assert first.json()["metadata"]["routing"]["source"] == "classifier"
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # The classifier and the run's model call, once each; the repeat and the conflict call nothing.
    assert calls_after_first == calls_after_repeat == calls_after_other == 2
    # Every call made is in the ledger: the classifier's and the run's.
    assert spend["calls"] == 2
    assert metric_value(metrics, "agenthost_routing_decisions_total", source="classifier") == 1
