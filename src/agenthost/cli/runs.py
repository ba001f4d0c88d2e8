"""`agenthost runs ...`: inspect, cancel, resume and fork runs on a running server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from agenthost.cli.common import Col, UrlOption, WideOption, api_call, out, print_rows, short_time

runs_app = typer.Typer(
    help="Inspect, cancel, resume and fork runs on a running server.", no_args_is_help=True
)


_RUN_COLUMNS = (
    Col("id"),
    Col("agent", shrink=True),
    Col("status"),
    Col("model", shrink=True),
    Col("tokens", justify="right"),
    Col("cost $", justify="right"),
    Col("latency ms", justify="right", wide_only=True),
    Col("created", short=short_time),
)


@runs_app.command("list")
def runs_list(  # noqa: PLR0917 - typer maps each parameter to an option
    url: UrlOption = "",
    status: Annotated[
        str | None,
        typer.Option(help="queued, running, waiting_approval, succeeded, failed, dead, cancelled."),
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    wide: WideOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """The newest runs."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if agent:
        params["agent"] = agent
    data = api_call(url, lambda client: client.request("GET", "/v1/runs", params=params)["data"])
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = [
        (
            run_["id"],
            run_["agent"],
            run_["status"],
            run_["model"] or "",
            str(run_["usage"]["total_tokens"]),
            f"{run_['cost']['usd']:.6f}",
            f"{run_['latency_ms']:.0f}" if run_["latency_ms"] is not None else "",
            run_["created_at"][:19] + "Z",
        )
        for run_ in data
    ]
    print_rows(_RUN_COLUMNS, rows, wide=wide, empty="No runs.")


@runs_app.command("show")
def runs_show(run_id: str, url: UrlOption = "") -> None:
    """One run, as JSON."""
    out.print_json(json.dumps(api_call(url, lambda client: client.request("GET", f"/v1/runs/{run_id}"))))


@runs_app.command("cancel")
def runs_cancel(run_id: str, url: UrlOption = "") -> None:
    """Cancel a queued or running run."""
    result = api_call(url, lambda client: client.request("POST", f"/v1/runs/{run_id}/cancel"))
    out.print(f"run {result['id']} is {result['status']}")


_STEP_COLUMNS = (
    Col("step", justify="right"),
    Col("kind"),
    Col("name", shrink=True),
    Col("outcome", shrink=True),
    Col("ms", justify="right"),
    Col("tokens in/out", justify="right"),
    Col("cost $", justify="right"),
)


@runs_app.command("steps")
def runs_steps(run_id: str, url: UrlOption = "", wide: WideOption = False) -> None:
    """The run's checkpointed steps: a timeline of model and tool calls with cost."""
    steps = api_call(url, lambda client: client.request("GET", f"/v1/runs/{run_id}/steps"))["data"]
    rows = []
    for step in steps:
        tokens = (
            f"{step['input_tokens']}/{step['output_tokens']}"
            if step["kind"] == "model" and "input_tokens" in step
            else ""
        )
        cost = f"{step['cost']['nanousd'] / 1e9:.6f}" if "cost" in step else ""
        duration = "" if step["duration_ms"] is None else str(step["duration_ms"])
        rows.append((str(step["step"]), step["kind"], step["name"], step["outcome"], duration, tokens, cost))
    empty = f"No steps in run {run_id} yet."
    print_rows(_STEP_COLUMNS, rows, wide=wide, empty=empty, title=f"steps of {run_id}")


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
