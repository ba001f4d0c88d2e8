"""`agenthost`: serve agents, run them from the terminal, inspect runs, check config, mock an LLM."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agenthost._version import __version__
from agenthost.cli.approvals import approvals_app
from agenthost.cli.audit import audit_app
from agenthost.cli.client import ApiClient, ApiError, default_url
from agenthost.cli.common import ConfigOption, UrlOption, err, out
from agenthost.cli.common import fail as _fail
from agenthost.cli.costs import costs
from agenthost.cli.keys import keys_app
from agenthost.cli.runs import runs_app
from agenthost.cli.token import token_app
from agenthost.errors import AgentHostError

if TYPE_CHECKING:
    from agenthost.runtime.registry import AgentRegistry
    from agenthost.settings import Settings

app = typer.Typer(
    name="agenthost",
    help="Self-hosted production runtime for Pydantic AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(runs_app, name="runs")
app.add_typer(approvals_app, name="approvals")
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.command("costs")(costs)


def _version(value: bool) -> None:
    if value:
        out.print(f"agenthost {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Self-hosted production runtime for Pydantic AI agents."""


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help=r"Bind address (overrides \[server] host).")] = None,
    port: Annotated[int | None, typer.Option(help=r"Port (overrides \[server] port).")] = None,
    mock_llm_script: Annotated[
        Path | None,
        typer.Option(
            "--mock-llm",
            help="Also serve agenthost's mock LLM playing this YAML script (the scripted demo: "
            "a model whose base_url is the mock's, no provider key needed).",
        ),
    ] = None,
    mock_llm_port: Annotated[
        int, typer.Option("--mock-llm-port", help="Port of the --mock-llm server (on 127.0.0.1).")
    ] = 8090,
) -> None:
    """Serve the configured agents over HTTP (on the configured host and port)."""
    import uvicorn

    from agenthost.observability.logging import configure_logging
    from agenthost.security.redaction import log_masker
    from agenthost.server.app import create_app

    settings = _settings_with_agents(config)
    try:
        configure_logging(settings.logging, mask=log_masker())
        _registry(settings)  # a wrong agent path or model fails here, before anything starts
        application = create_app(settings)
    except AgentHostError as exc:
        raise _fail(exc.message, 2) from None
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=host or settings.server.host,
            port=port or settings.server.port,
            log_config=None,
            timeout_graceful_shutdown=int(settings.server.shutdown_grace_seconds) or None,
            lifespan="on",
        )
    )
    with _mock_llm(mock_llm_script, mock_llm_port):
        server.run()
    if not server.started:
        raise typer.Exit(1)


@contextlib.contextmanager
def _mock_llm(script: Path | None, port: int) -> Iterator[None]:
    """The mock LLM of `serve --mock-llm`, in a background thread while the server runs."""
    if script is None:
        yield
        return
    from pydantic import ValidationError

    from agenthost.testing import MockLLMServer, load_script

    try:
        mock = MockLLMServer(load_script(script), port=port).start()
    except (OSError, ValueError, ValidationError) as exc:
        raise _fail(f"--mock-llm: {exc}", 2) from None
    err.print(f"mock LLM on {mock.url} playing {script}", highlight=False)
    try:
        yield
    finally:
        mock.stop()


def _settings_with_agents(config: Path | None) -> Settings:
    """The settings, refused (exit 2) when they cannot be loaded or define no agent to serve."""
    from agenthost.settings import load_settings, resolve_config_path

    try:
        settings = load_settings(config)
        path = resolve_config_path(config)
    except AgentHostError as exc:
        raise _fail(exc.message, 2) from None
    if settings.agents:
        return settings
    if path is None:
        msg = (
            f"no configuration: no --config given, $AGENTHOST_CONFIG is not set and there is no "
            f"agenthost.toml in {Path.cwd()}; point at one with --config PATH "
            "(e.g. --config examples/support/agenthost.toml)"
        )
    else:
        msg = (
            f"{path} defines no agents: add one, e.g. [agents.support] with "
            'path = "agent:support_agent" (module:attribute, importable from the config\'s folder)'
        )
    raise _fail(msg, 2)


def _registry(settings: Settings) -> AgentRegistry:
    """The configured agents, imported and given their models, without opening any storage."""
    from agenthost.gateway.models import Gateway, GatewayStores
    from agenthost.runtime.registry import AgentRegistry

    return AgentRegistry(settings, Gateway(settings, GatewayStores.detached()))


@app.command()
def check(
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (settings and agents) and nothing else.")
    ] = False,
) -> None:
    """Validate the configuration and print the resolved settings (secrets masked) and agents.

    Exits 2 when the configuration is invalid, cannot be found, or defines no agents."""
    settings = _settings_with_agents(config)
    try:
        registry = _registry(settings)
    except AgentHostError as exc:
        raise _fail(exc.message, 2) from None
    agents = [
        {
            "name": entry.name,
            "path": settings.agents[entry.name].path,
            "model": entry.model_label,
            "model_source": entry.model_source,
            "default": entry.name == registry.default,
        }
        for entry in registry
    ]
    if as_json:
        document = {"valid": True, "settings": settings.masked(), "agents": agents}
        sys.stdout.write(json.dumps(document, indent=2))
        sys.stdout.write("\n")
        return
    out.print_json(json.dumps(settings.masked()))
    table = Table(title="agents")
    for column in ("agent", "import path", "model", "model chosen by", "default"):
        table.add_column(column)
    for agent in agents:
        table.add_row(
            escape(str(agent["name"])),
            escape(str(agent["path"])),
            escape(str(agent["model"])),
            escape(str(agent["model_source"])),
            "yes" if agent["default"] else "",
        )
    out.print(table)
    out.print("[green]configuration is valid[/]")


@app.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown), generated from the settings model."""
    from agenthost.cli.reference import render_reference

    sys.stdout.write(render_reference())


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="What to ask the agent.")],
    agent: Annotated[
        str | None, typer.Option("--agent", "-a", help="Agent name (default: the server's).")
    ] = None,
    url: UrlOption = "",
    user_id: Annotated[str | None, typer.Option(help="End-user id recorded with the run.")] = None,
) -> None:
    """Stream one run to the terminal: text as it is generated, tool calls, then usage and cost."""
    with ApiClient(url or default_url()) as client:
        try:
            name = agent or _default_agent(client)
            body: dict[str, Any] = {"input": prompt}
            if user_id:
                body["user_id"] = user_id
            failed = _render_stream(client.stream_events(f"/v1/agents/{name}/stream", body))
        except ApiError as exc:
            raise _fail(str(exc)) from None
    if failed:
        raise typer.Exit(1)


def _default_agent(client: ApiClient) -> str:
    agents = client.request("GET", "/v1/agents")["data"]
    for info in agents:
        if info["default"]:
            return str(info["name"])
    msg = "the server has no agents"
    raise ApiError(msg)


def _render_stream(events: Any) -> bool:
    failed = False
    for event, data in events:
        if event == "text.delta":
            out.print(data["delta"], end="", highlight=False, markup=False)
        elif event == "tool.call":
            err.print(f"\n[dim]→ {data['name']}({json.dumps(data['args'])})[/]", highlight=False)
        elif event == "tool.result":
            err.print(f"[dim]← {data['name']}: {data.get('outcome')}[/]", highlight=False)
        elif event == "run.completed":
            cost = data["cost"]
            usage = data["usage"]
            err.print(
                f"\n[dim]run {data['run_id']} · {data['model']} · {usage['input_tokens']} in / "
                f"{usage['output_tokens']} out tokens · ${cost['usd']:.6f} ({cost['status']}) · "
                f"{data['steps']} steps[/]",
                highlight=False,
            )
        elif event == "approval.required":
            err.print(
                f"\n[yellow]waiting for approval of {data['name']}({json.dumps(data['args'])}):[/] "
                f"agenthost approvals approve {data['run_id']} {data['approval_id']}",
                highlight=False,
            )
        elif event == "approval.resolved":
            err.print(f"[dim]{data['name']}: {data['decision']} by {data['by']}[/]", highlight=False)
        elif event in ("run.failed", "run.dead", "run.cancelled"):
            failed = True
            error = data.get("error") or {"message": "cancelled"}
            err.print(f"\n[bold red]{event}:[/] {error['message']}", highlight=False)
    out.print()
    return failed


@app.command("mock-llm")
def mock_llm(  # noqa: PLR0917 - typer maps each parameter to an option
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    script: Annotated[Path | None, typer.Option(help="YAML script of scenarios.")] = None,
    latency_ms: Annotated[
        float | None, typer.Option(help="Delay before the first byte (default: the script's, else 0).")
    ] = None,
    tokens_per_second: Annotated[
        float | None, typer.Option(help="Streaming pace (default: the script's, else all at once).")
    ] = None,
    fault: Annotated[
        str | None, typer.Option(help="Inject a fault into every call (or the first N).")
    ] = None,
    fault_first_n: Annotated[
        int | None, typer.Option(help="Only the first N calls fail (of --fault, else the script's fault).")
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="Benchmark fast path: one fixed OpenAI completion, no scenarios.")
    ] = False,
) -> None:
    """Serve the mock LLM (OpenAI and Anthropic wire protocols) for tests and benchmarks.

    Options given override the script's knobs; options left out leave them as the script sets them."""
    knobs = {"latency_ms": latency_ms, "tokens_per_second": tokens_per_second}
    given: dict[str, Any] = {name: value for name, value in knobs.items() if value is not None}
    if fast:
        if given or script is not None or fault is not None or fault_first_n is not None:
            raise _fail("--fast serves a fixed reply: it takes no --script, knobs or faults", 2)
        from agenthost.testing.mock_llm.fast import serve_fast

        err.print(f"fast mock LLM on http://{host}:{port} (OpenAI: /v1/chat/completions, fixed reply)")
        serve_fast(host=host, port=port)
        return
    from pydantic import ValidationError

    from agenthost.testing import MockLLMConfig, load_script
    from agenthost.testing.mock_llm.server import serve

    try:
        base = load_script(script) if script is not None else MockLLMConfig()
        if fault is not None:
            given["fault"] = {"kind": fault, "first_n": fault_first_n}
        elif fault_first_n is not None:
            if base.fault is None:
                raise _fail("--fault-first-n needs --fault, or a fault in the script", 2)
            only_first = {"first_n": fault_first_n, "every_n": None, "probability": None}
            given["fault"] = {**base.fault.model_dump(), **only_first}
        config = MockLLMConfig.model_validate({**base.model_dump(), **given})
    except (OSError, ValueError, ValidationError) as exc:
        raise _fail(str(exc), 2) from None
    err.print(f"mock LLM on http://{host}:{port} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages)")
    serve(config, host=host, port=port)


def main() -> None:
    """Entry point of the `agenthost` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
