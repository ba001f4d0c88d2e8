"""Fixtures for durability tests: a fresh database per test (SQLite file or Postgres database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agenthost.testing import MockLLMServer
from tests.harness import Server, postgres_database, server_config

CRASHY = {"path": "tests.agents.crashy:agent", "model": "mock"}


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
        agents = {"crashy": {**CRASHY, "tools": tools or {}}}
        config = server_config(database_url, mock.url, agents=agents, default_agent="crashy", **overrides)
        server = Server(tmp_path / "server", config, env={"AGENTHOST_TEST_TOOL_LOG": str(tool_log)})
        if servers:
            server.port = servers[0].port  # a restart answers where clients already are
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.stop()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
