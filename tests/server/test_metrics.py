"""`GET /metrics`: model requests, tokens, cost, breakers, runs and HTTP, read as Prometheus would."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Server, metric_value, server_config

from agenthost.testing import MockLLMServer


def test_metrics_count_model_calls_tokens_cost_breakers_runs_and_http(
    tmp_path: Path, mock: MockLLMServer
) -> None:
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}",
        mock.url,
        gateway={"retry_max_attempts": 1, "breaker_failure_threshold": 2, "breaker_cooldown_seconds": 60},
    )
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            run = client.post("/v1/agents/plain/run", json={"input": "count me"}).json()
            # `resilient` uses a model nobody listens for, then falls back to the mock: two failed
            # attempts open its breaker; the third run does not even try it.
            resilient = [
                client.post("/v1/agents/resilient/run", json={"input": f"fallback {i}"}).json()
                for i in range(3)
            ]
            client.get("/v1/runs/does-not-exist")
            metrics = client.get("/metrics")
            ready = client.get("/ready").json()
    finally:
        server.stop()
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert run["status"] == "succeeded"
    assert [r["status"] for r in resilient] == ["succeeded"] * 3
    usage = run["usage"]
    # gpt-4o-mini served the plain run and the three fallbacks.
    assert metric_value(text, "agenthost_model_requests_total", model="gpt-4o-mini", outcome="ok") == 4
    assert (
        metric_value(text, "agenthost_model_requests_total", model="gpt-4o", outcome="connection_error") == 2
    )
    breaker = next(key for key in ready["breakers"] if key.endswith(":gpt-4o"))
    assert ready["breakers"][breaker] == "open"
    assert metric_value(text, "agenthost_breaker_state", breaker=breaker) == 2
    assert metric_value(text, "agenthost_breaker_rejections_total", breaker=breaker) == 1
    all_runs = [run, *resilient]
    inputs = sum(r["usage"]["input_tokens"] for r in all_runs)
    outputs = sum(r["usage"]["output_tokens"] for r in all_runs)
    assert usage["input_tokens"] > 0
    assert metric_value(text, "agenthost_model_tokens_total", model="gpt-4o-mini", kind="input") == inputs
    assert metric_value(text, "agenthost_model_tokens_total", model="gpt-4o-mini", kind="output") == outputs
    cost = sum(r["cost"]["nanousd"] for r in all_runs) / 1e9
    assert abs(metric_value(text, "agenthost_model_cost_usd_total", model="gpt-4o-mini") - cost) < 1e-12
    assert metric_value(text, "agenthost_runs_finished_total", agent="resilient", status="succeeded") == 3
    assert (
        metric_value(
            text, "agenthost_http_requests_total", method="POST", route="/v1/agents/{agent}/run", status="200"
        )
        == 4
    )
    assert metric_value(text, "agenthost_http_requests_total", route="/v1/runs/{run_id}", status="404") == 1
    assert metric_value(text, "agenthost_model_request_seconds_count", model="gpt-4o-mini") == 4
