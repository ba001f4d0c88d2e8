"""`agenthost audit`: verify the audit log's hash chain and list entries, directly on the
configured database (no server needed)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agenthost.cli.common import Col, ConfigOption, WideOption, err, fail, open_database, out, print_rows
from agenthost.security.audit import AuditEntry, AuditLog, VerifyReport
from agenthost.storage.audit import AuditStore

audit_app = typer.Typer(help="The audit log: verify its hash chain, list entries.", no_args_is_help=True)


def _expected(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, sep, digest = value.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:  # noqa: PLR2004 - SHA-256 hex
        msg = "--expect takes SEQ:HASH as printed by a previous `agenthost audit verify`"
        raise fail(msg, 2)
    return int(seq), digest


@audit_app.command("verify")
def verify(
    config: ConfigOption = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            help="SEQ:HASH of the head exported earlier: that entry must still have that hash "
            "(catches a rewritten chain).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check every entry's hash and digests, gaps, the head and the retention anchor.

    Exit code 0 when the log is intact, 1 when it was tampered with (the first bad entry is named).
    """
    anchor = _expected(expect)

    async def go() -> VerifyReport:
        async with open_database(config) as (_settings, engine):
            return await AuditLog(AuditStore(engine)).verify(expect=anchor)

    report = asyncio.run(go())
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "head": {"seq": report.head_seq, "hash": report.head_hash},
                    "anchor_seq": report.anchor_seq,
                    "first_bad_seq": report.first_bad_seq,
                    "problems": [
                        {"seq": p.seq, "kind": p.kind, "message": p.message} for p in report.problems
                    ],
                }
            )
        )
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: VerifyReport) -> None:
    start = f" (from the retention anchor after entry {report.anchor_seq})" if report.anchor_seq else ""
    out.print(f"checked {report.checked} entries{start}", highlight=False)
    out.print(f"head    {report.head_seq}:{report.head_hash}", highlight=False, soft_wrap=True)
    first = report.first_problem
    if first is None:
        out.print("[bold green]audit log intact[/]: every hash, digest and sequence number checks out")
        err.print(
            "Keep the head line above somewhere this database cannot write; "
            "`agenthost audit verify --expect SEQ:HASH` checks it later.",
            highlight=False,
        )
        return
    what = f"first bad entry {first.seq} ({first.kind}): {escape(first.message)}"
    out.print(f"[bold red]audit log tampered with[/]: {what}")
    table = Table(title="problems")
    for column in ("seq", "kind", "what"):
        table.add_column(column)
    for problem in sorted(report.problems, key=lambda p: p.seq):
        table.add_row(str(problem.seq), problem.kind, escape(problem.message))
    out.print(table)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{name}: not an ISO 8601 time: {value!r}", 2) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@audit_app.command("list")
def list_entries(  # noqa: PLR0917 - one option per filter
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Entries to show.")] = 20,
    action: Annotated[str | None, typer.Option("--action", help="Action, or a prefix ending in `*`.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Entries made by this user.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From (ISO 8601, UTC if no offset).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before (ISO 8601).")] = None,
    before_seq: Annotated[int | None, typer.Option("--before-seq", help="Entries before this seq.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    wide: WideOption = False,
) -> None:
    """Audit entries, newest first."""
    start, end = _when(since, "--since"), _when(until, "--until")

    async def go() -> list[AuditEntry]:
        async with open_database(config) as (_settings, engine):
            return await AuditLog(AuditStore(engine)).list(
                since=start, until=end, action=action, actor_user=user, limit=limit, before_seq=before_seq
            )

    entries = asyncio.run(go())
    if as_json:
        out.print_json(json.dumps([e.to_dict() for e in entries]))
        return
    rows = [
        (
            str(entry.seq),
            entry.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.action,
            entry.actor,
            entry.actor_user or "",
            entry.target or "",
            _short(entry.details, None if wide or not out.is_terminal else 60),
        )
        for entry in entries
    ]
    print_rows(_AUDIT_COLUMNS, rows, wide=wide, empty="No audit entries.", title="audit log")


_AUDIT_COLUMNS = (
    Col("seq", justify="right"),
    Col("time (UTC)"),
    Col("action"),
    Col("actor", shrink=True),
    Col("user", shrink=True),
    Col("target", shrink=True),
    Col("details", shrink=True),
)


def _short(details: Any, width: int | None) -> str:
    text = details if isinstance(details, str) else json.dumps(details, separators=(",", ":"))
    return text if width is None or len(text) <= width else text[: width - 1] + "…"
