"""A real browser (headless Chromium, driven by playwright) uses agenthost cross-origin: a page on
one origin starts a run with `fetch` and an API key (CORS), mints a stream token, and follows the
run with the native `EventSource` and `?token=`. The connection is cut mid-stream; `EventSource`
reconnects by itself with `Last-Event-ID`, every event arrives once and in order, and once the run
has ended the stream's 204 stops `EventSource` for good (no reconnect loop).

Needs Debian's `chromium` (`make test` installs it) and the `playwright` package (dev group);
playwright's own browser downloads are never used. Without chromium the tests skip, or fail
under CI.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.harness import Server, iter_sse, metric_value, require_service, server_config

from agenthost.records import EventType
from agenthost.testing import MockLLMServer

PAGE_DIR = Path(__file__).parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVENTS_ROUTE = "/v1/runs/{run_id}/events"
CUT_AFTER = 2  # events received before the test cuts the connection
# Chromium waits about 3 s before reconnecting an EventSource; watching twice that long after the
# stream closed would see any reconnect loop.
QUIET_SECONDS = 7.0


def chromium_path() -> str:
    path = os.environ.get("AGENTHOST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        require_service("Debian's chromium (apt-get install chromium)", FileNotFoundError("chromium"))
    return str(path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require_service("the playwright package (dev dependency group)", exc)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        del format, args


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The test page, served from its own origin (another port on 127.0.0.1)."""
    handler = functools.partial(_QuietHandler, directory=str(PAGE_DIR))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class CuttableProxy:
    """A TCP proxy in front of agenthost whose open connections the test can cut (as a network
    failure or a load balancer restart would), and which notes each `GET .../events` request."""

    _REQUEST = re.compile(rb"GET (/v1/runs/[^ ]+/events[^ ]*) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.DOTALL)

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.events_requests: list[tuple[str, str | None]] = []  # (path, Last-Event-ID)
        self.cuts = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Close every open connection, both ways, now."""
        with self._lock:
            self.cuts += 1
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_browser: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if from_browser:
                    self._note(data)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _note(self, data: bytes) -> None:
        for match in self._REQUEST.finditer(data):
            headers = dict(
                line.split(": ", 1) for line in match.group(2).decode("latin-1").split("\r\n") if ": " in line
            )
            last = next((v for k, v in headers.items() if k.lower() == "last-event-id"), None)
            with self._lock:
                self.events_requests.append((match.group(1).decode("latin-1"), last))


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer, page_origin: str
) -> Iterator[tuple[Server, CuttableProxy]]:
    """agenthost allowing the page's origin (and nothing else), behind the cuttable proxy."""
    workdir = tmp_path_factory.mktemp("browser")
    config = server_config(
        f"sqlite:///{workdir / 'agenthost.db'}",
        mock_server.url,
        server={"cors": {"allow_origins": [page_origin]}, "heartbeat_interval": 1.0},
    )
    server = Server(workdir, config).start()
    proxy = CuttableProxy(server.port)
    yield server, proxy
    proxy.close()
    server.stop()


def user_key(server: Server) -> str:
    with server.client() as admin:
        response = admin.post("/v1/admin/keys", json={"name": "web-app", "user_id": "browser-user"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def events_requests_by_status(server: Server) -> dict[str, float]:
    with server.client() as admin:
        exposition = admin.get("/metrics").text
    return {
        status: metric_value(
            exposition, "agenthost_http_requests_total", method="GET", route=EVENTS_ROUTE, status=status
        )
        for status in ("200", "204")
    }


def test_event_source_resumes_after_a_cut_and_stops_after_the_end(
    browser: Any, api: tuple[Server, CuttableProxy], page_origin: str, mock: MockLLMServer
) -> None:
    server, proxy = api
    key = user_key(server)
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.expose_function("cutStream", proxy.cut)
    page.goto(f"{page_origin}/page.html")
    run_id = page.evaluate(
        "([api, key, types, cutAfter]) => follow(api, key, '[slow] tell me slowly', types, cutAfter)",
        [proxy.url, key, [str(t) for t in EventType], CUT_AFTER],
    )
    # The run ends, EventSource reconnects once more, gets 204 and closes for good (readyState 2).
    page.wait_for_function("() => window.source.readyState === 2", timeout=60_000)
    received = page.evaluate("window.received")
    errors = page.evaluate("window.errors")
    seen = page.evaluate("window.seen")
    requests_at_close = list(proxy.events_requests)
    with server.client() as admin:  # the server's own record of the run (one more 200)
        stream = admin.get(f"/v1/runs/{run_id}/events").text
    statuses_at_close = events_requests_by_status(server)

    # Every event once, in order, the same as the server's record.
    ids = [int(event["id"]) for event in received]
    assert ids == list(range(1, len(ids) + 1)), (ids, console)
    assert [event["seq"] for event in received] == ids
    recorded = [(int(m.id or 0), m.event) for m in iter_sse(iter(stream.splitlines())) if m.data]
    assert [(int(e["id"]), e["type"]) for e in received] == recorded
    assert received[-1]["type"] == "run.completed"

    # The cut came mid-stream, and EventSource resumed from its last event by itself.
    assert proxy.cuts == 1
    assert seen["cutAt"] < len(received) - 1
    # Reconnecting after the cut, reconnecting after the stream's normal end, closed by the 204.
    assert [error["readyState"] for error in errors] == [0, 0, 2], errors
    paths = [path for path, _ in requests_at_close]
    assert all(path.startswith(f"/v1/runs/{run_id}/events?token=") for path in paths)
    last_ids = [last for _, last in requests_at_close]
    assert len(last_ids) == 3, requests_at_close  # first, after the cut, after the end
    assert last_ids[0] is None
    assert last_ids[1] == errors[0]["lastId"]
    assert last_ids[2] == errors[1]["lastId"] == str(ids[-1])
    assert statuses_at_close == {"200": 3, "204": 1}

    # No reconnect loop: nothing more while Chromium would have retried twice.
    time.sleep(QUIET_SECONDS)
    assert page.evaluate("window.source.readyState") == 2
    assert proxy.events_requests == requests_at_close
    assert events_requests_by_status(server) == statuses_at_close

    # The page read the headers CORS exposes; the token never reached the server's log.
    assert seen["requestId"]
    assert seen["rateLimitRemaining"] is not None
    assert seen["location"] == f"/v1/runs/{run_id}"
    assert seen["scope"] == {"run_id": run_id, "thread_id": None}
    token = paths[0].split("token=", 1)[1]
    assert len(token) > 40
    assert token not in server.log()
    assert httpx.URL(f"http://x{paths[0]}").params["token"] not in server.log()
    page.close()


def test_a_page_from_another_origin_is_refused_by_the_browser(
    browser: Any, api: tuple[Server, CuttableProxy], page_origin: str
) -> None:
    """The same page served from an origin the server does not allow cannot read anything: the
    preflight gets no `Access-Control-Allow-Origin`, so Chromium blocks the call."""
    server, proxy = api
    key = user_key(server)
    other_origin = page_origin.replace("127.0.0.1", "localhost")
    page = browser.new_page()
    page.goto(f"{other_origin}/page.html")
    outcome = page.evaluate("([api, key]) => tryFetch(api, key, '/v1/runs')", [proxy.url, key])
    assert outcome.startswith("blocked: TypeError"), outcome
    page.goto(f"{page_origin}/page.html")
    allowed = page.evaluate("([api, key]) => tryFetch(api, key, '/v1/runs')", [proxy.url, key])
    assert allowed == "status 200"
    page.close()
