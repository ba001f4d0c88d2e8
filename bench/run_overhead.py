"""How much latency agenthost adds to a run, on SQLite and Postgres.

Starts the mock LLM (`agenthost mock-llm`, no latency) and `agenthost serve` as subprocesses, then
times sequential requests from this process:

* direct      the same model calls made straight to the mock LLM (streaming, like agenthost does);
* pydantic-ai the same agent run in-process by plain pydantic-ai against the mock (no agenthost);
* wait        `POST /v1/agents/{agent}/run` (a durable run, answered when finished);
* ttft        `POST /v1/agents/{agent}/stream` until the first `text.delta`, against the direct
              streaming time to the first content chunk.

Two workloads: one model call (`plain` agent) and five steps (model, tool, model, tool, model).

Usage: .venv/bin/python bench/run_overhead.py [--runs 200] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "examples" / "support")]

from tests.harness import ADMIN_HEADERS, Server, postgres_database, server_config, start_mock  # noqa: E402

FIVE_STEP_PROMPT = "[two-tools] shipping and order 5678"
ONE_CALL_PROMPT = "hello there, how are you"


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return q[49], q[94], q[98]


def timed(fn: Callable[[], float | None], runs: int, warmup: int = 20) -> list[float]:
    """Milliseconds per call of `fn`, or what `fn` returns when it measures a part itself."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        measured = fn()
        samples.append(measured if measured is not None else (time.perf_counter() - start) * 1000)
    return samples


def direct_calls(client: httpx.Client, turns: list[list[dict[str, object]]]) -> Callable[[], None]:
    """Stream the given conversations straight to the mock, one after another."""

    def call() -> None:
        for messages in turns:
            body = {"model": "gpt-4o-mini", "messages": messages, "stream": True}
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                for _ in response.iter_lines():
                    pass

    return call


def direct_ttft(client: httpx.Client) -> Callable[[], float | None]:
    def call() -> float | None:
        start = time.perf_counter()
        first: float | None = None
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": ONE_CALL_PROMPT}],
            "stream": True,
        }
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if first is None and '"content":"' in line.replace(" ", ""):
                    first = (time.perf_counter() - start) * 1000
        return first

    return call


def five_step_turns() -> list[list[dict[str, object]]]:
    """The three model requests of the five-step run, as the agent sends them."""
    user = {"role": "user", "content": FIVE_STEP_PROMPT}
    call1 = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c0",
                "type": "function",
                "function": {"name": "search_kb", "arguments": '{"query":"shipping"}'},
            }
        ],
    }
    result1 = {"role": "tool", "tool_call_id": "c0", "content": "Standard shipping takes 3-5 business days."}
    call2 = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_order", "arguments": '{"order_id":"5678"}'},
            }
        ],
    }
    result2 = {"role": "tool", "tool_call_id": "c1", "content": '{"order_id":"5678","status":"delivered"}'}
    return [[user], [user, call1, result1], [user, call1, result1, call2, result2]]


def agent_wait(client: httpx.Client, agent: str, prompt: str) -> Callable[[], None]:
    def call() -> None:
        response = client.post(f"/v1/agents/{agent}/run", json={"input": prompt})
        if response.status_code != 200 or response.json()["status"] != "succeeded":
            raise RuntimeError(response.text)

    return call


def agent_ttft(client: httpx.Client) -> Callable[[], float | None]:
    def call() -> float | None:
        start = time.perf_counter()
        first: float | None = None
        with client.stream("POST", "/v1/agents/plain/stream", json={"input": ONE_CALL_PROMPT}) as response:
            for line in response.iter_lines():  # read to the end so runs do not overlap
                if first is None and line == "event: text.delta":
                    first = (time.perf_counter() - start) * 1000
        return first

    return call


def plain_pydantic_ai(mock_url: str, agent_name: str, prompt: str) -> Callable[[], None]:
    """The same agent and model, run in-process by pydantic-ai alone (the user's laptop baseline)."""
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    if agent_name == "plain":
        from tests.agents.plain import agent
    else:
        from agent import support_agent as agent  # type: ignore[import-not-found]

    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=f"{mock_url}/v1", api_key="k"))
    loop = asyncio.new_event_loop()

    async def once() -> None:
        async with agent.run_stream(prompt, model=model) as result:
            async for _ in result.stream_text(delta=True):
                pass

    return lambda: loop.run_until_complete(once())


def row(name: str, samples: list[float], base: list[float] | None) -> str:
    p50, p95, p99 = percentiles(samples)
    cells = f"| {name} | {p50:.2f} | {p95:.2f} | {p99:.2f} |"
    if base is None:
        return cells + " |"
    b50, b95, b99 = percentiles(base)
    return cells + f" +{p50 - b50:.2f} / +{p95 - b95:.2f} / +{p99 - b99:.2f} |"


def bench_backend(backend: str, database_url: str, mock_url: str, runs: int, workdir: Path) -> list[str]:
    config = server_config(database_url, mock_url, logging={"format": "json", "level": "warning"})
    server = Server(workdir / backend, config).start()
    lines = []
    try:
        with (
            httpx.Client(base_url=mock_url, timeout=30) as mock,
            httpx.Client(base_url=server.url, timeout=60, headers=ADMIN_HEADERS) as api,
        ):
            one_direct = timed(direct_calls(mock, [[{"role": "user", "content": ONE_CALL_PROMPT}]]), runs)
            one_plain = timed(plain_pydantic_ai(mock_url, "plain", ONE_CALL_PROMPT), runs)
            one_wait = timed(agent_wait(api, "plain", ONE_CALL_PROMPT), runs)
            five_direct = timed(direct_calls(mock, five_step_turns()), runs)
            five_plain = timed(plain_pydantic_ai(mock_url, "support", FIVE_STEP_PROMPT), runs)
            five_wait = timed(agent_wait(api, "support", FIVE_STEP_PROMPT), runs)
            ttft_direct = timed(direct_ttft(mock), runs)
            ttft_agent = timed(agent_ttft(api), runs)
        lines += [
            f"\n### {backend}\n",
            "| measurement | p50 ms | p95 ms | p99 ms | added vs direct (p50 / p95 / p99) |",
            "|---|---|---|---|---|",
            row("1 call: direct to mock", one_direct, None),
            row("1 call: pydantic-ai in-process", one_plain, one_direct),
            row("1 call: agenthost `/run`", one_wait, one_direct),
            row("5 steps: direct to mock (3 calls)", five_direct, None),
            row("5 steps: pydantic-ai in-process", five_plain, five_direct),
            row("5 steps: agenthost `/run`", five_wait, five_direct),
            row("TTFT: direct stream", ttft_direct, None),
            row("TTFT: agenthost `/stream`", ttft_agent, ttft_direct),
        ]
        lines.append(
            "\nagenthost's own share (agenthost minus pydantic-ai in-process), p50: "
            f"1 call +{percentiles(one_wait)[0] - percentiles(one_plain)[0]:.2f} ms, "
            f"5 steps +{percentiles(five_wait)[0] - percentiles(five_plain)[0]:.2f} ms"
        )
    finally:
        server.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    os.environ.setdefault("AGENTHOST_LOGGING__LEVEL", "warning")
    mock, mock_url = start_mock(REPO / "tests" / "scripts" / "mock.yaml")
    out = [f"# run overhead ({args.runs} sequential runs per row, {os.cpu_count()} CPUs)"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in args.backends.split(","):
                if backend == "sqlite":
                    url = f"sqlite:///{Path(tmp) / 'sqlite' / 'data' / 'agenthost.db'}"
                    out += bench_backend("sqlite", url, mock_url, args.runs, Path(tmp))
                else:
                    with postgres_database() as url:
                        out += bench_backend("postgres", url, mock_url, args.runs, Path(tmp))
    finally:
        mock.terminate()
        mock.wait()
    print("\n".join(out))
    print(json.dumps({"runs": args.runs}), file=sys.stderr)


if __name__ == "__main__":
    main()
