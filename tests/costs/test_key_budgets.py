"""Budgets and run limits per API key and per team, and spend attributed to keys and teams."""

from __future__ import annotations

from pathlib import Path

from agenthost.testing import MockLLMServer
from tests.harness import Server, server_config
from tests.security.test_auth import make_key

LIMITS = {"output_tokens_estimate": 16}


def test_key_and_team_budgets_refuse_and_key_limits_apply(tmp_path: Path, mock: MockLLMServer) -> None:
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}",
        mock.url,
        limits=LIMITS,
        budgets={"teams": {"red": {"daily_usd": 0.00002}}},
        alerts={"run_cost_usd": 0, "hourly_spend_usd": 0},
    )
    server = Server(tmp_path, config).start()
    try:
        tight, tight_body = make_key(server, name="tight", budgets={"daily_usd": 0.00002})
        free, free_body = make_key(server, name="free")
        red, _ = make_key(server, name="red-1", team="red")
        stepper, _ = make_key(server, name="one-step", limits={"max_model_steps": 1})

        def spend_until_refused(key: str) -> list[int]:
            statuses = []
            with server.client(key=key) as client:
                for i in range(40):
                    response = client.post("/v1/agents/plain/run", json={"input": f"question {i}"})
                    statuses.append(response.status_code)
                    if response.status_code == 402:
                        assert response.json()["error"]["code"] == "budget_exceeded"
                        break
            return statuses

        tight_runs = spend_until_refused(tight)
        assert tight_runs[-1] == 402
        assert 2 <= len(tight_runs) < 40
        red_runs = spend_until_refused(red)
        assert red_runs[-1] == 402
        # Another key (no budget of its own, no team) is not affected.
        with server.client(key=free) as client:
            assert client.post("/v1/agents/plain/run", json={"input": "still fine"}).status_code == 200
        # A key's run limits replace the agent's: one model step, so a tool-using run stops.
        with server.client(key=stepper) as client:
            body = client.post("/v1/agents/plain/run", json={"input": "[two-tools] go"}).json()
            assert body["status"] == "failed"
            assert body["error"]["code"] == "budget_exceeded"
            assert "max_model_steps" in body["error"]["message"]
            # ... and a request can still only lower them.
            lowered = client.post(
                "/v1/agents/plain/run", json={"input": "[two-tools] go", "limits": {"max_model_steps": 5}}
            ).json()
            assert lowered["status"] == "failed"

        with server.client() as admin:
            report = admin.get("/v1/costs").json()
        by_key = {row["name"]: row for row in report["by_key"]}
        assert "red" in {row["name"] for row in report["by_team"]}
        assert tight_body["id"] in by_key
        assert free_body["id"] in by_key
        spent = by_key[tight_body["id"]]["nanousd"]
        assert 0 < spent <= 20_000  # never more than the key's budget
    finally:
        server.stop()
