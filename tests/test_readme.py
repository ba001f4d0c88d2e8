"""The README's examples run as written.

The tour ("A tour of the API" up to the next `## ` section) is run command by command against a
real server serving the scripted demo (examples/support/agenthost.scripted.toml against the mock
LLM playing examples/support/mock-llm.yaml, what `make demo-scripted` serves): every ```sh and
```bash block, and every ```python block. The extractor is generic, so a section added to the tour
is run too. `RUN_ID`, `APPROVAL_ID` and `KEY_ID` are replaced by the ids of earlier answers.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agenthost.testing import MockLLMServer, load_script
from tests.harness import ADMIN_KEY, AGENTHOST, REPO, Server

README = (REPO / "README.md").read_text()
EXAMPLE = REPO / "examples" / "support"
TOUR = README.split("## A tour of the API", 1)[1].split("\n## ", 1)[0]

# Commands of the tour that cannot run in a test, by prefix, with the reason. Each must match a
# command of the tour (so this list cannot go stale).
SKIPPED = {
    "make demo-scripted": "installs and serves on the fixed ports 8000 and 8090; the test serves the "
    "same configuration itself",
}
# Statuses a command may answer besides 2xx come from its own comment or the comment line above it
# ("(409 if it already ended)"), so the README documents every non-2xx answer the test accepts.
_DOCUMENTED_STATUS = re.compile(r"\b([45]\d\d)\b")
_STATUS_MARK = "@@status="
_ENDED = {"succeeded", "failed", "dead", "cancelled"}


@dataclass
class Command:
    text: str
    comment: str  # the comment lines just above it


@dataclass
class Tour:
    """What the tour's commands have answered so far: the ids later commands refer to."""

    server: Server
    workdir: Path
    exports: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def substitute(self, text: str) -> str:
        text = text.replace("localhost:8000", f"127.0.0.1:{self.server.port}")
        for placeholder in ("RUN_ID", "APPROVAL_ID", "KEY_ID"):
            if placeholder in text:
                assert placeholder in self.ids, f"{placeholder} is used before any answer gave one: {text}"
                text = text.replace(placeholder, self.ids[placeholder])
        return text

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{AGENTHOST.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), str(EXAMPLE)]),
            "AGENTHOST_URL": self.server.url,
            "AGENTHOST_API_KEY": ADMIN_KEY,
            "COLUMNS": "100",
        }

    def learn(self, output: str) -> bool:
        """Remember the ids an answer gives (a run it started, an approval, a key); True when it
        decided an approval (its run then goes on)."""
        runs = set(re.findall(r'"id":\s*"(run_[0-9a-z]+)"', output))
        if len(runs) == 1:
            self.ids["RUN_ID"] = runs.pop()
        approvals = re.findall(r'"id":\s*"(apr_[0-9a-z]+)"', output)
        if approvals:
            self.ids["APPROVAL_ID"] = approvals[0]
        keys = re.findall(r"^id (\S+)\s+role", output, re.MULTILINE)
        if keys:
            self.ids["KEY_ID"] = keys[-1]
        return re.search(r'"object":\s*"approval".*"status":\s*"(approved|denied)"', output) is not None

    def settle(self, *, decided: bool) -> None:
        """Wait until the current run has ended, or waits for an approval (unless one was just
        decided: then it goes on), as a reader would before the next command."""
        run_id = self.ids.get("RUN_ID")
        if run_id is None:
            return
        settled = _ENDED if decided else {*_ENDED, "waiting_approval"}
        deadline = time.monotonic() + 60
        with self.server.client() as client:
            while (status := client.get(f"/v1/runs/{run_id}").json()["status"]) not in settled:
                assert time.monotonic() < deadline, f"run {run_id} stayed {status}"
                time.sleep(0.1)


def shell_commands(block: str) -> Iterator[Command]:
    """The commands of a shell block: continued lines (`\\`, open quotes) joined, comments apart."""
    pending = ""
    comment: list[str] = []
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            comment = [*comment, line] if line.strip() else []
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote is still open: the command goes on
            continue
        yield Command(pending, "\n".join(comment))
        pending, comment = "", []
    assert not pending, f"unterminated command: {pending}"


def tour_blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(sh|bash|python)\n(.*?)```", TOUR, re.DOTALL)


def run_shell(tour: Tour, command: Command) -> None:
    text = tour.substitute(command.text)
    # Every curl also prints its status; a stuck stream fails the test instead of hanging it.
    text = re.sub(r"\bcurl ", f"curl --max-time 60 -w '\\n{_STATUS_MARK}%{{http_code}}\\n' ", text)
    script = "\n".join([*tour.exports, text])
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tour.workdir,
        env=tour.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    tour.log.append(f"$ {text}\n{output}")
    assert result.returncode == 0, f"{text}\nexit {result.returncode}:\n{output}"
    allowed = {int(code) for code in _DOCUMENTED_STATUS.findall(command.comment + command.text)}
    for status in (int(code) for code in re.findall(rf"{_STATUS_MARK}(\d+)", result.stdout)):
        assert 200 <= status < 300 or status in allowed, f"{text}\nanswered {status}:\n{output}"
    tour.settle(decided=tour.learn(output))


def run_python(tour: Tour, block: str) -> None:
    code = block.replace("http://localhost:8000", tour.server.url)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tour.workdir,
        env=tour.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    tour.log.append(f">>> {code}\n{result.stdout}{result.stderr}")
    assert result.returncode == 0, f"{code}\n{result.stdout}{result.stderr}"


def scripted_demo_config(mock_url: str) -> dict[str, Any]:
    """examples/support/agenthost.scripted.toml, with the mock's address and a free port."""
    config = tomllib.loads((EXAMPLE / "agenthost.scripted.toml").read_text())
    config["models"]["scripted"]["base_url"] = f"{mock_url}/v1"
    config["logging"] = {"format": "json"}
    return config


@pytest.fixture
def scripted_demo(tmp_path: Path) -> Iterator[Server]:
    """The scripted demo as `make demo-scripted` serves it: the admin key in .agenthost/admin-key,
    the database in .agenthost/ of the working directory."""
    (tmp_path / ".agenthost").mkdir()
    (tmp_path / ".agenthost" / "admin-key").write_text(ADMIN_KEY + "\n")
    with MockLLMServer(load_script(EXAMPLE / "mock-llm.yaml")) as mock:
        env = {"AGENTHOST_AUTH__ADMIN_KEY_FILE": str(tmp_path / ".agenthost" / "admin-key")}
        server = Server(tmp_path, scripted_demo_config(mock.url), env=env).start()
        try:
            yield server
        finally:
            server.stop()


def test_the_tour_runs_against_the_scripted_demo(scripted_demo: Server, tmp_path: Path) -> None:
    """Every shell command and Python snippet of the tour succeeds (2xx, or the status its
    comment documents), in order, against the scripted demo."""
    tour = Tour(scripted_demo, tmp_path)
    skipped_used: set[str] = set()
    ran = 0
    for language, block in tour_blocks():
        if language == "python":
            run_python(tour, block)
            ran += 1
            continue
        for command in shell_commands(block):
            skip = next((prefix for prefix in SKIPPED if command.text.startswith(prefix)), None)
            if skip is not None:
                skipped_used.add(skip)
            elif command.text.startswith("export "):
                tour.exports.append(command.text)
            else:
                run_shell(tour, command)
                ran += 1
    assert skipped_used == set(SKIPPED), f"SKIPPED lists commands the tour no longer has: {SKIPPED}"
    assert ran >= 30, ran
    log = "\n".join(tour.log)
    (tmp_path / "tour.log").write_text(log)
    # The scripted demo shows what the local model cannot: tool calls, an approval, a fork.
    assert '"name": "get_order"' in log or '"name":"get_order"' in log, log
    assert "approved (by" in log or '"status":"approved"' in log, log
    assert "Refund of $24.50 for order 5678 approved." in _run_outputs(scripted_demo)


def _run_outputs(server: Server) -> str:
    with server.client() as client:
        runs = client.get("/v1/runs", params={"limit": 100}).json()["data"]
    return "\n".join(run["output"] or "" for run in runs)


def test_the_tour_commands_parse() -> None:
    """The extractor finds the tour's commands: continued lines joined, comments kept apart."""
    commands = [c for lang, block in tour_blocks() if lang != "python" for c in shell_commands(block)]
    texts = [c.text for c in commands]
    assert any(t.startswith("make demo-scripted") for t in texts)
    assert any("/v1/admin/keys" in t and '"rate_limits"' in t for t in texts)  # a JSON body over lines
    cancel = next(c for c in commands if c.text.rstrip().endswith("/cancel"))
    assert "409" in cancel.comment
    assert all("content-type: application/json" in t for t in texts if " -d " in t), [
        t for t in texts if " -d " in t and "content-type: application/json" not in t
    ]


def test_scripted_demo_config_matches_the_demo_config() -> None:
    """Both demo configs serve the same agent with the same tool policy; the README says which."""
    demo = tomllib.loads((EXAMPLE / "agenthost.toml").read_text())
    scripted = tomllib.loads((EXAMPLE / "agenthost.scripted.toml").read_text())
    assert scripted["agents"]["support"]["tools"] == demo["agents"]["support"]["tools"]
    assert scripted["agents"]["support"]["path"] == demo["agents"]["support"]["path"]
    assert scripted["auth"] == demo["auth"]
    assert scripted.get("database_url") == demo.get("database_url")  # the same database
    refund = demo["agents"]["support"]["tools"]["refund"]
    assert f'risk = "{refund["risk"]}"' in TOUR
    assert f'execution =\n"{refund["execution"]}"' in TOUR or f'execution = "{refund["execution"]}"' in TOUR


def test_mock_llm_example(mock_llm: MockLLMServer) -> None:
    """The pytest example under "Testing agents without a provider" passes."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    example = next(block for block in blocks if "def test_my_agent" in block)
    namespace: dict[str, object] = {}
    exec(example, namespace)
    test = namespace["test_my_agent"]
    assert callable(test)
    test(mock_llm)


def test_cli_commands_in_readme_exist() -> None:
    """Every `agenthost <command>` the README shows is a real command."""
    help_text = subprocess.run([str(AGENTHOST), "--help"], capture_output=True, text=True, check=True).stdout
    runs_help = subprocess.run(
        [str(AGENTHOST), "runs", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in set(re.findall(r"^agenthost ([a-z-]+)", README, re.MULTILINE)):
        assert command in help_text, command
    for command in ("list", "show", "cancel"):
        assert command in runs_help


def test_quickstart_has_exactly_the_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quickstart, re.DOTALL)
    commands = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    assert "make demo-scripted" in TOUR


def test_mock_llm_reference_covers_the_code() -> None:
    """docs/mock-llm.md names every script key, fault kind, placeholder and route of the mock."""
    from agenthost.testing import FaultPolicy, MockLLMConfig, Scenario, ToolCallSpec, Turn, create_mock_app
    from agenthost.testing.mock_llm.behaviour import _PLACEHOLDER_RE
    from agenthost.testing.mock_llm.config import FAULT_KINDS

    reference = (REPO / "docs" / "mock-llm.md").read_text()
    for model in (MockLLMConfig, Scenario, Turn, FaultPolicy, ToolCallSpec):
        for name in model.model_fields:
            assert f"`{name}`" in reference or f"{name}:" in reference, (model.__name__, name)
    for kind in FAULT_KINDS:
        assert f"`{kind}`" in reference, kind
    for placeholder in re.findall(r"\w+", _PLACEHOLDER_RE.pattern.split("(", 1)[1]):
        assert f"`{{{placeholder}}}`" in reference, placeholder
    for route in create_mock_app().routes:
        path = re.sub(r"\{\w+\}", "{id}", getattr(route, "path", ""))
        assert f"{path}`" in reference, path
    for option in ("--script", "--latency-ms", "--tokens-per-second", "--fault", "--fault-first-n", "--fast"):
        assert option in reference, option
    assert "--mock-llm" in reference
