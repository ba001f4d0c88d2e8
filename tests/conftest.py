"""Shared fixtures: the mock LLM (in this process, over a real socket) and agenthost servers.

Server tests run against `agenthost serve` subprocesses, once on SQLite and once on a fresh
Postgres database, both pointed at the mock LLM.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agenthost.testing import MockLLMServer, load_script
from tests.harness import REDIS_URL, Server, postgres_database, require_service, server_config

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockLLMServer]:
    with MockLLMServer(load_script(SCRIPTS / "mock.yaml")) as server:
        yield server


@pytest.fixture
def mock(mock_server: MockLLMServer) -> MockLLMServer:
    mock_server.reset(knobs=True)
    return mock_server


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer
) -> Iterator[Server]:
    """A running server on each backend, shared by the tests of a session."""
    workdir = tmp_path_factory.mktemp(f"server-{request.param}")
    if request.param == "postgres":
        database_url = request.getfixturevalue("pg_url")
    else:
        database_url = f"sqlite:///{workdir / 'data' / 'agenthost.db'}"
    srv = Server(workdir, server_config(database_url, mock_server.url)).start()
    yield srv
    srv.stop()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the local Redis, its keys deleted afterwards (skips or fails without Redis)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis on 127.0.0.1:6379", exc)
    prefix = f"agenthost-test-{secrets.token_hex(4)}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
