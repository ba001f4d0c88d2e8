"""`agenthost costs`: the spend report of a running server, as tables with an hourly sparkline."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from agenthost.cli.common import Col, UrlOption, WideOption, api_call, out, print_rows

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One bar per value, scaled to the largest (all-zero gives the lowest bar)."""
    top = max(values, default=0.0)
    if top <= 0:
        return _BARS[0] * len(values)
    return "".join(_BARS[min(int(v / top * (len(_BARS) - 1) + 0.5), len(_BARS) - 1)] for v in values)


_TOP_COLUMNS = (
    Col("run"),
    Col("agent", shrink=True),
    Col("user", shrink=True),
    Col("cost", justify="right"),
    Col("calls", justify="right"),
)


def _usd(value: float) -> str:
    return f"${value:,.6f}"


def _breakdown(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in (title.rsplit(maxsplit=1)[-1], "cost", "calls", "input tokens", "output tokens"):
        table.add_column(column, justify="left" if column == title.rsplit(maxsplit=1)[-1] else "right")
    for row in rows:
        table.add_row(
            str(row["name"] if row["name"] is not None else "—"),
            _usd(row["usd"]),
            str(row["calls"]),
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
        )
    return table


def costs(
    url: UrlOption = "",
    start: Annotated[
        str | None,
        typer.Option("--from", help="Start (ISO 8601 with offset, or a date: UTC midnight); default today."),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End (exclusive); default now.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    wide: WideOption = False,
) -> None:
    """Spend: total, today, per hour (last 24 h), top runs, by model, agent, user and key."""
    params = {k: v for k, v in (("from", start), ("to", end)) if v}
    report = api_call(url, lambda client: client.request("GET", "/v1/costs", params=params))
    if as_json:
        out.print_json(json.dumps(report))
        return
    total = report["total"]
    out.print(
        f"[bold]{_usd(total['usd'])}[/bold] from {report['from'][:19]} to {report['to'][:19]} UTC: "
        f"{total['calls']} calls, {total['runs']} runs, average {_usd(report['average_per_run']['usd'])} "
        f"per run; today {_usd(report['today']['usd'])}"
    )
    hourly = report["hourly"]
    out.print(
        f"last 24 h  {sparkline([h['usd'] for h in hourly])}  (peak {_usd(max(h['usd'] for h in hourly))}/h)"
    )
    top = [
        (run_["run_id"], run_["agent"] or "", run_["user_id"] or "", _usd(run_["usd"]), str(run_["calls"]))
        for run_ in report["top_runs"]
    ]
    print_rows(_TOP_COLUMNS, top, wide=wide, empty="No spend in this period.", title="most expensive runs")
    for name in ("model", "agent", "user", "key"):
        if report[f"by_{name}"]:
            out.print(_breakdown(f"by {name}", report[f"by_{name}"]))
