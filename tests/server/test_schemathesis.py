"""Property-based API testing over the OpenAPI schema with a valid admin key: no request the
schema allows (or nearly allows) makes the server answer 5xx, and documented responses match
their schemas. Bounded: a few examples per operation, so it runs in well under a minute."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from tests.conftest import SCRIPTS
from tests.harness import ADMIN_HEADERS, REPO, Server, server_config

from agenthost.testing import MockLLMServer, load_script


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    # A mock LLM of its own: runs started here may still call it after this module, and other
    # tests count the shared mock's calls.
    mock = MockLLMServer(load_script(SCRIPTS / "mock.yaml")).__enter__()
    config = server_config(
        f"sqlite:///{workdir / 'a.db'}",
        mock.url,
        # Runs of random inputs against the mock end fast; approvals would wait, so none here.
        server={"run_wait_timeout": 2.0, "heartbeat_interval": 0.3, "shutdown_grace_seconds": 2.0},
    )
    config["agents"]["support"]["tools"] = {"refund": {"approval": "never"}}
    srv = Server(workdir, config).start()
    try:
        yield srv
    finally:
        srv.stop()
        mock.__exit__(None, None, None)


def _openapi() -> dict[str, Any]:
    """The server's OpenAPI document, from the app itself (the same code `serve` runs)."""
    sys.path.insert(0, str(REPO / "examples" / "support"))
    from agenthost.server.app import create_app
    from agenthost.settings import Settings

    config = server_config("sqlite:///unused.db", "http://127.0.0.1:9")
    return create_app(Settings.model_validate(config)).openapi()


# Endpoints that stream until the client leaves (SSE) are covered by their own tests.
schema = schemathesis.openapi.from_dict(_openapi()).exclude(path_regex=r"(/stream$|/events$)")


@schema.parametrize()
@hypothesis.settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_api_has_no_server_errors_and_matches_its_schema(case: schemathesis.Case, api_server: Server) -> None:
    case.call_and_validate(
        base_url=api_server.url,
        headers=ADMIN_HEADERS,
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )
