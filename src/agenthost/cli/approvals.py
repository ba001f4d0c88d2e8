"""`agenthost approvals ...`: list pending tool calls, approve or deny them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from agenthost.cli.common import UrlOption, api_call, err, out, stdout_console

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
    as_json: Annotated[bool, typer.Option("--json", help="Print the approvals as JSON.")] = False,
) -> None:
    """Approvals, newest first (pending ones by default), each with its tool call's arguments."""
    params: dict[str, Any] = {"status": status}
    if run_id:
        params["run_id"] = run_id
    data = api_call(url, lambda client: client.request("GET", "/v1/approvals", params=params))["data"]
    if as_json:
        out.print_json(json.dumps(data))
        return
    if not data:
        out.print(f"No {status} approvals{f' for run {run_id}' if run_id else ''}.", highlight=False)
        return
    console = stdout_console(wide=False)
    for index, row in enumerate(data):
        if index:
            console.print()
        console.print(_describe(row), highlight=False)
    if any(row["status"] == "pending" for row in data):
        err.print("\n[dim]Decide with: agenthost approvals approve|deny RUN_ID APPROVAL_ID[/]")


def _describe(row: dict[str, Any]) -> Text:
    """One approval as a block: id, tool and status; run; times; decision; pretty arguments."""
    text = Text()
    text.append(row["id"], style="bold")
    text.append(f"  {row['tool']}  ")
    text.append(row["status"], style="yellow" if row["status"] == "pending" else "")
    text.append(f"\n  run        {row['run_id']}")
    text.append(f"\n  requested  {row['requested_at'][:19].replace('T', ' ')} UTC")
    if row.get("expires_at"):
        text.append(f" (expires {row['expires_at'][:19].replace('T', ' ')} UTC)")
    if row.get("decided_by"):
        decided = f"by {row['decided_by']}"
        if row.get("decided_for"):
            decided += f" for {row['decided_for']}"
        if row.get("reason"):
            decided += f": {row['reason']}"
        text.append(f"\n  decided    {decided}")
    arguments = json.dumps(row["args"], indent=2, ensure_ascii=False).replace("\n", "\n             ")
    text.append(f"\n  arguments  {arguments}")
    return text


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
