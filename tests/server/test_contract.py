"""The HTTP contract beyond what schemathesis generates: the OpenAPI document served at
/openapi.json (error schema, security, limits, SSE media types), the offline API docs, strict
query parameters, and `Allow` on 405."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.harness import ADMIN_HEADERS, Server, server_config

from agenthost.testing import MockLLMServer

_INPUT_LIMIT = 1000
_SSE_OPERATIONS = {
    ("/v1/agents/{agent}/stream", "post"),
    ("/v1/runs/{run_id}/events", "get"),
    ("/agent/stream", "post"),
}


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("contract")
    config = server_config(
        f"sqlite:///{workdir / 'a.db'}", mock_server.url, screening={"max_input_chars": _INPUT_LIMIT}
    )
    srv = Server(workdir, config).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def document(contract_server: Server) -> dict[str, Any]:
    response = httpx.get(f"{contract_server.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_every_error_response_is_the_error_schema(document: dict[str, Any]) -> None:
    """Every 4xx/5xx of every operation refers to the one `Error` schema (`/v1/messages`: Anthropic's
    envelope, `AnthropicError`); FastAPI's
    `HTTPValidationError` is gone; each operation documents 422 and 500."""
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["Error"]["required"] == ["error"]
    codes = set(schemas["ErrorCode"]["enum"])
    assert {"invalid_request", "run_not_found", "unauthorized", "rate_limited"} <= codes
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        assert {"422", "500"} <= set(responses), (path, method)
        for status, response in responses.items():
            if status.startswith(("4", "5")) and not (path == "/ready" and status == "503"):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                # The Anthropic door answers in Anthropic's envelope, but for what is refused before
                # routing (413) or fails unexpectedly (500) (docs/decisions.md).
                anthropic = path == "/v1/messages" and status not in {"413", "500"}
                expected = "AnthropicError" if anthropic else "Error"
                assert ref == f"#/components/schemas/{expected}", (path, method, status)


def test_security_is_declared_on_protected_operations_only(document: dict[str, Any]) -> None:
    """`X-API-Key` and `Authorization: Bearer` schemes; every operation that authenticates
    requires one of them and documents 401 and 429; /health and /ready do not."""
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"] == {
        **schemes["ApiKeyAuth"],
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert schemes["BearerAuth"]["scheme"] == "bearer"
    public = {("/health", "get"), ("/ready", "get")}
    for path, method, operation in _operations(document):
        if (path, method) in public:
            assert "security" not in operation
            assert "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"ApiKeyAuth": []}, {"BearerAuth": []}], (path, method)
            assert {"401", "429"} <= set(operation["responses"]), (path, method)


def test_streaming_operations_are_documented_as_event_streams(
    document: dict[str, Any], contract_server: Server
) -> None:
    """The SSE operations answer `text/event-stream` (and only that) in the document and on the wire."""
    for path, method in _SSE_OPERATIONS:
        content = document["paths"][path][method]["responses"]["200"]["content"]
        assert set(content) == {"text/event-stream"}, path
        assert "itemSchema" in content["text/event-stream"]
    with (
        contract_server.client() as client,
        client.stream("POST", "/v1/agents/plain/stream", json={"input": "hello"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        run_id = response.headers["x-run-id"]
        body = "".join(response.iter_text())
    assert "run.completed" in body
    with contract_server.client() as client:
        events = client.get(f"/v1/runs/{run_id}/events")
    assert events.status_code in (200, 204)
    if events.status_code == 200:
        assert events.headers["content-type"].startswith("text/event-stream")


def test_input_limit_is_the_configured_one_in_schema_and_server(
    document: dict[str, Any], contract_server: Server
) -> None:
    """`[screening] max_input_chars` is both the documented `maxLength` and the limit enforced:
    one character more is a 400 `input_rejected` and starts no run."""
    schemas = document["components"]["schemas"]
    assert schemas["RunCreate"]["properties"]["input"]["maxLength"] == _INPUT_LIMIT
    assert schemas["SeedRunCreate"]["properties"]["prompt"]["maxLength"] == _INPUT_LIMIT
    with contract_server.client() as client:
        before = client.get("/v1/runs", params={"limit": 1000}).json()["data"]
        too_long = client.post("/v1/agents/plain/runs", json={"input": "a" * (_INPUT_LIMIT + 1)})
        _assert_error(too_long, 400, "input_rejected")
        assert client.get("/v1/runs", params={"limit": 1000}).json()["data"] == before
        at_limit = client.post("/v1/agents/plain/runs", json={"input": "a" * _INPUT_LIMIT})
        assert at_limit.status_code == 202, at_limit.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/audit", {"until": "0.5"}),
        ("/v1/audit", {"since": "1700000000"}),
        ("/v1/costs", {"to": "0.5"}),
        ("/v1/costs", {"from": "2026-01-01T10:00:00"}),  # a time without its offset
        ("/v1/runs", {"created_after": "yesterday"}),
        ("/v1/runs", {"limit": "true"}),
        ("/v1/runs", {"limit": "1.5"}),
        ("/v1/admin/keys", {"include_revoked": "yes"}),
        ("/v1/agents/plain/run", {"wait": "inf"}),
    ],
)
def test_query_parameters_are_strict(contract_server: Server, path: str, params: dict[str, str]) -> None:
    """Numbers are not date-times, booleans are `true`/`false`, integers are integers: 422."""
    with contract_server.client() as client:
        method = "POST" if path.endswith("/run") else "GET"
        response = client.request(
            method, path, params=params, json={"input": "hi"} if method == "POST" else None
        )
    error = _assert_error(response, 422, "invalid_request")
    assert error["details"]["errors"][0]["field"] == next(iter(params))


def test_iso_datetimes_and_dates_are_accepted(contract_server: Server) -> None:
    with contract_server.client() as client:
        for params in (
            {"from": "2026-01-01", "to": "2026-01-02T00:00:00+02:00"},
            {"from": "2026-01-01T00:00:00Z"},
        ):
            assert client.get("/v1/costs", params=params).status_code == 200, params
        assert client.get("/v1/audit", params={"since": "2026-01-01T00:00:00.5Z"}).status_code == 200


def test_unknown_query_parameters_are_refused(contract_server: Server) -> None:
    """A parameter the operation does not declare (a typo) is a 422 naming it, even on /health;
    authentication is checked first."""
    with contract_server.client() as client:
        error = _assert_error(client.get("/v1/runs", params={"limt": "5"}), 422, "invalid_request")
        assert error["details"]["errors"] == [{"field": "limt", "message": "unknown query parameter"}]
        _assert_error(client.get("/health", params={"verbose": "1"}), 422, "invalid_request")
        assert client.get("/v1/runs", params={"limit": "5"}).status_code == 200
    anonymous = httpx.get(f"{contract_server.url}/v1/runs", params={"limt": "5"})
    _assert_error(anonymous, 401, "missing_credentials")


def test_405_lists_every_method_the_path_serves(contract_server: Server) -> None:
    """GET and DELETE /v1/threads/{id} are two routes; a 405 there (OPTIONS, PUT) names both,
    and every method `Allow` names is served."""
    url = f"{contract_server.url}/v1/threads/t1"
    for method in ("OPTIONS", "PUT", "PATCH"):
        response = httpx.request(method, url, headers=ADMIN_HEADERS)
        _assert_error(response, 405, "method_not_allowed")
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert {"GET", "DELETE"} <= allowed <= {"GET", "HEAD", "DELETE"}, method
        for served in allowed:
            assert httpx.request(served, url, headers=ADMIN_HEADERS).status_code != 405, served
    response = httpx.request("DELETE", f"{contract_server.url}/v1/runs", headers=ADMIN_HEADERS)
    assert {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"} == {"GET"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_only_local_assets(contract_server: Server, page: str) -> None:
    """The docs pages reference only this server's files (they work offline), and those files
    are served."""
    html = httpx.get(f"{contract_server.url}{page}").text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(
        r"""url:\s*['"]([^'"]+)['"]|spec-url=["']([^"']+)["']""", html
    )
    flat = [u for item in urls for u in (item if isinstance(item, tuple) else (item,)) if u]
    assert flat
    assert "http://" not in html
    assert "https://" not in html
    for url in flat:
        assert url.startswith("/"), url
        response = httpx.get(f"{contract_server.url}{url}")
        assert response.status_code == 200, url
        if url.endswith(".js"):
            assert "javascript" in response.headers["content-type"]
        if url.endswith(".css"):
            assert response.headers["content-type"].startswith("text/css")
