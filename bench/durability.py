"""What durability costs, on SQLite and Postgres: per checkpointed step, and to recover after a crash.

Three measurements per backend, printed as Markdown tables:

* engine      DBOS alone (no agenthost, no HTTP): an async `@DBOS.workflow` doing N trivial
              `DBOS.run_step_async` steps, N = 0 and N = 10, timed per workflow; the per-step cost is
              (p50(N=10) - p50(N=0)) / 10. Each backend runs in a subprocess of this script
              (`--engine-only URL`), because DBOS is a process singleton. SQLite gets the engine
              agenthost builds (`create_dbos_engine`: WAL, synchronous=NORMAL). A reference row times
              one committed INSERT on the same database.
* agenthost   `POST /v1/agents/durability/run` (agent `bench/agents.py`, one `noop` tool) against the
              mock LLM playing `bench/scripts/durability.yaml`: a run whose model asks for 10 tool
              calls at once (12 checkpointed steps) against one asking for 1 (3 steps); per step =
              (p50(10 tools) - p50(1 tool)) / 9. The same agent run in-process by plain pydantic-ai
              against the same mock (tools sequential, as agenthost runs them) gives the part of
              that which is pydantic-ai's own.
* recovery    100 background runs whose model call takes 20 s, on a server with
              `durability.queue_concurrency = 128`; once all are `running` and the mock has received
              100 calls, the server is SIGKILLed and restarted on the same database and port. Timed
              from the new process's spawn: until `/ready` answers 200, and until the mock has
              received the 100 repeated model calls (every run back in progress).

Usage: .venv/bin/python bench/durability.py [--runs 100] [--backends sqlite,postgres] [--pending 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "examples" / "support")]

from tests.harness import ADMIN_HEADERS, AGENTHOST, Server, postgres_database, server_config, start_mock  # noqa: E402

SCRIPT = REPO / "bench" / "scripts" / "durability.yaml"
AGENT = "durability"
TEN_TOOLS = "[ten-tools] call noop ten times"
ONE_TOOL = "[one-tool] call noop once"
ENGINE_STEPS = 10


# --- statistics and tables -------------------------------------------------------------------


def p50_p95(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return q[49], q[94]


def interleaved(calls: dict[str, Callable[[], None]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each function, calls alternating so that drift hits all alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) * 1000)
    return samples


# --- engine level: DBOS alone, in a subprocess ---------------------------------------------------


async def _engine_bench(database_url: str, runs: int, warmup: int) -> dict[str, Any]:
    import sqlalchemy as sa
    from dbos import DBOS, DBOSConfig, SetWorkflowID

    from agenthost.storage.engine import create_dbos_engine, database_urls

    urls = database_urls(database_url)
    config: DBOSConfig = {
        "name": "agenthost-bench",
        "system_database_url": urls.dbos_url,
        "application_version": "1",
        "executor_id": "bench",
        "log_level": "WARNING",
        "run_migrations": True,
    }
    engine = create_dbos_engine(urls)
    if engine is not None:
        config["system_database_engine"] = engine
    DBOS(config=config)

    async def trivial() -> int:
        return 1

    @DBOS.workflow(name="bench.steps")
    async def steps(n: int) -> int:
        total = 0
        for _ in range(n):
            total += await DBOS.run_step_async({"name": "s"}, trivial)
        return total

    DBOS.launch()

    async def once(n: int) -> float:
        start = time.perf_counter()
        with SetWorkflowID(str(uuid.uuid4())):
            assert await steps(n) == n
        return (time.perf_counter() - start) * 1000

    for _ in range(warmup):
        await once(0)
        await once(ENGINE_STEPS)
    t0: list[float] = []
    tn: list[float] = []
    for _ in range(runs):
        t0.append(await once(0))
        tn.append(await once(ENGINE_STEPS))

    # Reference: one autocommitted INSERT into an ordinary table of the same database.
    if engine is None:
        engine = sa.create_engine(urls.sync_url)
    setting = "n/a"
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_commit (id integer, note text)"))
        if not urls.is_sqlite:
            setting = conn.execute(sa.text("SHOW synchronous_commit")).scalar_one()
    commits: list[float] = []
    with engine.connect() as conn:
        for i in range(warmup + runs):
            start = time.perf_counter()
            conn.execute(sa.text("INSERT INTO bench_commit VALUES (:i, 'x')"), {"i": i})
            conn.commit()
            commits.append((time.perf_counter() - start) * 1000)
    DBOS.destroy()
    return {"t0": t0, "tn": tn, "commit": commits[warmup:], "synchronous_commit": setting}


def engine_only(database_url: str, runs: int, warmup: int) -> None:
    result = asyncio.run(_engine_bench(database_url, runs, warmup))
    print(json.dumps(result))


def bench_engine(backend: str, database_url: str, runs: int, warmup: int) -> list[str]:
    command = [sys.executable, __file__, "--engine-only", database_url, "--runs", str(runs)]
    command += ["--warmup", str(warmup)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"engine bench failed on {backend}:\n{done.stderr[-4000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    (a50, a95), (b50, b95) = p50_p95(data["t0"]), p50_p95(data["tn"])
    c50, c95 = p50_p95(data["commit"])
    note = "" if backend == "sqlite" else f" (synchronous_commit = {data['synchronous_commit']})"
    return [
        f"\n#### {backend}: DBOS alone, {runs} workflows of each kind\n",
        "| measurement | p50 ms | p95 ms |",
        "|---|---|---|",
        f"| workflow, 0 steps | {a50:.2f} | {a95:.2f} |",
        f"| workflow, {ENGINE_STEPS} steps | {b50:.2f} | {b95:.2f} |",
        (
            f"| **per step** = (10 steps - 0 steps) / 10 | **{(b50 - a50) / ENGINE_STEPS:.2f}** "
            f"| {(b95 - a95) / ENGINE_STEPS:.2f} |"
        ),
        f"| reference: one committed INSERT{note} | {c50:.2f} | {c95:.2f} |",
    ]


# --- through agenthost ---------------------------------------------------------------------------


def bench_config(database_url: str, mock_url: str, **overrides: Any) -> dict[str, Any]:
    agents = {AGENT: {"path": "bench.agents:agent", "model": "mock"}}
    logging = {"format": "json", "level": "warning"}
    return server_config(database_url, mock_url, agents=agents, logging=logging, **overrides)


def agent_run(client: httpx.Client, prompt: str, steps: int) -> Callable[[], None]:
    def call() -> None:
        response = client.post(f"/v1/agents/{AGENT}/run", json={"input": prompt})
        body = response.json()
        if response.status_code != 200 or body["status"] != "succeeded" or body["steps"] != steps:
            raise RuntimeError(response.text)

    return call


def plain_pydantic_ai(mock_url: str, prompt: str) -> Callable[[], None]:
    """The same agent and model run in-process by pydantic-ai alone, tools sequential like agenthost."""
    from bench.agents import agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=f"{mock_url}/v1", api_key="k"))
    loop = asyncio.new_event_loop()

    async def once() -> None:
        with agent.parallel_tool_call_execution_mode("sequential"):
            async with agent.run_stream(prompt, model=model) as result:
                async for _ in result.stream_text(delta=True):
                    pass

    return lambda: loop.run_until_complete(once())


def bench_agenthost(
    backend: str, database_url: str, mock_url: str, workdir: Path, *, runs: int, warmup: int
) -> list[str]:
    server = Server(workdir, bench_config(database_url, mock_url)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60, headers=ADMIN_HEADERS) as api:
            s = interleaved(
                {
                    "a1": agent_run(api, ONE_TOOL, 3),
                    "a10": agent_run(api, TEN_TOOLS, 12),
                    "p1": plain_pydantic_ai(mock_url, ONE_TOOL),
                    "p10": plain_pydantic_ai(mock_url, TEN_TOOLS),
                },
                runs,
                warmup,
            )
    finally:
        server.stop()
    p = {name: p50_p95(samples) for name, samples in s.items()}
    agent_step = ((p["a10"][0] - p["a1"][0]) / 9, (p["a10"][1] - p["a1"][1]) / 9)
    plain_step = ((p["p10"][0] - p["p1"][0]) / 9, (p["p10"][1] - p["p1"][1]) / 9)
    return [
        f"\n#### {backend}: through agenthost, {runs} runs of each kind\n",
        "| measurement | p50 ms | p95 ms |",
        "|---|---|---|",
        f"| agenthost `/run`, 1 tool call (3 steps) | {p['a1'][0]:.2f} | {p['a1'][1]:.2f} |",
        f"| agenthost `/run`, 10 tool calls (12 steps) | {p['a10'][0]:.2f} | {p['a10'][1]:.2f} |",
        f"| pydantic-ai in-process, 1 tool call | {p['p1'][0]:.2f} | {p['p1'][1]:.2f} |",
        f"| pydantic-ai in-process, 10 tool calls | {p['p10'][0]:.2f} | {p['p10'][1]:.2f} |",
        f"| per tool step, agenthost = (10 - 1) / 9 | {agent_step[0]:.2f} | {agent_step[1]:.2f} |",
        f"| per tool step, pydantic-ai alone | {plain_step[0]:.2f} | {plain_step[1]:.2f} |",
        (
            f"| **per tool step, agenthost's share** (difference) "
            f"| **{agent_step[0] - plain_step[0]:.2f}** | {agent_step[1] - plain_step[1]:.2f} |"
        ),
    ]


# --- recovery after SIGKILL ----------------------------------------------------------------------


def mock_calls(mock: httpx.Client) -> int:
    return int(mock.get("/_mock/stats").json()["total_calls"])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RestartWatch(threading.Thread):
    """Polls `/ready` and the mock's call count every 5 ms; keeps when each was first reached."""

    def __init__(self, server_url: str, mock_url: str, calls_before: int, pending: int) -> None:
        super().__init__(daemon=True)
        self.server_url, self.mock_url = server_url, mock_url
        self.calls_before, self.pending = calls_before, pending
        self.spawned = time.perf_counter()
        self.ready_at: float | None = None
        self.first_call_at: float | None = None
        self.calls_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=1) as http:
            while not self.stop.is_set() and (self.ready_at is None or self.calls_at is None):
                now = time.perf_counter()
                if self.ready_at is None:
                    with suppress(httpx.HTTPError):
                        if http.get(f"{self.server_url}/ready").status_code == 200:
                            self.ready_at = now
                calls = int(http.get(f"{self.mock_url}/_mock/stats").json()["total_calls"])
                repeated = calls - self.calls_before
                if self.first_call_at is None and repeated >= 1:
                    self.first_call_at = now
                if self.calls_at is None and repeated >= self.pending:
                    self.calls_at = now
                time.sleep(0.005)

    def ms(self, at: float | None) -> float:
        return float("nan") if at is None else (at - self.spawned) * 1000


def bench_recovery(database_url: str, mock_url: str, pending: int, workdir: Path) -> dict[str, Any]:
    config = bench_config(database_url, mock_url, durability={"queue_concurrency": 128})
    spawned = time.perf_counter()
    first = Server(workdir, config).start()
    first_start = (time.perf_counter() - spawned) * 1000
    restarted: Server | None = None
    try:
        with httpx.Client(base_url=mock_url, timeout=10) as mock, first.client() as api:
            before = mock_calls(mock)
            ids = []
            for i in range(pending):
                response = api.post(f"/v1/agents/{AGENT}/runs", json={"input": f"[slow] pending run {i}"})
                if response.status_code != 202:
                    raise RuntimeError(response.text)
                ids.append(response.json()["id"])

            def all_running() -> bool:
                return all(api.get(f"/v1/runs/{run_id}").json()["status"] == "running" for run_id in ids)

            wait_until(lambda: mock_calls(mock) >= before + pending, 60, f"{pending} model calls")
            wait_until(all_running, 60, f"{pending} running runs")
            first.kill()

            restarted = Server(workdir, config, port=first.port)  # same database, same port
            watch = RestartWatch(restarted.url, mock_url, mock_calls(mock), pending)
            watch.start()
            restarted.start(timeout=120)
            wait_until(lambda: watch.calls_at is not None, 120, f"{pending} repeated model calls")
            watch.stop.set()
            watch.join()
            statuses = [api.get(f"/v1/runs/{run_id}").json()["status"] for run_id in ids]
    finally:
        first.kill()
        if restarted is not None:
            restarted.kill()  # its runs wait 20 s on the mock; the database is thrown away
    return {
        "first_start": first_start,
        "ready": watch.ms(watch.ready_at),
        "first_call": watch.ms(watch.first_call_at),
        "all_calls": watch.ms(watch.calls_at),
        "running": sum(status == "running" for status in statuses),
    }


def import_ms() -> float:
    """Python start-up plus the imports `agenthost serve` needs before it can listen (best of 3)."""
    command = [str(AGENTHOST.parent / "python"), "-c", "import agenthost.server.app, agenthost.cli.main"]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(command, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def recovery_table(results: dict[str, dict[str, Any]], pending: int) -> list[str]:
    lines = [
        f"\n#### Recovery of {pending} in-flight runs after SIGKILL (ms from the new process's spawn)\n",
        (
            f"| backend | `/ready` answers 200 | first repeated model call | all {pending} model calls "
            "repeated | the same, counted from `/ready` | runs `running` after | reference: first start, "
            "empty database, to `/ready` |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        lines.append(
            f"| {backend} | {r['ready']:.0f} | {r['first_call']:.0f} | {r['all_calls']:.0f} "
            f"| {r['all_calls'] - r['ready']:+.0f} | {r['running']}/{pending} | {r['first_start']:.0f} |"
        )
    lines.append(
        f"\nPython start-up and the imports of `agenthost serve` alone (best of 3): {import_ms():.0f} ms"
    )
    return lines


# --- main ----------------------------------------------------------------------------------------


@contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'data' / 'agenthost.db'}"
    else:
        with postgres_database() as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100, help="timed runs per measurement (default 100)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pending", type=int, default=100, help="in-flight runs to recover (default 100)")
    parser.add_argument("--engine-only", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_only:
        engine_only(args.engine_only, args.runs, args.warmup)
        return
    os.environ.setdefault("AGENTHOST_LOGGING__LEVEL", "warning")
    started = time.perf_counter()
    backends = args.backends.split(",")
    mock, mock_url = start_mock(SCRIPT)
    out = [f"# cost of durability ({args.runs} sequential runs per row, {os.cpu_count()} CPUs)"]
    recovery: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in backends:
                root = Path(tmp) / backend
                with database(backend, root / "engine") as url:
                    out += bench_engine(backend, url, args.runs, args.warmup)
                with database(backend, root / "latency") as url:
                    out += bench_agenthost(
                        backend, url, mock_url, root / "latency", runs=args.runs, warmup=args.warmup
                    )
                with database(backend, root / "recovery") as url:
                    recovery[backend] = bench_recovery(url, mock_url, args.pending, root / "recovery")
    finally:
        mock.terminate()
        mock.wait()
    out += recovery_table(recovery, args.pending)
    print("\n".join(out))
    print(
        json.dumps({"runs": args.runs, "seconds": round(time.perf_counter() - started, 1)}), file=sys.stderr
    )


if __name__ == "__main__":
    main()
