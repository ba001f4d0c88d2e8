"""Fixtures for durability tests.

* `durable_server`: one server per backend for the session (tests that never kill it);
* `make_server`: fresh servers on a fresh database per test (tests that SIGKILL or SIGTERM them).

Both run the `crashy` test agent, whose tools log each execution under `tool_log`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agenthost.testing import MockLLMServer
from tests.harness import Server, postgres_database, server_config

TOOLS: dict[str, Any] = {
    "charge": {"execution": "at_most_once"},
    "pay": {"approval": "required", "execution": "at_most_once"},
    "reserve": {"approval": "required", "approval_timeout_seconds": 1.0},
}
CRASHY = {"path": "tests.agents.crashy:agent", "model": "mock", "tools": TOOLS}


def crashy_config(
    database_url: str, mock_url: str, tools: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    agents = {"crashy": {**CRASHY, "tools": {**TOOLS, **(tools or {})}}}
    return server_config(database_url, mock_url, agents=agents, default_agent="crashy", **overrides)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def durable_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(f"durable-{request.param}")
    (workdir / "tool-log").mkdir()
    env = {"AGENTHOST_TEST_TOOL_LOG": str(workdir / "tool-log")}
    # A database of its own: two deployments serving different agents must not share one (they
    # would take each other's runs from the shared DBOS queues).
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            database_url = stack.enter_context(postgres_database())
        else:
            database_url = f"sqlite:///{workdir / 'data' / 'agenthost.db'}"
        server = Server(workdir, crashy_config(database_url, mock_server.url), env=env).start()
        yield server
        server.stop()


@pytest.fixture
def shared_tool_log(durable_server: Server) -> Path:
    return durable_server.workdir / "tool-log"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'agenthost.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def tool_log(tmp_path: Path) -> Path:
    path = tmp_path / "tool-log"
    path.mkdir()
    return path


@pytest.fixture
def make_server(
    tmp_path: Path, database_url: str, mock: MockLLMServer, tool_log: Path
) -> Iterator[Callable[..., Server]]:
    """Build (not start) servers sharing this test's database and tool log; all stopped at the end."""
    servers: list[Server] = []

    def build(tools: dict[str, Any] | None = None, **overrides: Any) -> Server:
        config = crashy_config(database_url, mock.url, tools, **overrides)
        server = Server(tmp_path / "server", config, env={"AGENTHOST_TEST_TOOL_LOG": str(tool_log)})
        if servers:
            server.port = servers[0].port  # a restart answers where clients already are
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.stop()


def lines(path: Path, item: str | None = None) -> list[str]:
    """Lines of a tool log, or only those for `item`."""
    found = path.read_text().splitlines() if path.exists() else []
    return found if item is None else [line for line in found if line == item]
