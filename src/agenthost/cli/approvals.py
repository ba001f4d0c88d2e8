"""`agenthost approvals ...`: list pending tool calls, approve or deny them."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from agenthost.cli.common import UrlOption, api_call, out

approvals_app = typer.Typer(help="Tool calls waiting for a person's decision.", no_args_is_help=True)

ReasonOption = Annotated[str | None, typer.Option(help="Why (a denial's reason is shown to the model).")]
ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="The person you decide for (operator and admin keys only); the decider recorded is "
        "always the key you call with.",
    ),
]


@approvals_app.command("list")
def approvals_list(
    url: UrlOption = "",
    status: Annotated[str, typer.Option(help="pending, approved, denied, expired, cancelled.")] = "pending",
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's approvals.")] = None,
) -> None:
    """Approvals, newest first (pending ones by default)."""
    params: dict[str, Any] = {"status": status}
    if run_id:
        params["run_id"] = run_id
    data = api_call(url, lambda client: client.request("GET", "/v1/approvals", params=params))["data"]
    table = Table()
    table.add_column("approval", no_wrap=True)
    table.add_column("run", no_wrap=True)
    for column in ("tool", "args", "status", "requested", "expires", "decided by"):
        table.add_column(column, overflow="fold")
    for row in data:
        table.add_row(
            row["id"],
            row["run_id"],
            row["tool"],
            str(row["args"]),
            row["status"],
            row["requested_at"][:19],
            row["expires_at"][:19],
            f"{row['decided_by']} for {row['decided_for']}"
            if row.get("decided_for")
            else row["decided_by"] or "",
        )
    out.print(table)


def _decide(
    url: str, run_id: str, approval_id: str, decision: str, *, reason: str | None, by: str | None
) -> None:
    body: dict[str, Any] = {"decision": decision}
    if reason:
        body["reason"] = reason
    if by:
        body["by"] = by
    path = f"/v1/runs/{run_id}/approvals/{approval_id}"
    result = api_call(url, lambda client: client.request("POST", path, json=body))
    on_behalf = f" for {result['decided_for']}" if result.get("decided_for") else ""
    out.print(f"approval {result['id']} is {result['status']} (by {result['decided_by']}{on_behalf})")


@approvals_app.command("approve")
def approvals_approve(
    run_id: str, approval_id: str, url: UrlOption = "", reason: ReasonOption = None, by: ByOption = None
) -> None:
    """Approve a pending tool call: the run executes it and continues."""
    _decide(url, run_id, approval_id, "approve", reason=reason, by=by)


@approvals_app.command("deny")
def approvals_deny(
    run_id: str, approval_id: str, url: UrlOption = "", reason: ReasonOption = None, by: ByOption = None
) -> None:
    """Deny a pending tool call: the model is told, and continues without it."""
    _decide(url, run_id, approval_id, "deny", reason=reason, by=by)
