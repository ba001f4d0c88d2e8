"""The `agenthost` command line, run as a real subprocess."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import typer

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
    wait_for,
    wait_for_status,
)


def cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess, its output piped; `env` adds variables (None removes one)."""
    merged = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), str(REPO / "examples" / "support")]),
        "COLUMNS": "200",
        "AGENTHOST_API_KEY": ADMIN_KEY,
        **(env or {}),
    }
    full_env = {name: value for name, value in merged.items() if value is not None}
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


# ------------------------------------------------------------------ configuration and database discovery


def _write_config(path: Path, mock_url: str, database: Path, **overrides: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_toml(server_config(f"sqlite:///{database}", mock_url, **overrides)))
    return path


def test_database_commands_refuse_to_create_a_database_implicitly(
    tmp_path: Path, mock_server: MockLLMServer
) -> None:
    """`keys` and `audit` run from a folder without the configured database stop with exit 2 and
    name the path they looked at, instead of creating and using a new, empty database."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env: dict[str, str | None] = {"AGENTHOST_CONFIG": None, "AGENTHOST_DATABASE_URL": None}
    for command in (
        ("keys", "list"),
        ("audit", "verify"),
        ("audit", "list"),
        ("keys", "create", "--name", "x"),
    ):
        result = cli(*command, cwd=elsewhere, env=env)
        assert result.returncode == 2, (command, result)
        assert f"no agenthost database at {elsewhere / '.agenthost' / 'agenthost.db'}" in result.stderr
        assert "--config" in result.stderr
        assert "AGENTHOST_CONFIG" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (elsewhere / ".agenthost").exists(), "a database command created a database"

    # The same config discovery as `serve`: --config, then $AGENTHOST_CONFIG, then ./agenthost.toml.
    database = tmp_path / "data" / "agenthost.db"
    config = _write_config(tmp_path / "deploy" / "agenthost.toml", mock_server.url, database)
    missing = cli("keys", "list", "--config", str(config), cwd=elsewhere)
    assert missing.returncode == 2
    assert f"no agenthost database at {database}" in missing.stderr
    assert str(config) in missing.stderr
    created = cli(
        "keys", "create", "--name", "first", "--role", "admin", "--create-database", "--config", str(config)
    )
    assert created.returncode == 0, created.stderr
    assert database.is_file()
    key_id = created.stderr.split("id ", 1)[1].split()[0]
    by_env = cli("keys", "list", cwd=elsewhere, env={"AGENTHOST_CONFIG": str(config)})
    assert by_env.returncode == 0, by_env.stderr
    assert key_id in by_env.stdout
    by_cwd = cli("audit", "verify", cwd=config.parent, env={"AGENTHOST_CONFIG": None})
    assert by_cwd.returncode == 0, by_cwd.stderr
    assert "checked 1 entries" in by_cwd.stdout
    assert not (elsewhere / ".agenthost").exists()


def test_check_and_serve_refuse_a_missing_config_or_one_without_agents(
    tmp_path: Path, mock_server: MockLLMServer
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("check", "serve"):
        result = cli(command, cwd=empty, env={"AGENTHOST_CONFIG": None})
        assert result.returncode == 2, (command, result)
        assert "no configuration" in result.stderr
        assert str(empty) in result.stderr
        assert "--config" in result.stderr
        given = cli(command, "--config", str(tmp_path / "nope.toml"), cwd=empty)
        assert given.returncode == 2
        assert "does not exist" in given.stderr
    no_agents = tmp_path / "agenthost.toml"
    no_agents.write_text("[server]\nport = 9555\n")
    for command in ("check", "serve"):
        result = cli(command, "--config", str(no_agents))
        assert result.returncode == 2, (command, result)
        assert f"{no_agents} defines no agents" in result.stderr
        by_cwd = cli(command, cwd=tmp_path, env={"AGENTHOST_CONFIG": None})
        assert by_cwd.returncode == 2
        assert "defines no agents" in by_cwd.stderr


def test_check_json_prints_only_json(tmp_path: Path, mock_server: MockLLMServer) -> None:
    config = _write_config(tmp_path / "agenthost.toml", mock_server.url, tmp_path / "db.sqlite")
    result = cli("check", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert document["valid"] is True
    assert "sk-test" not in result.stdout
    assert document["settings"]["models"]["mock"]["api_key"] == "**********"
    agents = {agent["name"]: agent for agent in document["agents"]}
    assert agents["support"]["path"] == "agent:support_agent"
    assert agents["support"]["default"] is True
    assert agents["plain"]["model"] == "gpt-4o-mini"


def _bracketed(text: str | None) -> set[str]:
    """`[section]` names in a help text, written escaped (`\\[server]`) or not."""
    return {f"[{name}]" for name in re.findall(r"\\?\[([a-z][a-z_.<>]*)\]", text or "")}


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], set[str]]]:
    names = _bracketed(command.help)
    for param in command.params:
        names |= _bracketed(getattr(param, "help", None))
    yield path, names
    # typer's groups are not click.Group subclasses (typer vendors click): duck-type them.
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_texts_keep_their_section_names() -> None:
    """`[server] run_wait_timeout` in a help text is shown as written, not eaten as rich markup."""
    from agenthost.cli.main import app

    checked = 0
    for path, names in _commands(typer.main.get_command(app)):
        if not names:
            continue
        shown = cli(*path, "--help").stdout
        for name in names:
            assert name in shown, (path, name, shown)
        checked += 1
    assert checked >= 4  # serve, keys create, keys revoke, token create at least


# ------------------------------------------------------------------ listings


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli_tty(*args: str, columns: int) -> str:
    """The CLI's stdout on a terminal `columns` wide (a pseudo-terminal), without colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        "COLUMNS": str(columns),
        "AGENTHOST_API_KEY": ADMIN_KEY,
        "NO_COLOR": "1",
    }
    process = subprocess.Popen(
        [str(AGENTHOST), *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""
    return _ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_runs_list_fits_the_terminal_and_prints_full_values_when_piped(
    server: Server, mock: MockLLMServer
) -> None:
    agent = "router"  # a long model name on a narrow terminal is cut, the id never
    with server.client() as client:
        ids = [
            client.post(f"/v1/agents/{agent}/run", json={"input": f"listing {n}"}).json()["id"]
            for n in range(3)
        ]
    args = ("runs", "list", "--url", server.url, "--agent", agent, "--limit", "3")
    for columns in (100, 120):
        shown = cli_tty(*args, columns=columns)
        lines = [line for line in shown.splitlines() if line.strip()]
        assert all(len(line) <= columns for line in lines), shown
        assert len(lines) == 1 + len(ids), shown  # a header and one line per run: nothing wraps
        for run_id in ids:
            assert sum(run_id in line for line in lines) == 1, (run_id, shown)
        assert "latency ms" not in shown  # a --wide column

    piped = cli(*args, env={"COLUMNS": "60"})
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert len(lines) == 1 + len(ids)
    assert "latency ms" in lines[0]
    for run_id in ids:
        assert run_id in piped.stdout
    assert "…" not in piped.stdout
    wide = cli_tty(*args, "--wide", columns=100)
    assert "latency ms" in wide
    assert all(run_id in wide for run_id in ids)
    as_json = cli(*args, "--json")
    assert [run["id"] for run in json.loads(as_json.stdout)] == ids[::-1]


def test_empty_listings_say_so(server: Server, mock: MockLLMServer, tmp_path: Path) -> None:
    nothing = cli("runs", "list", "--url", server.url, "--agent", "no-such-agent")
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.strip() == "No runs."
    approvals = cli("approvals", "list", "--url", server.url, "--run", "run_01nothingwaitshere000000")
    assert approvals.returncode == 0, approvals.stderr
    assert approvals.stdout.strip() == "No pending approvals for run run_01nothingwaitshere000000."
    config = tmp_path / "agenthost.toml"
    config.write_text(render_toml({"database_url": f"sqlite:///{tmp_path / 'db.sqlite'}"}))
    keys = cli("keys", "list", "--config", str(config))
    assert keys.returncode == 2  # no database yet: refused, not created
    cli("keys", "create", "--name", "k", "--create-database", "--config", str(config))
    listed = cli("keys", "list", "--config", str(config), "--json")
    key_id = json.loads(listed.stdout)[0]["id"]
    cli("keys", "revoke", key_id, "--config", str(config))
    assert cli("keys", "list", "--config", str(config)).stdout.strip().startswith("No keys")
    audit = cli("audit", "list", "--config", str(config), "--action", "nothing.*")
    assert audit.stdout.strip() == "No audit entries."


def test_approvals_list_pretty_prints_arguments(server: Server, mock: MockLLMServer) -> None:
    reason = "[refund] the charger is broken, please refund it"
    with server.client() as client:
        run_id = client.post("/v1/agents/support/runs", json={"input": reason}).json()["id"]
        wait_for_status(client, run_id, {"waiting_approval"})
    shown = cli_tty("approvals", "list", "--url", server.url, "--run", run_id, columns=100)
    lines = shown.splitlines()
    assert all(len(line) <= 100 for line in lines), shown
    assert any(line.strip().rstrip(",") == '"order_id": "5678"' for line in lines), shown  # one per line
    assert f'"reason": "{reason}"' in shown
    assert any(line.strip() == f"run        {run_id}" for line in lines), shown
    piped = cli("approvals", "list", "--url", server.url, "--run", run_id)
    assert f'"reason": "{reason}"' in piped.stdout
    approval = json.loads(cli("approvals", "list", "--url", server.url, "--run", run_id, "--json").stdout)[0]
    assert approval["args"] == {"order_id": "5678", "reason": reason}
    cli("approvals", "deny", run_id, approval["id"], "--url", server.url)


# ------------------------------------------------------------------ the scripted demo


def test_serve_with_mock_llm_shows_tool_calls_and_approvals(tmp_path: Path) -> None:
    """`agenthost serve --mock-llm` (what `make demo-scripted` runs) serves the example agent
    against the mock LLM playing examples/support/mock-llm.yaml: tool calls and approvals."""
    mock_port, port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        "AGENTHOST_AUTH__ADMIN_KEY": ADMIN_KEY,
        "AGENTHOST_MODELS__SCRIPTED__BASE_URL": f"http://127.0.0.1:{mock_port}/v1",
    }
    example = REPO / "examples" / "support"
    command = [
        str(AGENTHOST),
        "serve",
        "--config",
        str(example / "agenthost.scripted.toml"),
        "--mock-llm",
        str(example / "mock-llm.yaml"),
        "--mock-llm-port",
        str(mock_port),
        "--port",
        str(port),
    ]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=30) as client:
            wait_for(lambda: _ready(url, process), timeout=90)
            order = client.post("/v1/agents/support/run", json={"input": "Where is my order 1234?"}).json()
            assert order["status"] == "succeeded", order
            assert "delayed in transit" in order["output"]
            assert order["usage"]["tool_calls"] == 1
            run_id = client.post(
                "/v1/agents/support/runs", json={"input": "Please refund order 5678, the charger is broken"}
            ).json()["id"]
            wait_for_status(client, run_id, {"waiting_approval"})
            listed = cli("approvals", "list", "--url", url, "--run", run_id)
            assert '"order_id": "5678"' in listed.stdout, listed
            approval = client.get("/v1/approvals", params={"run_id": run_id}).json()["data"][0]
            approved = cli("approvals", "approve", run_id, approval["id"], "--url", url)
            assert approved.returncode == 0, approved.stderr
            done = wait_for_status(client, run_id, {"succeeded", "failed", "dead"})
            assert done["output"] == "Refund of $24.50 for order 5678 approved.", done
            stats = httpx.get(f"http://127.0.0.1:{mock_port}/_mock/stats").json()
            assert stats["by_scenario"]["refund_5678"]["calls"] == 2
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        log.close()
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
    assert code in {0, -signal.SIGTERM}, code
    assert "server_stopped" in (tmp_path / "serve.log").read_text()
    with pytest.raises(httpx.ConnectError):  # the mock stopped with the server
        httpx.get(f"http://127.0.0.1:{mock_port}/health", timeout=2)


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, f"serve exited with {process.returncode}"
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_mock_llm_on_a_busy_port_fails_cleanly(tmp_path: Path) -> None:
    example = REPO / "examples" / "support"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli(
            "serve",
            "--config",
            str(example / "agenthost.scripted.toml"),
            "--mock-llm",
            str(example / "mock-llm.yaml"),
            "--mock-llm-port",
            str(busy.getsockname()[1]),
            "--port",
            str(free_port()),
            cwd=tmp_path,
        )
    assert result.returncode == 2, result
    assert "--mock-llm" in result.stderr
    assert "Traceback" not in result.stderr
