"""The `agenthost` command line, run as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agenthost import __version__
from agenthost.testing import MockLLMServer
from tests.harness import (
    ADMIN_KEY,
    AGENTHOST,
    REPO,
    Server,
    free_port,
    render_toml,
    server_config,
    wait_for_status,
)


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'examples' / 'support'}",
        "COLUMNS": "200",  # tables as on a wide terminal
        "AGENTHOST_API_KEY": ADMIN_KEY,
        **(env or {}),
    }
    return subprocess.run(
        [str(AGENTHOST), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=full_env,
        check=False,
    )


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"agenthost {__version__}"


def test_check_prints_resolved_settings_with_secrets_masked(
    tmp_path: Path, mock_server: MockLLMServer
) -> None:
    config = server_config(f"sqlite:///{tmp_path / 'db.sqlite'}", mock_server.url)
    path = tmp_path / "agenthost.toml"
    path.write_text(render_toml(config))
    result = cli("check", "--config", str(path), env={"AGENTHOST_SERVER__PORT": "9555"})
    assert result.returncode == 0, result.stderr
    assert '"port": 9555' in result.stdout
    assert "sk-test" not in result.stdout
    assert "**********" in result.stdout
    assert "configuration is valid" in result.stdout
    assert "[models.mock]" in result.stdout


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        (
            {"bad": {"path": "tests.agents.missing_module:agent"}},
            "cannot import module 'tests.agents.missing_module'",
        ),
        ({"bad": {"path": "tests.agents.plain:nothing"}}, "has no attribute 'nothing'"),
        ({"bad": {"path": "tests.agents.plain:not_an_agent"}}, "is a dict, not a pydantic_ai.Agent"),
    ],
)
def test_bad_agent_paths_fail_at_start(
    tmp_path: Path, mock_server: MockLLMServer, agents: dict[str, object], message: str
) -> None:
    config = server_config(f"sqlite:///{tmp_path / 'db.sqlite'}", mock_server.url, agents=agents)
    config.pop("default_agent")
    path = tmp_path / "agenthost.toml"
    path.write_text(render_toml(config))
    for command in ("check", "serve"):
        result = cli(command, "--config", str(path))
        assert result.returncode == 2, result
        assert message in result.stderr
        assert "agents.bad.path" in result.stderr


def test_invalid_config_fails_serve_with_one_message(tmp_path: Path) -> None:
    path = tmp_path / "agenthost.toml"
    path.write_text('[server]\nport = "eighty"\n')
    result = cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_string_without_its_key_fails_serve_with_one_message(tmp_path: Path) -> None:
    path = tmp_path / "agenthost.toml"
    path.write_text('[agents.own]\npath = "tests.agents.plain:agent"\nmodel = "openai:gpt-4o-mini"\n')
    env = dict.fromkeys(("OPENAI_API_KEY", "OPENAI_API_KEY_FILE"), "")
    result = cli("serve", "--config", str(path), env=env)
    assert result.returncode == 2, result
    assert "agent 'own': model 'openai:gpt-4o-mini'" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_streams_to_the_terminal(server: Server, mock: MockLLMServer) -> None:
    result = cli("run", "[order] where is it?", "--url", server.url)
    assert result.returncode == 0, result.stderr
    assert "delayed in transit" in result.stdout
    assert "get_order" in result.stderr
    assert "gpt-4o-mini" in result.stderr


def test_runs_list_show_cancel(server: Server, mock: MockLLMServer) -> None:
    with server.client() as client:
        run = client.post("/v1/agents/plain/run", json={"input": "for the cli"}).json()
    listed = cli("runs", "list", "--url", server.url, "--agent", "plain", "--limit", "50")
    assert listed.returncode == 0
    assert run["id"] in listed.stdout
    shown = cli("runs", "show", run["id"], "--url", server.url)
    assert shown.returncode == 0
    assert "Mock reply to: for the cli" in shown.stdout
    cancelled = cli("runs", "cancel", run["id"], "--url", server.url)
    assert cancelled.returncode == 1
    assert "already succeeded" in cancelled.stderr
    missing = cli("runs", "show", "run_nope", "--url", server.url)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


def test_cli_reports_an_unreachable_server() -> None:
    result = cli("runs", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach agenthost" in result.stderr


def test_mock_llm_command_serves_the_openai_protocol(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(AGENTHOST), "mock-llm", "--port", str(port), "--latency-ms", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
        assert reply.choices[0].message.content == "Mock reply to: ping"
        client.close()
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def mock_llm_command(*args: str) -> Iterator[str]:
    """`agenthost mock-llm ARGS` on a free port; yields its URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [str(AGENTHOST), "mock-llm", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"mock-llm exited with {process.returncode}"
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "mock-llm did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


SCRIPT = """\
latency_ms: 400
tokens_per_second: 50
fault: {kind: server_error, first_n: 3}
scenarios: {}
"""


def test_mock_llm_options_left_out_keep_the_scripts_knobs(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    with mock_llm_command("--script", str(script)) as url:
        config = httpx.get(f"{url}/_mock/config").json()
        assert config["latency_ms"] == 400
        assert config["tokens_per_second"] == 50
        assert config["fault"]["kind"] == "server_error"
        assert config["fault"]["first_n"] == 3
        httpx.post(f"{url}/_mock/config", json={"fault": None})
        started = time.monotonic()
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "ping"}]},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert time.monotonic() - started >= 0.4, "the script's latency_ms was not applied"


def test_mock_llm_options_given_override_the_script(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    with mock_llm_command(
        "--script", str(script), "--latency-ms", "0", "--tokens-per-second", "7", "--fault-first-n", "1"
    ) as url:
        config = httpx.get(f"{url}/_mock/config").json()
        assert config["latency_ms"] == 0
        assert config["tokens_per_second"] == 7
        assert config["fault"]["kind"] == "server_error"  # the script's fault, on the first call only
        assert config["fault"]["first_n"] == 1
    with mock_llm_command("--script", str(script), "--fault", "rate_limit") as url:
        config = httpx.get(f"{url}/_mock/config").json()
        assert config["fault"]["kind"] == "rate_limit"
        assert config["fault"]["first_n"] is None
        assert config["latency_ms"] == 400


def test_mock_llm_options_that_would_be_ignored_are_refused(tmp_path: Path) -> None:
    result = cli("mock-llm", "--port", str(free_port()), "--fault-first-n", "2")
    assert result.returncode == 2
    assert "--fault-first-n needs --fault" in result.stderr
    result = cli("mock-llm", "--port", str(free_port()), "--fast", "--latency-ms", "50")
    assert result.returncode == 2
    assert "--fast" in result.stderr


def test_approvals_and_run_recovery_commands(server: Server, mock: MockLLMServer) -> None:
    """`agenthost approvals list/approve`, `runs steps`, `runs fork`, `runs resume` against a server."""
    with server.client() as client:
        run_id = client.post("/v1/agents/support/runs", json={"input": "[refund] broken charger"}).json()[
            "id"
        ]
        wait_for_status(client, run_id, {"waiting_approval"})
        approval = client.get("/v1/approvals", params={"run_id": run_id}).json()["data"][0]
    listed = cli("approvals", "list", "--url", server.url, "--run", run_id)
    assert listed.returncode == 0
    assert approval["id"] in listed.stdout
    assert "refund" in listed.stdout
    approved = cli("approvals", "approve", run_id, approval["id"], "--url", server.url, "--by", "cli-user")
    assert approved.returncode == 0, approved.stderr
    assert "approved (by admin-key for cli-user)" in approved.stdout
    again = cli("approvals", "deny", run_id, approval["id"], "--url", server.url)
    assert again.returncode == 1
    assert "already approved" in again.stderr
    with server.client() as client:
        done = wait_for_status(client, run_id, {"succeeded", "failed", "dead"})
    assert done["output"] == "Refund result: Refund of $24.50 for order 5678 approved."

    steps = cli("runs", "steps", run_id, "--url", server.url)
    assert steps.returncode == 0
    assert "refund" in steps.stdout
    forked = cli("runs", "fork", run_id, "--from-step", "1", "--url", server.url)
    assert forked.returncode == 0, forked.stderr
    assert f"from step 1 of {run_id}" in forked.stdout
    resumed = cli("runs", "resume", run_id, "--url", server.url)
    assert resumed.returncode == 1
    assert "only a dead run can be resumed" in resumed.stderr


def test_tool_config_must_name_a_tool_of_the_agent(tmp_path: Path, mock_server: MockLLMServer) -> None:
    agents = {"support": {"path": "agent:support_agent", "tools": {"refnud": {"approval": "required"}}}}
    config = server_config(f"sqlite:///{tmp_path / 'db.sqlite'}", mock_server.url, agents=agents)
    path = tmp_path / "agenthost.toml"
    path.write_text(render_toml(config))
    result = cli("check", "--config", str(path))
    assert result.returncode == 2
    assert "agents.support.tools.refnud: the agent has no tool 'refnud'" in result.stderr
    assert "refund" in result.stderr
