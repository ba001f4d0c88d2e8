"""Budgets and alerts through the real server: thresholds alert once each (to a flaky webhook,
with retries), a spent budget refuses runs promptly with 402, concurrent runs on two servers never
overshoot a shared budget (Redis, or Postgres alone), and a Redis outage fails closed or open."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from agenthost.testing import MockLLMServer
from tests.harness import (
    ADMIN_HEADERS,
    REDIS_URL,
    Server,
    free_port,
    postgres_database,
    server_config,
    wait_for,
)

# Small output estimates keep reservations close to real costs (a few micro-dollars per call).
LIMITS = {"output_tokens_estimate": 16}


class Webhook:
    """A local receiver that fails its first `failures` requests with 500."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                hook.attempts += 1
                if hook.attempts <= hook.failures:
                    self.send_response(500)
                else:
                    hook.received.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(failures=2)
    yield hook
    hook.close()


def test_a_user_budget_alerts_at_each_threshold_once_and_then_refuses(
    tmp_path: Path, mock: MockLLMServer, webhook: Webhook
) -> None:
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}",
        mock.url,
        limits=LIMITS,
        budgets={"per_user": {"daily_usd": 0.00004}},  # 40,000 nano-USD: about 8 short runs
        alerts={"webhooks": [webhook.url], "run_cost_usd": 0, "hourly_spend_usd": 0},
    )
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            outcomes = []
            for i in range(40):
                response = client.post("/v1/agents/plain/run", json={"input": f"hello {i}", "user_id": "u1"})
                outcomes.append(response)
                if response.status_code == 402 or response.json()["status"] == "failed":
                    break
            refused_at = time.monotonic()
            again = client.post("/v1/agents/plain/run", json={"input": "once more", "user_id": "u1"})
            refused_in = time.monotonic() - refused_at
            other_user = client.post("/v1/agents/plain/run", json={"input": "hello", "user_id": "u2"}).json()
            alerts = wait_for(
                lambda: (
                    (data := client.get("/v1/alerts", params={"kind": "budget"}).json()["data"])
                    and all(a["delivery"] == "delivered" for a in data)
                    and len(data) == 3
                    and data
                )
            )
            spent = client.get("/v1/costs").json()["by_user"]
    finally:
        server.stop()
    succeeded = [r.json() for r in outcomes if r.status_code == 200]
    assert len(succeeded) >= 3
    # The last call either failed inside its run (reservation refused) or the run was refused at once.
    last = outcomes[-1]
    assert last.status_code == 402 or last.json()["error"]["code"] == "budget_exceeded"
    assert again.status_code == 402
    assert again.json()["error"]["code"] == "budget_exceeded"
    # Refused at the door (402 before any run is written), not after a model call or a wait: on a
    # loaded CI machine one HTTP round trip can take a while, so the bound is generous.
    assert refused_in < 5.0
    assert other_user["status"] == "succeeded"
    u1 = next(row for row in spent if row["name"] == "u1")
    assert u1["nanousd"] <= 40_000
    assert sorted(a["id"].rsplit(":", 1)[-1] for a in alerts) == ["100", "50", "80"]
    assert all(a["data"]["budget"].startswith("user:u1:day:") for a in alerts)
    # Each alert reached the webhook exactly once, after the first two attempts failed.
    texts = sorted(body["agenthost"]["id"] for body in webhook.received)
    assert texts == sorted(a["id"] for a in alerts)
    assert webhook.attempts == 3 + 2
    assert all(body["text"].startswith(":rotating_light:") for body in webhook.received)


def test_costly_runs_and_hourly_spend_alert_once(tmp_path: Path, mock: MockLLMServer) -> None:
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}",
        mock.url,
        alerts={"run_cost_usd": 0.000001, "hourly_spend_usd": 0.000001},
    )
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            runs = [client.post("/v1/agents/plain/run", json={"input": f"hi {i}"}).json() for i in range(3)]
            wait_for(lambda: len(client.get("/v1/alerts").json()["data"]) == 4)
            time.sleep(0.3)  # nothing else fires
            alerts = client.get("/v1/alerts").json()["data"]
    finally:
        server.stop()
    kinds = sorted(a["kind"] for a in alerts)
    assert kinds == ["hourly_spend", "run_cost", "run_cost", "run_cost"]
    assert {a["data"]["run_id"] for a in alerts if a["kind"] == "run_cost"} == {r["id"] for r in runs}
    assert "log" not in alerts[0]["delivery"]


def _two_servers(
    tmp_path: Path, mock: MockLLMServer, database: str, redis: dict[str, Any] | None
) -> list[Server]:
    servers = []
    for name in ("a", "b"):
        overrides: dict[str, Any] = {
            "limits": LIMITS,
            "budgets": {"total": {"daily_usd": 0.0003}},  # 300,000 nano-USD: about 60 of 200 runs
            "durability": {"executor_id": name, "queue_concurrency": 32},
            "server": {"run_wait_timeout": 60.0},
        }
        if redis:
            overrides["redis"] = redis
        servers.append(Server(tmp_path / name, server_config(database, mock.url, **overrides)).start())
    return servers


@pytest.mark.parametrize("shared", ["redis", "postgres"])
def test_concurrent_runs_on_two_servers_never_overshoot_a_shared_budget(
    tmp_path: Path, mock: MockLLMServer, shared: str, request: pytest.FixtureRequest
) -> None:
    redis = None
    if shared == "redis":
        redis = {"url": REDIS_URL, "key_prefix": request.getfixturevalue("redis_prefix")}
    with postgres_database() as database:
        servers = _two_servers(tmp_path, mock, database, redis)
        try:

            def submit(i: int) -> tuple[int, str]:
                server = servers[i % 2]
                response = httpx.post(
                    f"{server.url}/v1/agents/plain/run",
                    json={"input": f"run number {i}"},
                    headers=ADMIN_HEADERS,
                    timeout=60,
                )
                body = response.json()
                code = body.get("error", {}).get("code") if isinstance(body.get("error"), dict) else None
                return response.status_code, body.get("status") or code or ""

            with ThreadPoolExecutor(max_workers=40) as pool:
                results = list(pool.map(submit, range(200)))
            report = httpx.get(f"{servers[0].url}/v1/costs", headers=ADMIN_HEADERS).json()
            started = time.monotonic()
            late = httpx.post(
                f"{servers[1].url}/v1/agents/plain/run",
                json={"input": "late"},
                headers=ADMIN_HEADERS,
                timeout=30,
            )
            late_in = time.monotonic() - started
        finally:
            for server in servers:
                server.stop()
    succeeded = sum(1 for status, outcome in results if status == 200 and outcome == "succeeded")
    refused = sum(1 for status, _ in results if status == 402)
    failed = sum(1 for status, outcome in results if status == 200 and outcome == "failed")
    others = [r for r in results if r[0] != 402 and r[1] not in ("succeeded", "failed")]
    assert succeeded + refused + failed == 200, others
    assert succeeded >= 20
    assert refused + failed >= 50
    # Reservations are taken atomically and each covers its call: spend never passes the budget.
    assert 0 < report["total"]["nanousd"] <= 300_000
    assert report["total"]["runs"] == succeeded
    assert late.status_code == 402
    assert late_in < 1.0


@pytest.mark.parametrize(("mode", "status"), [("closed", 503), ("open", 200)])
def test_budget_store_outage_fails_closed_or_open(
    tmp_path: Path, mock: MockLLMServer, mode: str, status: int
) -> None:
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}",
        mock.url,
        budgets={"total": {"daily_usd": 10}, "on_store_error": mode},
        redis={"url": f"redis://127.0.0.1:{free_port()}/0"},  # nothing listens there
    )
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            response = client.post("/v1/agents/plain/run", json={"input": "hello"})
    finally:
        server.stop()
    assert response.status_code == status
    if mode == "closed":
        assert response.json()["error"]["code"] == "budget_unavailable"
    else:
        assert response.json()["status"] == "succeeded"
