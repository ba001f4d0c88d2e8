"""Bad input gets a clear 4xx JSON error and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.harness import Server

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
