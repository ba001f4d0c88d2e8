"""`agenthost runs ...`: inspect, cancel, resume and fork runs on a running server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from agenthost.cli.common import UrlOption, api_call, out

runs_app = typer.Typer(
    help="Inspect, cancel, resume and fork runs on a running server.", no_args_is_help=True
)


@runs_app.command("list")
def runs_list(
    url: UrlOption = "",
    status: Annotated[
        str | None,
        typer.Option(help="queued, running, waiting_approval, succeeded, failed, dead, cancelled."),
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """The newest runs."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if agent:
        params["agent"] = agent
    data = api_call(url, lambda client: client.request("GET", "/v1/runs", params=params)["data"])
    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("agent", "status", "model", "tokens", "cost $", "latency ms", "created"):
        table.add_column(column, overflow="fold")
    for run_ in data:
        table.add_row(
            run_["id"],
            run_["agent"],
            run_["status"],
            run_["model"] or "",
            str(run_["usage"]["total_tokens"]),
            f"{run_['cost']['usd']:.6f}",
            f"{run_['latency_ms']:.0f}" if run_["latency_ms"] is not None else "",
            run_["created_at"][:19],
        )
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: str, url: UrlOption = "") -> None:
    """One run, as JSON."""
    out.print_json(json.dumps(api_call(url, lambda client: client.request("GET", f"/v1/runs/{run_id}"))))


@runs_app.command("cancel")
def runs_cancel(run_id: str, url: UrlOption = "") -> None:
    """Cancel a queued or running run."""
    result = api_call(url, lambda client: client.request("POST", f"/v1/runs/{run_id}/cancel"))
    out.print(f"run {result['id']} is {result['status']}")


@runs_app.command("steps")
def runs_steps(run_id: str, url: UrlOption = "") -> None:
    """The run's checkpointed steps: a timeline of model and tool calls with cost."""
    steps = api_call(url, lambda client: client.request("GET", f"/v1/runs/{run_id}/steps"))["data"]
    table = Table(title=f"steps of {run_id}")
    for column in ("step", "kind", "name", "outcome", "ms", "tokens in/out", "cost $"):
        table.add_column(column)
    for step in steps:
        tokens = (
            f"{step['input_tokens']}/{step['output_tokens']}"
            if step["kind"] == "model" and "input_tokens" in step
            else ""
        )
        cost = f"{step['cost']['nanousd'] / 1e9:.6f}" if "cost" in step else ""
        duration = "" if step["duration_ms"] is None else str(step["duration_ms"])
        table.add_row(str(step["step"]), step["kind"], step["name"], step["outcome"], duration, tokens, cost)
    out.print(table)


@runs_app.command("resume")
def runs_resume(run_id: str, url: UrlOption = "") -> None:
    """Re-execute a dead run from the step that failed (earlier steps replay from the record)."""
    result = api_call(url, lambda client: client.request("POST", f"/v1/runs/{run_id}/resume"))
    out.print(f"run {result['id']} is {result['status']} again")


@runs_app.command("fork")
def runs_fork(
    run_id: str,
    from_step: Annotated[int, typer.Option("--from-step", min=1, help="First step to execute again.")],
    url: UrlOption = "",
) -> None:
    """Start a new run that replays this one's steps before N and executes from step N."""
    body: dict[str, Any] = {"from_step": from_step}
    result = api_call(url, lambda client: client.request("POST", f"/v1/runs/{run_id}/fork", json=body))
    out.print(f"forked run {result['id']} from step {from_step} of {run_id}")
