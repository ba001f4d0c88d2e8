"""`[server.cors]`: preflights from allowed origins are answered before authentication, other
origins get no `Access-Control-Allow-Origin`, responses expose the headers a page needs, and
configurations that would be unsafe or could never match are refused at load time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from tests.harness import ADMIN_HEADERS, Server, server_config

from agenthost.config.server import CorsSettings
from agenthost.testing import MockLLMServer

APP = "http://app.example.test:5173"
EVIL = "http://evil.example.test"


def preflight(client: httpx.Client, path: str, origin: str, method: str = "POST") -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "x-api-key, content-type, idempotency-key, last-event-id",
        },
    )


def page_client(server: Server, origin: str, *, key: bool = True) -> httpx.Client:
    """A client that sends `Origin` as a browser page would (and the admin key, unless `key` is false)."""
    headers = {**(ADMIN_HEADERS if key else {}), "Origin": origin}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("cors")
    config = server_config(
        f"sqlite:///{workdir / 'agenthost.db'}",
        mock_server.url,
        server={"cors": {"allow_origins": [APP], "max_age": 120}},
        rate_limits={"per_key": {"requests_per_minute": 10_000}},
    )
    server = Server(workdir, config).start()
    yield server
    server.stop()


def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(cors_server: Server) -> None:
    with cors_server.client(key=None) as anonymous:
        for path, method in (
            ("/v1/agents/plain/run", "POST"),
            ("/v1/stream-tokens", "POST"),
            ("/v1/runs/run_x/events", "GET"),
            ("/v1/threads/t1", "DELETE"),
        ):
            response = preflight(anonymous, path, APP, method)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["Access-Control-Allow-Origin"] == APP
            allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
            assert {
                "x-api-key",
                "authorization",
                "content-type",
                "idempotency-key",
                "last-event-id",
            } <= allowed
            assert method in response.headers["Access-Control-Allow-Methods"]
            assert response.headers["Access-Control-Max-Age"] == "120"
            assert "Access-Control-Allow-Credentials" not in response.headers
            assert response.headers["X-Request-ID"]


def test_a_preflight_from_another_origin_gets_no_allow_origin(cors_server: Server) -> None:
    with cors_server.client(key=None) as anonymous:
        for origin in (EVIL, APP + "/", "http://app.example.test", "https://app.example.test:5173", "null"):
            response = preflight(anonymous, "/v1/agents/plain/run", origin)
            assert response.status_code == 400, origin
            assert "Access-Control-Allow-Origin" not in response.headers, origin


def test_responses_to_an_allowed_origin_expose_rate_limit_and_request_headers(
    cors_server: Server, mock: MockLLMServer
) -> None:
    with httpx.Client(
        base_url=cors_server.url, headers={**ADMIN_HEADERS, "Origin": APP}, timeout=30
    ) as client:
        response = client.post("/v1/agents/plain/runs", json={"input": "from a page"})
        assert response.status_code == 202, response.text
        assert response.headers["Access-Control-Allow-Origin"] == APP
        exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        sent = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"}
        assert {"X-Request-ID", "Location", "Retry-After", "X-Run-Id", *sent} <= exposed
        for name in sent:  # every rate-limit header exposed is one the server actually sends
            assert name in response.headers
    with page_client(cors_server, APP, key=False) as anonymous:
        refused = anonymous.get("/v1/runs")  # an error is readable by the page too
        assert refused.status_code == 401
        assert refused.headers["Access-Control-Allow-Origin"] == APP
    with httpx.Client(
        base_url=cors_server.url, headers={**ADMIN_HEADERS, "Origin": EVIL}, timeout=30
    ) as client:
        assert "Access-Control-Allow-Origin" not in client.get("/v1/runs").headers


def test_cors_is_off_by_default(server: Server) -> None:
    """Without `[server.cors]`, a preflight is an ordinary OPTIONS request: 405, no CORS headers."""
    with server.client(key=None) as anonymous:
        response = preflight(anonymous, "/v1/agents/plain/run", APP)
        assert response.status_code == 405
        assert not any(h.lower().startswith("access-control-") for h in response.headers)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, "list the origins"),
        ({"allow_origins": [APP], "allow_credentials": True, "allow_headers": ["*"]}, "list the headers"),
        ({"allow_origins": [APP + "/"]}, "is not an origin"),
        ({"allow_origins": ["app.example.test"]}, "is not an origin"),
        ({"allow_origins": ["ftp://app.example.test"]}, "is not an origin"),
        ({"allow_origins": ["*", APP]}, "alone"),
        ({"allow_origins": [APP], "max_age": -1}, "greater than or equal"),
        ({"allow_origins": [APP], "allow_origin": [APP]}, "Extra inputs"),
    ],
)
def test_unsafe_or_impossible_cors_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CorsSettings(**settings)


def test_valid_cors_settings() -> None:
    assert not CorsSettings().enabled
    assert CorsSettings(allow_origins=["*"]).enabled
    both = CorsSettings(allow_origins=[APP, "https://[::1]:8443"], allow_credentials=True)
    assert both.allow_origins == [APP, "https://[::1]:8443"]
