"""Running the mock: :class:`MockLLMServer` (background thread, for tests) and :func:`serve` (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Self

import uvicorn

from agenthost.testing.mock_llm.app import create_mock_app

if TYPE_CHECKING:
    from types import TracebackType

    from agenthost.testing.mock_llm.behaviour import MockEngine
    from agenthost.testing.mock_llm.config import MockLLMConfig

_START_TIMEOUT_S = 10.0
# Hanging `timeout` faults must not hold up stop(); they are abandoned after this long.
_GRACEFUL_SHUTDOWN_S = 1


class MockLLMServer:
    """The mock LLM server on a free 127.0.0.1 port, served by uvicorn in a daemon thread.

    Example::

        with MockLLMServer(MockLLMConfig(latency_ms=10)) as server:
            client = openai.OpenAI(base_url=server.openai_base_url, api_key="k")
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert server.stats()["total_calls"] == 1
    """

    def __init__(
        self,
        config: MockLLMConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.app = create_mock_app(config)
        self.engine: MockEngine = self.app.state.engine
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the mock LLM server is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the Anthropic base URL and the root of ``/_mock/*``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for OpenAI clients: ``url + "/v1"``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for Anthropic clients (they add ``/v1/messages`` themselves)."""
        return self.url

    def start(self) -> Self:
        """Bind, start serving in a background thread and return once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("the mock LLM server is already started")
        # Binding here rather than in uvicorn tells us the port a port-0 request got, race-free.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level=self._log_level,
                access_log=False,
                timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
                lifespan="off",
                # The host process (often a pytest session) owns logging; leave its config alone.
                log_config=None,
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mock-llm", daemon=True)
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the mock LLM server failed to start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /_mock/stats`` (see :class:`MockStats`)."""
        return self.engine.stats.snapshot()

    def reset(self, *, knobs: bool = False) -> None:
        """Clear stats and fault numbering; ``knobs=True`` also undoes :meth:`configure` calls."""
        self.engine.reset(knobs=knobs)

    def configure(self, **knobs: Any) -> MockLLMConfig:
        """Override :class:`MockLLMConfig` fields while running, e.g. ``configure(latency_ms=50)``.

        Also takes ``fault={"kind": "rate_limit", "first_n": 1}`` or ``scenarios={...}``;
        raises ``pydantic.ValidationError`` on bad values.
        """
        return self.engine.configure(**knobs)


def serve(
    config: MockLLMConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8800,
    *,
    log_level: str = "info",
) -> None:
    """Serve the mock LLM in the foreground until interrupted (what the CLI runs).

    Example::

        serve(load_script("script.yaml"), port=8800)
    """
    uvicorn.run(
        create_mock_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
