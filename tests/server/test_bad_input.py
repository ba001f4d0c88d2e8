"""Bad input gets a clear 4xx JSON error and changes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.harness import Server, server_config

from agenthost.testing import MockLLMServer


def run_count(client: httpx.Client) -> int:
    return len(client.get("/v1/runs", params={"limit": 1000}).json()["data"])


@pytest.fixture
def client(server: Server, mock: MockLLMServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        before = run_count(c)
        yield c
        assert run_count(c) == before, "a rejected request wrote a run"
    assert mock.stats()["total_calls"] == 0, "a rejected request reached the model"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.mark.parametrize("path", ["/v1/agents/plain/run", "/v1/agents/plain/stream", "/v1/agents/plain/runs"])
def test_malformed_json(client: httpx.Client, path: str) -> None:
    response = client.post(
        path, content=b'{"input": "unterminated', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize(
    ("content_type", "named"),
    [("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"), (None, "no content-type")],
)
@pytest.mark.parametrize("path", ["/v1/agents/plain/run", "/v1/agents/plain/runs", "/v1/runs/run_x/fork"])
def test_json_body_without_json_content_type(
    client: httpx.Client, path: str, content_type: str | None, named: str
) -> None:
    """curl's `-d` without `-H 'content-type: application/json'` sends a form: 415 says what to do."""
    headers = {"content-type": content_type} if content_type else {}
    request = client.build_request("POST", path, content=b'{"input": "hi", "from_step": 1}', headers=headers)
    assert ("content-type" in request.headers) == (content_type is not None)
    error = assert_error(client.send(request), 415, "unsupported_media_type")
    assert "content-type: application/json" in error["message"]
    assert named in error["message"]


@pytest.mark.parametrize("path", ["/v1/agents/nope/run", "/v1/agents/nope/stream", "/v1/agents/nope/runs"])
def test_unknown_agent(client: httpx.Client, path: str) -> None:
    error = assert_error(client.post(path, json={"input": "hi"}), 404, "agent_not_found")
    assert "nope" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": 42}, "input"),
        ({"input": "hi", "max_tokens": "many"}, "max_tokens"),
        ({"input": "hi", "max_tokens": 0}, "max_tokens"),
        ({"input": "hi", "user_id": ["a"]}, "user_id"),
        ({"input": "hi", "surprise": True}, "surprise"),
        (["input"], "body"),
    ],
)
def test_missing_or_wrong_typed_fields(client: httpx.Client, body: object, field: str) -> None:
    error = assert_error(client.post("/v1/agents/plain/run", json=body), 422, "invalid_request")
    assert field in error["message"]


def test_seed_alias_validation(client: httpx.Client) -> None:
    error = assert_error(client.post("/agent/run", json={"user_id": "x"}), 422, "invalid_request")
    assert "prompt" in error["message"]


def test_oversize_body(client: httpx.Client) -> None:
    big = "x" * 1_100_000
    assert_error(client.post("/v1/agents/plain/run", json={"input": big}), 413, "payload_too_large")


def test_oversize_chunked_body(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"input": "'
        for _ in range(200):
            yield b"y" * 8192
        yield b'"}'

    response = client.post(
        "/v1/agents/plain/run", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_unknown_run_id(client: httpx.Client) -> None:
    for method, path in [
        ("GET", "/v1/runs/run_nope"),
        ("GET", "/v1/runs/run_nope/events"),
        ("POST", "/v1/runs/run_nope/cancel"),
    ]:
        assert_error(client.request(method, path), 404, "run_not_found")


def test_bad_list_parameters(client: httpx.Client) -> None:
    assert_error(client.get("/v1/runs", params={"status": "weird"}), 422, "invalid_request")
    assert_error(client.get("/v1/runs", params={"limit": 0}), 422, "invalid_request")
    assert_error(client.get("/v1/runs", params={"cursor": "%%%"}), 422, "invalid_cursor")
    assert_error(
        client.get("/v1/runs", params={"created_after": "2026-01-01T00:00:00"}), 422, "invalid_request"
    )


def test_bad_idempotency_key(client: httpx.Client) -> None:
    response = client.post(
        "/v1/agents/plain/run", json={"input": "hi"}, headers={"Idempotency-Key": "k" * 300}
    )
    assert_error(response, 422, "invalid_idempotency_key")


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.delete("/v1/runs"), 405, "method_not_allowed")


def test_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.get("/v1/runs/run_nope", headers={"X-Request-ID": "my-trace-123"})
    assert response.json()["error"]["request_id"] == "my-trace-123"


# --- integers from the client are bounded before use ---------------------------------------------

MAX_EVENT_SEQ = 2**31 - 1  # run_events.seq is an INTEGER (32-bit on Postgres)
MAX_AUDIT_SEQ = 2**63 - 1  # audit_log.seq is a BIGINT


@pytest.fixture(scope="module")
def finished_run(server: Server) -> str:
    """A finished run to aim bad input at; module-scoped, so it exists before `client` counts runs
    and before `mock` resets the model's call count."""
    with server.client() as c:
        response = c.post("/v1/agents/plain/run", json={"input": "hi"})
    assert response.status_code == 200, response.text
    run_id: str = response.json()["id"]
    return run_id


@pytest.fixture
def console_server(tmp_path: Path, mock_server: MockLLMServer) -> Iterator[Server]:
    """A server logging for people (`format = "console"`): there, an unhandled error's traceback is
    rendered with every frame's locals, which holds the event loop for tens of seconds."""
    config = server_config(
        f"sqlite:///{tmp_path / 'agenthost.db'}", mock_server.url, logging={"format": "console"}
    )
    srv = Server(tmp_path, config).start()
    yield srv
    srv.stop()


def test_huge_last_event_id_is_refused_and_health_stays_fast(console_server: Server) -> None:
    with console_server.client() as c:
        run_id = c.post("/v1/agents/plain/run", json={"input": "hi"}).json()["id"]
        outcome: dict[str, object] = {}

        def follow() -> None:
            try:
                outcome["response"] = c.get(
                    f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "99999999999999999999999"}
                )
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=follow)
        thread.start()
        with httpx.Client(base_url=console_server.url, timeout=30) as probe:
            for _ in range(10):
                started = time.monotonic()
                assert probe.get("/health").status_code == 200
                assert time.monotonic() - started < 2, "the event loop was blocked"
                time.sleep(0.1)
        thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    response = outcome["response"]
    assert isinstance(response, httpx.Response)
    assert_error(response, 422, "invalid_last_event_id")


@pytest.mark.parametrize(
    "value", ["99999999999999999999999", str(MAX_EVENT_SEQ + 1), str(2**63), "9" * 5000, "-1", "1.5", "0x10"]
)
def test_last_event_id_out_of_range(client: httpx.Client, finished_run: str, value: str) -> None:
    response = client.get(f"/v1/runs/{finished_run}/events", headers={"Last-Event-ID": value})
    error = assert_error(response, 422, "invalid_last_event_id")
    assert str(MAX_EVENT_SEQ) in error["message"]


@pytest.mark.parametrize("value", [b"1\xff", b"\xff", b"\xb2", b"1\xb9"])  # ² and ¹ pass str.isdigit
def test_last_event_id_with_non_ascii_bytes(client: httpx.Client, finished_run: str, value: bytes) -> None:
    response = client.get(f"/v1/runs/{finished_run}/events", headers={"Last-Event-ID": value})
    assert_error(response, 422, "invalid_last_event_id")


def test_largest_event_ids_are_accepted(client: httpx.Client, finished_run: str) -> None:
    for request in (
        {"headers": {"Last-Event-ID": str(MAX_EVENT_SEQ)}},
        {"headers": {"Last-Event-ID": f"000{MAX_EVENT_SEQ}"}},
        {"params": {"after": MAX_EVENT_SEQ}},
    ):
        with client.stream("GET", f"/v1/runs/{finished_run}/events", **request) as response:  # type: ignore[arg-type]
            # Accepted; the run has ended and nothing comes after the largest id: 204, no stream.
            assert response.status_code == 204
            assert response.read() == b""


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/runs/{run}/events", {"after": 10**30}),
        ("/v1/runs/{run}/events", {"after": MAX_EVENT_SEQ + 1}),
        ("/v1/audit", {"before_seq": 10**30}),
        ("/v1/audit", {"before_seq": MAX_AUDIT_SEQ + 1}),
        ("/v1/audit", {"before_seq": "9" * 5000}),
        ("/v1/runs", {"limit": 10**30}),
        ("/v1/approvals", {"limit": 10**30}),
        ("/v1/alerts", {"limit": 10**30}),
    ],
)
def test_query_integers_out_of_range(
    client: httpx.Client, finished_run: str, path: str, params: dict[str, object]
) -> None:
    response = client.get(path.format(run=finished_run), params=params)  # type: ignore[arg-type]
    error = assert_error(response, 422, "invalid_request")
    assert next(iter(params)) in error["message"]


def test_largest_audit_seq_is_accepted(client: httpx.Client) -> None:
    response = client.get("/v1/audit", params={"before_seq": MAX_AUDIT_SEQ})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("from_step", [2**31, 10**30])
def test_fork_from_step_out_of_range(client: httpx.Client, finished_run: str, from_step: int) -> None:
    response = client.post(f"/v1/runs/{finished_run}/fork", json={"from_step": from_step})
    error = assert_error(response, 422, "invalid_request")
    assert "from_step" in error["message"]


@pytest.mark.parametrize(
    ("model", "extra", "field"),
    [
        ("plain", {"max_tokens": 10**30}, "max_tokens"),
        ("mock", {"max_tokens": 10**30}, "max_tokens"),
        ("mock", {"max_completion_tokens": 1_000_001}, "max_completion_tokens"),
        ("mock", {"seed": 2**63}, "seed"),
        ("plain", {"seed": -(2**63) - 1}, "seed"),
    ],
)
def test_chat_completions_integers_out_of_range(
    client: httpx.Client, model: str, extra: dict[str, int], field: str
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    error = assert_error(client.post("/v1/chat/completions", json=body), 422, "invalid_request")
    assert field in error["message"]


@pytest.mark.parametrize("path", ["/v1/agents/plain/run", "/agent/run"])
def test_metadata_integers_out_of_range(client: httpx.Client, path: str) -> None:
    body = {"input": "hi", "metadata": {"n": 2**63}}
    error = assert_error(client.post(path, json=body), 422, "invalid_request")
    assert "metadata" in error["message"]


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"rate_limits": {"requests_per_minute": 10**400}}, "invalid_rate_limits"),
        ({"rate_limits": {"tokens_per_minute": 10**13}}, "invalid_rate_limits"),
        ({"budgets": {"daily_usd": 1e300}}, "invalid_budgets"),
        ({"limits": {"max_tokens": -5}}, "invalid_limits"),
        ({"limits": {"max_tokens": 10**30}}, "invalid_limits"),
        ({"limits": {"max_model_steps": 1.5}}, "invalid_limits"),
        ({"limits": {"max_cost_usd": 1e300}}, "invalid_limits"),
        ({"limits": {"output_tokens_estimate": 10**12}}, "invalid_limits"),
    ],
)
def test_key_integers_out_of_range(client: httpx.Client, spec: dict[str, object], code: str) -> None:
    before = len(client.get("/v1/admin/keys").json()["data"])
    body = {"name": "bounded", "role": "user", "user_id": "u-bounded", **spec}
    assert_error(client.post("/v1/admin/keys", json=body), 422, code)
    assert len(client.get("/v1/admin/keys").json()["data"]) == before, "a rejected request made a key"
