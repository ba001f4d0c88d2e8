"""The spend ledger and `GET /v1/costs` (and `agenthost costs`) on a fixed scripted workload,
against prices computed by hand; on SQLite and Postgres."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from agenthost.testing import MockLLMServer
from tests.harness import ADMIN_KEY, AGENTHOST, REPO, Server, postgres_database, server_config, wait_for

# USD per million tokens = nano-dollars per token.
GPT_4O_MINI = (150, 600)  # input, output
CLAUDE_HAIKU_4_5 = (1000, 5000)


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path, mock_server: MockLLMServer) -> Iterator[Server]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'a.db'}"
        server = Server(tmp_path, server_config(url, mock_server.url)).start()
        yield server
        server.stop()
        return
    with postgres_database() as url:
        server = Server(tmp_path, server_config(url, mock_server.url)).start()
        yield server
        server.stop()


def priced(usage: dict[str, Any], rates: tuple[int, int]) -> int:
    return usage["input_tokens"] * rates[0] + usage["output_tokens"] * rates[1]


def test_ledger_and_report_match_hand_computed_prices(fresh: Server, mock: MockLLMServer) -> None:
    with fresh.client() as client:
        runs = [
            client.post("/v1/agents/plain/run", json={"input": text, "user_id": user}).json()
            for text, user in (
                ("hello", "u1"),
                ("a somewhat longer question about parcels", "u2"),
                ("hi", "u1"),
            )
        ]
        runs.append(
            client.post("/v1/agents/support/run", json={"input": "[two-tools] go", "user_id": "u1"}).json()
        )
        sdk = OpenAI(base_url=f"{fresh.url}/v1", api_key=ADMIN_KEY, max_retries=0)
        completions = [
            sdk.chat.completions.create(
                model="mock-anthropic", messages=[{"role": "user", "content": text}], user="u3"
            )
            for text in ("one", "two three four")
        ]
        report = client.get("/v1/costs").json()
        bad = client.get("/v1/costs", params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
        empty = client.get("/v1/costs", params={"from": "2001-01-01", "to": "2001-01-02"}).json()

    assert [r["status"] for r in runs] == ["succeeded"] * 4
    run_costs = [priced(r["usage"], GPT_4O_MINI) for r in runs]
    assert [r["cost"]["nanousd"] for r in runs] == run_costs  # each run priced to the nano-dollar
    front_door = []
    for completion in completions:
        assert completion.usage is not None
        usage = {
            "input_tokens": completion.usage.prompt_tokens,
            "output_tokens": completion.usage.completion_tokens,
        }
        front_door.append(priced(usage, CLAUDE_HAIKU_4_5))
        extra: Any = completion.model_extra
        assert extra["agenthost"]["cost"]["nanousd"] == front_door[-1]

    total = report["total"]
    assert total["nanousd"] == sum(run_costs) + sum(front_door)
    assert total["calls"] == 3 + 3 + 2 == mock.stats()["total_calls"]  # support run: 3 model calls
    assert total["runs"] == 4
    assert total["unpriced_calls"] == total["cached_calls"] == 0
    assert report["today"]["nanousd"] == total["nanousd"]
    assert report["average_per_run"]["nanousd"] == sum(run_costs) // 4
    assert sum(hour["nanousd"] for hour in report["hourly"]) == total["nanousd"]
    assert len(report["hourly"]) == 24
    top = report["top_runs"]
    assert [t["run_id"] for t in top] == [r["id"] for r in sorted(runs, key=lambda r: -r["cost"]["nanousd"])][
        :4
    ]
    assert top[0]["run_id"] == runs[3]["id"]
    assert top[0]["calls"] == 3
    by_model = {row["name"]: row["nanousd"] for row in report["by_model"]}
    assert by_model == {"gpt-4o-mini": sum(run_costs), "claude-haiku-4-5": sum(front_door)}
    by_user = {row["name"]: row["nanousd"] for row in report["by_user"]}
    assert by_user == {
        "u1": run_costs[0] + run_costs[2] + run_costs[3],
        "u2": run_costs[1],
        "u3": sum(front_door),
    }
    by_agent = {row["name"]: row["calls"] for row in report["by_agent"]}
    assert by_agent == {"plain": 3, "support": 3, None: 2}
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_range"
    assert empty["total"]["nanousd"] == 0
    assert empty["top_runs"] == []

    cli = subprocess.run(
        [str(AGENTHOST), "costs", "--url", fresh.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO), "AGENTHOST_API_KEY": ADMIN_KEY},
        check=True,
    )
    assert f"${total['usd']:,.6f}" in cli.stdout
    assert "last 24 h" in cli.stdout
    assert runs[3]["id"] in cli.stdout
    assert "claude-haiku-4-5" in cli.stdout


def test_ledger_rows_past_retention_are_purged_and_the_rest_kept(tmp_path: Path, mock: MockLLMServer) -> None:
    database = tmp_path / "a.db"
    config = server_config(f"sqlite:///{database}", mock.url, ledger={"retention_days": 30})
    server = Server(tmp_path, config).start()
    with server.client() as client:
        client.post("/v1/agents/plain/run", json={"input": "recent"})
    server.stop()
    with sqlite3.connect(database) as db:
        recent = db.execute("SELECT count(*) FROM spend_ledger").fetchone()[0]
        (columns,) = [[c[1] for c in db.execute("PRAGMA table_info(spend_ledger)")]]
        row = dict(zip(columns, db.execute("SELECT * FROM spend_ledger").fetchone(), strict=True))
        for days in (29, 31, 400):
            old = {
                **row,
                "source": f"old-{days}",
                "created_at": (datetime.now(UTC) - timedelta(days=days)).isoformat(),
            }
            db.execute(
                f"INSERT INTO spend_ledger ({', '.join(old)}) VALUES ({', '.join('?' * len(old))})",
                list(old.values()),
            )
    server = Server(tmp_path, config).start()  # the retention job runs at start-up
    with server.client() as client:
        report = wait_for(
            lambda: (
                (costs := client.get("/v1/costs", params={"from": "2000-01-01T00:00:00Z"}).json())["total"][
                    "calls"
                ]
                < 4
                and costs
            ),
            timeout=60,
        )
    server.stop()
    with sqlite3.connect(database) as db:
        sources = {s for (s,) in db.execute("SELECT source FROM spend_ledger")}
    assert recent == 1
    assert "old-29" in sources
    assert not {"old-31", "old-400"} & sources
    assert report["total"]["calls"] == 2
