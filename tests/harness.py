"""Test harness: `agenthost serve` as a real subprocess, a Postgres database per session, SSE parsing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
AGENTHOST = Path(sys.executable).parent / "agenthost"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def start_mock(script: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`agenthost mock-llm` in a subprocess (for benchmarks: its own CPU, not the caller's GIL)."""
    port = free_port()
    process = subprocess.Popen(
        [str(AGENTHOST), "mock-llm", "--port", str(port), "--script", str(script)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.HTTPError:
            time.sleep(0.1)
        else:
            return process, url
    raise RuntimeError("mock LLM did not start")


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


REDIS_URL = "redis://127.0.0.1:6379/0"
# The bootstrap admin credential of test servers (`[auth] admin_key`); `Server.client()` sends it.
ADMIN_KEY = "admin-" + "t" * 24
ADMIN_HEADERS = {"X-API-Key": ADMIN_KEY}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_service(name: str, error: BaseException) -> None:
    """Fail under CI (the service must be there), skip with the reason elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} is required in CI but unavailable: {error}")
    pytest.skip(f"{name} unavailable: {error}")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh Postgres database for one test session; dropped afterwards."""
    import psycopg

    name = f"agenthost_t_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL on 127.0.0.1:5432", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def render_toml(config: dict[str, Any]) -> str:
    """Enough TOML for test configs: scalars at the top, then [tables] and [tables.sub]."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    while tables:
        name, table = tables.pop(0)
        lines.append(f"\n[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                tables.append((f"{name}.{json.dumps(key)}", value))
            else:
                lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def mock_models(mock_url: str) -> dict[str, Any]:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused
    return {
        "down": {
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": closed,
            "api_key": "k",
            "fallbacks": ["mock"],
        },
        "down-too": {"provider": "openai", "model": "gpt-4.1", "base_url": closed, "api_key": "k"},
        "hopeless": {
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": closed,
            "api_key": "k",
            "fallbacks": ["down-too"],
        },
        "mock-big": {
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": f"{mock_url}/v1",
            "api_key": "sk-test",
        },
        "mock": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": f"{mock_url}/v1",
            "api_key": "sk-test",
        },
        "mock-anthropic": {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "base_url": mock_url,
            "api_key": "sk-ant-test",
        },
    }


def server_config(database_url: str, mock_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database_url": database_url,
        "default_agent": "support",
        "agents": {
            "support": {
                "path": "agent:support_agent",
                "model": "mock",
                "description": "example support agent",
                "tools": {"refund": {"approval": "required", "execution": "at_most_once"}},
            },
            "plain": {"path": "tests.agents.plain:agent", "model": "mock"},
            "claude": {"path": "tests.agents.plain:agent", "model": "mock-anthropic"},
            "resilient": {"path": "tests.agents.plain:agent", "model": "down"},
            "hopeless": {"path": "tests.agents.plain:agent", "model": "hopeless"},
            "router": {"path": "tests.agents.plain:agent", "model": "mock", "routing": True},
        },
        "routing": {"simple": "mock", "medium": "mock-anthropic", "complex": "mock-big"},
        "models": mock_models(mock_url),
        "gateway": {"retry_initial_delay": 0.01, "retry_max_delay": 0.05},
        "server": {"run_wait_timeout": 5.0, "heartbeat_interval": 0.3, "shutdown_grace_seconds": 5.0},
        "durability": {"app_name": "agenthost-test", "events_flush_interval": 0.05},
        "logging": {"format": "json", "level": "info"},
        "auth": {"admin_key": ADMIN_KEY},
        # Tools of the test agents run without approval unless configured (`refund` above).
        "default_tool_risk": "low",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@dataclass
class Server:
    """`agenthost serve` in a subprocess, on a free port, with its log in a file."""

    workdir: Path
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 60.0) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "agenthost.toml"
        config_path.write_text(render_toml(self.config))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), str(REPO / "examples" / "support")]),
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(AGENTHOST), "serve", "--config", str(config_path), "--port", str(self.port)],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def client(self, *, key: str | None = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this server, sending `key` (default: the admin key; None: no key)."""
        headers = {"X-API-Key": key} if key is not None else {}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers, **kwargs)


@dataclass
class SSEMessage:
    event: str | None
    id: str | None
    data: str
    comments: list[str]

    def json(self) -> Any:
        return json.loads(self.data)


def iter_sse(lines: Iterator[str]) -> Iterator[SSEMessage]:
    """Parse an SSE stream into messages; comment-only blocks come out with empty data."""
    event = message_id = None
    data: list[str] = []
    comments: list[str] = []
    for line in lines:
        if line == "":
            if data or comments or event:
                yield SSEMessage(event, message_id, "\n".join(data), comments)
            event = message_id = None
            data, comments = [], []
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "id":
                message_id = value
            elif name == "data":
                data.append(value)


def collect_sse(client: httpx.Client, method: str, path: str, **kwargs: Any) -> list[SSEMessage]:
    with client.stream(method, path, **kwargs) as response:
        assert response.status_code == 200, response.read()
        return [m for m in iter_sse(response.iter_lines()) if m.data]


def wait_for_status(
    client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stayed {body['status']} (error: {body.get('error')})")
        time.sleep(0.05)


def wait_for(check: Callable[[], T], timeout: float = 15.0) -> T:
    """Polls `check` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def rate_limiter(settings: Any, url: str | None, prefix: str) -> tuple[Any, Callable[[], Any]]:
    """A rate limiter counting in process (`url` None) or in the Redis at `url` (on its own pool,
    as `storage/backends.py` would give it), and the coroutine function that closes that pool."""
    from agenthost.security.ratelimit import RateLimiter
    from agenthost.storage.ratelimit_redis import RedisCounters
    from agenthost.storage.redis_client import RedisKeys, redis_client

    if url is None:
        return RateLimiter(settings, RedisKeys(prefix)), _nothing
    client = redis_client(url, max_connections=64, timeout=settings.store_timeout_seconds)
    limiter = RateLimiter(settings, RedisKeys(prefix), shared=RedisCounters(client))
    return limiter, client.aclose


async def _nothing() -> None:
    return None
