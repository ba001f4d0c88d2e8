"""Latency and throughput agenthost adds on `/v1/chat/completions` passthrough, against LiteLLM proxy.

Starts the mock LLM's fast path (`agenthost mock-llm --fast`: one fixed small completion, answered by
a raw ASGI app) and, one after the other, each target in front of it, then drives each with `wrk`
(closed loop: N connections, each sending its next request when the previous answer arrives):

* direct           the mock itself: the floor, and proof that the upstream is not the bottleneck;
* agenthost        `agenthost serve` with a `[models.bench]` OpenAI model at the mock: the stateless
                   passthrough (gateway chain, breaker, pricing, JSON logs at info);
* agenthost cache  the same with `[cache] enabled = true` and the same body repeated: exact cache hits
                   (SQLite store), after one priming request;
* litellm          LiteLLM proxy (`litellm[proxy]` from PyPI in its own virtual environment,
                   `.bench/litellm-venv`, created here when missing), one worker, a master key,
                   `model_list` pointing `openai/` at the same mock.

Each point: a warm-up, then `--duration` seconds at each concurrency; wrk's Lua `done()` hook
prints p50/p95/p99. The table adds the target process's CPU time per request (from /proc), which
other load on the machine disturbs far less than latency does. Everything shares the same cores.

`--profile N` also samples agenthost with py-spy (installed into `.bench/profile-venv` when missing)
for N seconds at concurrency 16, passthrough then cache hits, and prints the top functions.

Usage: .venv/bin/python bench/gateway_overhead.py [--duration 10] [--concurrency 1,16,64]
           [--targets direct,agenthost,cache,litellm] [--repeat 1] [--profile 0]
Needs `wrk` (Debian: apt-get install -y wrk; or `make bench-gateway`, which installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from tests.harness import AGENTHOST, Server, free_port, server_config  # noqa: E402

BENCH_DIR = REPO / ".bench"
LITELLM_VENV = BENCH_DIR / "litellm-venv"
PROFILE_VENV = BENCH_DIR / "profile-venv"
MODEL = "bench"
UPSTREAM_MODEL = "gpt-4o-mini"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one word."}], "max_tokens": 16}
# The source tree next to this script, ahead of whatever the virtualenv's editable install points at.
PYTHONPATH = os.pathsep.join([str(REPO / "src"), str(REPO), str(REPO / "examples" / "support")])
# LiteLLM fetches its model price map and a few other files from the network unless told not to.
LITELLM_ENV = dict.fromkeys(
    (
        "LITELLM_LOCAL_MODEL_COST_MAP",
        "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS",
        "LITELLM_LOCAL_AUTOROUTER_PRESETS",
        "LITELLM_LOCAL_BLOG_POSTS",
        "LITELLM_LOCAL_POLICY_TEMPLATES",
    ),
    "True",
)
TARGET_NAMES = {
    "direct": "direct to the mock",
    "agenthost": "agenthost passthrough",
    "cache": "agenthost exact cache hit",
    "litellm": "LiteLLM proxy (1 worker)",
}
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.body = [==[%(body)s]==]

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'GWJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p95_us":%%d,"p99_us":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class UnavailableError(Exception):
    """A target that cannot be measured here; the table says why."""


@dataclass
class Point:
    target: str
    concurrency: int
    rps: float
    p50: float
    p95: float
    p99: float
    errors: int
    cpu_ms_per_request: float | None


@dataclass
class Target:
    key: str
    url: str
    pid: int


# --- processes -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            # Fields after the command: state(0) ppid(1) ... utime(11) stime(12).
            total += (int(stats[current][11]) + int(stats[current][12])) / ticks
        todo.extend(children.get(current, []))
    return total


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UnavailableError(f"{what} exited with {process.returncode} at start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise UnavailableError(f"{what} did not answer {url} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def fast_mock() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen(
        [str(AGENTHOST), "mock-llm", "--fast", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", process, 60, "the fast mock LLM")
        yield url, process.pid
    finally:
        stop(process)


def check_completion(url: str, key: str, expect_cached: bool | None) -> dict[str, Any]:
    response = httpx.post(url, json=BODY, headers={"authorization": f"Bearer {key}"}, timeout=30)
    if response.status_code != 200:
        raise UnavailableError(f"{url} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    if body["choices"][0]["message"]["content"] != "ok":
        raise UnavailableError(f"{url} answered an unexpected completion: {response.text[:300]}")
    if expect_cached is not None:
        status = body.get("agenthost", {}).get("cost", {}).get("status")
        if (status == "cached") != expect_cached:
            raise UnavailableError(f"expected cached={expect_cached}, got cost status {status!r}")
    return body


@contextlib.contextmanager
def agenthost_target(
    key: str, mock_url: str, workdir: Path, *, cache: bool, extra: dict[str, Any]
) -> Iterator[Target]:
    name = "cache" if cache else "agenthost"
    model = {"provider": "openai", "model": UPSTREAM_MODEL, "base_url": f"{mock_url}/v1", "api_key": "sk-b"}
    config = server_config(
        f"sqlite:///{workdir / name / 'data' / 'agenthost.db'}",
        mock_url,
        models={MODEL: model},
        cache={"enabled": cache},
        logging={"format": "json", "level": "info"},
        auth={"admin_key": key},  # the request path includes authentication, as in production
        # and rate limiting: every request is counted, with the one client's quota set out of reach
        # (the default 600 a minute per address would turn the run into a benchmark of 429s).
        rate_limits={"per_ip": {"requests_per_minute": 1_000_000_000}},
    )
    for section, value in extra.items():
        both = isinstance(value, dict) and isinstance(config.get(section), dict)
        merged = {**config[section], **value} if both else value
        config[section] = merged
    server = Server(workdir / name, config, env={"PYTHONPATH": PYTHONPATH})
    try:
        server.start()
    except RuntimeError as exc:
        raise UnavailableError(str(exc).splitlines()[0]) from exc
    assert server.process is not None
    url = f"{server.url}/v1/chat/completions"
    try:
        check_completion(url, key, expect_cached=None)  # primes the cache when it is on
        check_completion(url, key, expect_cached=cache)
        yield Target(name, url, server.process.pid)
    finally:
        server.stop()


def ensure_litellm(install: bool) -> Path:
    litellm = LITELLM_VENV / "bin" / "litellm"
    if litellm.exists():
        return litellm
    if not install:
        raise UnavailableError(f"{litellm} is missing (and --no-litellm-install was given)")
    python = shutil.which("python3") or sys.executable
    print(f"installing litellm[proxy] into {LITELLM_VENV} (once; a few minutes) ...", file=sys.stderr)
    BENCH_DIR.mkdir(exist_ok=True)
    steps = [
        [python, "-m", "venv", str(LITELLM_VENV)],
        [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "litellm[proxy]"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UnavailableError(f"`{' '.join(step[-3:])}` failed: {tail[0]}")
    return litellm


def litellm_version() -> str:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return "not installed"
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


@contextlib.contextmanager
def litellm_target(key: str, mock_url: str, workdir: Path, *, install: bool) -> Iterator[Target]:
    litellm = ensure_litellm(install)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{UPSTREAM_MODEL}\n"
        f"      api_base: {mock_url}/v1\n"
        "      api_key: sk-b\n"
        "general_settings:\n"
        f"  master_key: {key}\n"
    )
    port = free_port()
    log = (workdir / "litellm.log").open("ab")
    process = subprocess.Popen(
        [
            str(litellm),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        cwd=workdir,
        env={**os.environ, **LITELLM_ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health/liveliness", process, 180, "LiteLLM proxy")
        check_completion(f"{url}/v1/chat/completions", key, expect_cached=None)
        yield Target("litellm", f"{url}/v1/chat/completions", process.pid)
    finally:
        stop(process)
        log.close()


# --- load ----------------------------------------------------------------------------------------


def run_wrk(lua: Path, url: str, concurrency: int, seconds: float, threads: int) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{max(1, min(threads, concurrency))}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("GWJSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("GWJSON "))
            return result
    msg = f"wrk printed no result (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
    raise RuntimeError(msg)


def measure(target: Target, lua: Path, args: argparse.Namespace) -> list[Point]:
    points = []
    for concurrency in args.concurrency:
        if args.warmup > 0:
            run_wrk(lua, target.url, concurrency, args.warmup, args.threads)
        cpu_before = cpu_seconds(target.pid)
        result = run_wrk(lua, target.url, concurrency, args.duration, args.threads)
        cpu = cpu_seconds(target.pid) - cpu_before
        requests = result["requests"]
        points.append(
            Point(
                target=target.key,
                concurrency=concurrency,
                rps=requests / (result["duration_us"] / 1e6),
                p50=result["p50_us"] / 1000,
                p95=result["p95_us"] / 1000,
                p99=result["p99_us"] / 1000,
                errors=sum(result["errors"].values()),
                cpu_ms_per_request=cpu * 1000 / requests if requests else None,
            )
        )
        print(f"  {target.key} c={concurrency}: {points[-1]}", file=sys.stderr)
    return points


# --- report --------------------------------------------------------------------------------------


def table(points: list[Point], skipped: dict[str, str]) -> list[str]:
    direct = {p.concurrency: p for p in points if p.target == "direct"}
    lines = [
        (
            "| target | concurrency | req/s | p50 ms | p95 ms | p99 ms | added p50 / p99 vs direct, ms "
            "| target CPU ms/req | errors |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for point in points:
        base = direct.get(point.concurrency)
        added = (
            ""
            if base is None or point.target == "direct"
            else f"{point.p50 - base.p50:+.2f} / {point.p99 - base.p99:+.2f}"
        )
        cpu = "" if point.cpu_ms_per_request is None else f"{point.cpu_ms_per_request:.3f}"
        lines.append(
            f"| {TARGET_NAMES[point.target]} | {point.concurrency} | {point.rps:,.0f} | {point.p50:.2f} "
            f"| {point.p95:.2f} | {point.p99:.2f} | {added} | {cpu} | {point.errors} |"
        )
    lines.extend(
        f"| {TARGET_NAMES[key]} | - | not measured: {why} | | | | | | |" for key, why in skipped.items()
    )
    return lines


def verdicts(points: list[Point]) -> list[str]:
    by = {(p.target, p.concurrency): p for p in points}
    lines = []

    def check(label: str, ok: bool, measured: str) -> None:
        lines.append(f"| {label} | {measured} | {'met' if ok else 'not met'} |")

    d1, a1 = by.get(("direct", 1)), by.get(("agenthost", 1))
    d64, a64 = by.get(("direct", 64)), by.get(("agenthost", 64))
    if d1 and a1:
        added50, added99 = a1.p50 - d1.p50, a1.p99 - d1.p99
        check("concurrency 1: added p50 <= 0.5 ms", added50 <= 0.5, f"{added50:+.2f} ms")
        check("concurrency 1: added p99 <= 1 ms", added99 <= 1.0, f"{added99:+.2f} ms")
    if a64:
        check("concurrency 64: >= 2,000 req/s", a64.rps >= 2000, f"{a64.rps:,.0f} req/s")
    if a64 and d64:
        added99 = a64.p99 - d64.p99
        check("concurrency 64: added p99 <= 10 ms", added99 <= 10.0, f"{added99:+.2f} ms")
    if cached := by.get(("cache", 1)):
        check("exact cache hit p50 <= 1 ms (concurrency 1)", cached.p50 <= 1.0, f"{cached.p50:.2f} ms")
    if not lines:
        return []
    if failed := [f"{p.target} c={p.concurrency}: {p.errors}" for p in points if p.errors]:
        # Error answers (non-2xx) are fast and would pass for speed: the verdicts mean nothing.
        lines = [f"| every verdict above | errors in {', '.join(failed)} | invalid |"]
    return ["| target | measured | |", "|---|---|---|", *lines]


# --- profile -------------------------------------------------------------------------------------


def ensure_py_spy() -> Path:
    py_spy = PROFILE_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        python = shutil.which("python3") or sys.executable
        subprocess.run([python, "-m", "venv", str(PROFILE_VENV)], check=True)
        subprocess.run(
            [str(PROFILE_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"], check=True
        )
    return py_spy


def _frame_parts(frame: str) -> tuple[str, str]:
    # py-spy raw frames with --nolineno: "function (package/module.py)".
    function, _, where = frame.partition(" (")
    return function, where.removesuffix(")").split(":", 1)[0]


def _frame_name(frame: str) -> str:
    function, path = _frame_parts(frame)
    return f"{path}:{function}"


def _package(frame: str) -> str:
    path = _frame_parts(frame)[1]
    return path.split("/", 1)[0].removesuffix(".py")


def summarise_profile(raw: Path, top: int) -> list[str]:
    """Self time by package and by function, inclusive time by function, from py-spy's raw output."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += count
        self_time[_frame_name(frames[-1])] += count
        packages[_package(frames[-1])] += count
        for name in {_frame_name(f) for f in frames}:
            inclusive[name] += count
    if total == 0:
        return ["(py-spy collected no samples)"]
    lines = [f"{total} samples of the agenthost process holding the GIL", ""]
    lines += ["| self time by package | % |", "|---|---|"]
    lines += [f"| {name} | {100 * n / total:.1f} |" for name, n in packages.most_common(top)]
    lines += ["", "| function (self time) | % |", "|---|---|"]
    lines += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in self_time.most_common(top)]
    # Inclusive time below the plumbing every request goes through (frames in nearly all samples).
    below = [(name, n) for name, n in inclusive.most_common() if n < 0.6 * total]
    lines += ["", "| function (inclusive) | % |", "|---|---|"]
    lines += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in below[: top * 2]]
    return lines


def profile_agenthost(
    key: str, mock_url: str, workdir: Path, lua: Path, args: argparse.Namespace, *, cache: bool
) -> list[str]:
    py_spy = ensure_py_spy()
    name = "cache" if cache else "agenthost"
    raw = workdir / f"{name}-profile.txt"
    with agenthost_target(
        key, mock_url, workdir / f"profile-{name}", cache=cache, extra=args.agenthost_config
    ) as target:
        run_wrk(lua, target.url, 16, 2, args.threads)
        options = ["--format", "raw", "--rate", "250", "--gil", "--nolineno", "--duration", str(args.profile)]
        sampler = subprocess.Popen(
            [str(py_spy), "record", "--pid", str(target.pid), *options, "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        run_wrk(lua, target.url, 16, args.profile, args.threads)
        _, error = sampler.communicate(timeout=args.profile + 60)
        if sampler.returncode != 0 or not raw.exists():
            return [f"py-spy failed ({sampler.returncode}): {error.decode(errors='replace').strip()}"]
    keep = BENCH_DIR / f"{name}-profile.txt"
    shutil.copyfile(raw, keep)
    return [f"collapsed stacks kept in {keep.relative_to(REPO)}", "", *summarise_profile(raw, args.top)]


# --- main ----------------------------------------------------------------------------------------


def run_once(
    args: argparse.Namespace, key: str, mock: tuple[str, int], lua: Path, workdir: Path
) -> tuple[list[Point], dict[str, str]]:
    mock_url, mock_pid = mock
    points: list[Point] = []
    skipped: dict[str, str] = {}
    starters: dict[str, Callable[[], contextlib.AbstractContextManager[Target]]] = {
        "direct": lambda: contextlib.nullcontext(
            Target("direct", f"{mock_url}/v1/chat/completions", mock_pid)
        ),
        "agenthost": lambda: agenthost_target(
            key, mock_url, workdir, cache=False, extra=args.agenthost_config
        ),
        "cache": lambda: agenthost_target(key, mock_url, workdir, cache=True, extra=args.agenthost_config),
        "litellm": lambda: litellm_target(key, mock_url, workdir / "litellm", install=args.litellm_install),
    }
    for name in args.targets:
        print(f"{TARGET_NAMES[name]} ...", file=sys.stderr)
        try:
            with starters[name]() as target:
                points += measure(target, lua, args)
        except UnavailableError as exc:
            skipped[name] = str(exc).replace("|", "/")
            print(f"  skipped: {exc}", file=sys.stderr)
    return points, skipped


def git_revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown (not a git checkout)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per point")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unmeasured load before each point"
    )
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--targets", default="direct,agenthost,cache,litellm")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (it shares the cores)")
    parser.add_argument("--repeat", type=int, default=1, help="run every target this many times")
    parser.add_argument("--profile", type=int, default=0, help="py-spy agenthost for N seconds at c=16")
    parser.add_argument("--top", type=int, default=15, help="rows per profile table")
    parser.add_argument(
        "--no-litellm-install", dest="litellm_install", action="store_false", help="never create its venv"
    )
    parser.add_argument(
        "--agenthost-config",
        default="{}",
        help="JSON merged into agenthost's config by section, e.g. '{\"server\": {...}}'",
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.targets = [t.strip() for t in args.targets.split(",")]
    unknown = set(args.targets) - set(TARGET_NAMES)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {sorted(TARGET_NAMES)}")
    args.agenthost_config = json.loads(args.agenthost_config)
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: `sudo apt-get install -y wrk` (Debian/Ubuntu), or `make bench-gateway`",
            file=sys.stderr,
        )
        sys.exit(2)
    key = f"sk-bench-{secrets.token_hex(16)}"
    out = [
        (
            f"# gateway overhead: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f} at start, agenthost {git_revision()}, "
            f"wrk -t{args.threads}, {args.duration:g} s per point after {args.warmup:g} s of warm-up"
        ),
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, fast_mock() as mock:
        workdir = Path(tmp)
        lua = workdir / "post.lua"
        lua.write_text(WRK_LUA % {"key": key, "body": json.dumps(BODY)})
        for attempt in range(1, args.repeat + 1):
            points, skipped = run_once(args, key, mock, lua, workdir / f"run{attempt}")
            if "litellm" in args.targets:
                skipped_note = f", LiteLLM {litellm_version()}" if "litellm" not in skipped else ""
            else:
                skipped_note = ""
            out += [f"## run {attempt} of {args.repeat}{skipped_note}", "", *table(points, skipped), ""]
            if checks := verdicts(points):
                out += ["### against the targets", "", *checks, ""]
            print("\n".join(out), flush=True)
            out = []
        for cache in (False, True) if args.profile > 0 else ():
            what = "an exact cache hit" if cache else "the passthrough"
            print(f"## where agenthost spends its time on {what} (py-spy, concurrency 16)\n", flush=True)
            print("\n".join(profile_agenthost(key, mock[0], workdir, lua, args, cache=cache)), flush=True)
            print(flush=True)


if __name__ == "__main__":
    main()
