"""Property-based API testing over the OpenAPI document with a valid admin key and every check
schemathesis has (server errors, status codes, media types, response schemas and headers,
negative and positive data, unsupported methods, ignored authentication, use after free,
resource availability...), the streaming (SSE) operations included, plus a stateful run over the
document's links (start a run -> status, events, steps, cancel).

Bounded: a few examples per operation, runs against a mock model that answers at once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import hypothesis
import pytest
import schemathesis
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tests.conftest import SCRIPTS
from tests.harness import ADMIN_HEADERS, REPO, Server, server_config

from agenthost.testing import MockLLMServer, load_script

_TIMEOUT = 30


def _config(database_url: str, mock_url: str) -> dict[str, Any]:
    config = server_config(
        database_url,
        mock_url,
        # Runs of random inputs against the mock end fast; approvals would wait, so none here.
        server={"run_wait_timeout": 2.0, "heartbeat_interval": 0.3, "shutdown_grace_seconds": 2.0},
    )
    config["agents"]["support"]["tools"] = {"refund": {"approval": "never"}}
    # Thousands of requests a minute from one address: no per-address limit here.
    config["rate_limits"] = {"per_ip": {"requests_per_minute": 0}}
    return config


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    # A mock LLM of its own: runs started here may still call it after this module, and other
    # tests count the shared mock's calls.
    mock = MockLLMServer(load_script(SCRIPTS / "mock.yaml")).__enter__()
    srv = Server(workdir, _config(f"sqlite:///{workdir / 'a.db'}", mock.url)).start()
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

    config = _config("sqlite:///unused.db", "http://127.0.0.1:9")
    return create_app(Settings.model_validate(config)).openapi()


schema = schemathesis.openapi.from_dict(_openapi())

# Operations whose valid requests may still be refused for a reason JSON Schema cannot state; for
# them only `positive_data_acceptance` is skipped (every other check runs).
_BEYOND_THE_SCHEMA = {
    "POST /v1/chat/completions": "`model` must name an agent or gateway model this server serves",
    "POST /v1/responses": "`model` must name an agent or gateway model this server serves",
    "POST /v1/messages": "`model` must name an agent or gateway model this server serves",
    "GET /v1/costs": "`from` must be before `to` (a relation between two parameters)",
    "GET /v1/runs": "`cursor` must be one the server returned (an opaque token)",
    "POST /v1/admin/keys": "`role`, `agents` and `limits` must name what this server configures",
    "POST /v1/stream-tokens": "the run or thread must exist; `ttl_seconds` at most the configured maximum",
}


@schema.parametrize()
@hypothesis.settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_document(case: schemathesis.Case, api_server: Server) -> None:
    """Every check schemathesis has (its default: all of them) holds for every operation."""
    skipped = [positive_data_acceptance] if case.operation.label in _BEYOND_THE_SCHEMA else []
    case.call_and_validate(
        base_url=api_server.url, headers=ADMIN_HEADERS, timeout=_TIMEOUT, excluded_checks=skipped
    )


# The run workflow only: start a run in the background, then what its links lead to.
_RUN_WORKFLOW = schema.include(
    path_regex=r"^/v1/(agents/\{agent\}/runs|runs/\{run_id\}(/events|/steps|/cancel)?)$"
)


class _RunWorkflow(_RUN_WORKFLOW.as_state_machine()):  # type: ignore[misc]
    """Stateful: the document's links from a started run to its status, events, steps, cancel."""

    base_url: ClassVar[str] = ""
    answered: ClassVar[list[tuple[str, int]]] = []

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": ADMIN_HEADERS, "timeout": _TIMEOUT}

    def after_call(self, response: Any, case: schemathesis.Case) -> None:
        self.answered.append((case.operation.label, response.status_code))


def test_stateful_run_links(api_server: Server) -> None:
    """Follow the document's links from started runs (the run's status, events, steps, cancel),
    validating every response with every check; the links lead to runs that exist."""
    _RunWorkflow.base_url = api_server.url
    _RunWorkflow.answered.clear()
    run_state_machine_as_test(
        _RunWorkflow,
        settings=hypothesis.settings(
            max_examples=3,
            stateful_step_count=4,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
        ),
    )
    followed = {label for label, status in _RunWorkflow.answered if 200 <= status < 300}
    linked = {
        "GET /v1/runs/{run_id}",
        "GET /v1/runs/{run_id}/events",
        "GET /v1/runs/{run_id}/steps",
        "POST /v1/runs/{run_id}/cancel",
    }
    assert followed & linked, _RunWorkflow.answered
