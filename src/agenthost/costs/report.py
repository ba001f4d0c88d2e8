"""The spend report behind `GET /v1/costs` and `agenthost costs`, from the spend ledger.

Amounts are summed in integer nano-dollars and shown in USD. Time buckets are UTC hours. The
figures come from `LedgerStore.report`; this module chooses the default range and shapes the JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agenthost.records import Visibility
    from agenthost.storage.ledger import LedgerStore, SpendGroup

__all__ = ["spend_report"]

_TOP_RUNS = 5
_HOURS = 24


def _usd(nanousd: int) -> dict[str, Any]:
    return {"usd": nanousd / 1e9, "nanousd": nanousd}


def _groups(groups: tuple[SpendGroup, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": group.name,
            **_usd(group.nanousd),
            "calls": group.calls,
            "input_tokens": group.input_tokens,
            "output_tokens": group.output_tokens,
        }
        for group in groups
    ]


async def spend_report(
    ledger: LedgerStore, start: datetime | None, end: datetime | None, visibility: Visibility | None = None
) -> dict[str, Any]:
    """Totals, averages, the top runs and breakdowns for [start, end) (default: today so far, UTC).

    `visibility` (e.g. `Principal.visibility()`) limits every figure to the spend the caller may
    see; None reports everything."""
    now = datetime.now(UTC)
    start = start or now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = end or now + timedelta(microseconds=1)
    data = await ledger.report(start, end, visibility, now=now, hours=_HOURS, top=_TOP_RUNS)
    total = data.total
    saved = sum(data.saved.values())
    report: dict[str, Any] = {
        "object": "cost_report",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "total": {
            **_usd(total.nanousd),
            "calls": total.calls,
            "runs": total.runs,
            "cached_calls": total.cached_calls,
            "unpriced_calls": total.unpriced_calls,
            "tokens": {
                "input": total.input_tokens,
                "output": total.output_tokens,
                "cache_read": total.cache_read_tokens,
                "cache_write": total.cache_write_tokens,
            },
        },
        "today": _usd(data.today_nanousd),
        "average_per_run": _usd(data.run_nanousd // total.runs if total.runs else 0),
        "hourly": [
            {"hour": h.hour.isoformat().replace("+00:00", "Z"), **_usd(h.nanousd), "calls": h.calls}
            for h in data.hourly
        ],
        "top_runs": [
            {"run_id": r.run_id, "agent": r.agent, "user_id": r.user_id, **_usd(r.nanousd), "calls": r.calls}
            for r in data.top_runs
        ],
        # What routing, the response cache, prompt caching and batching saved against list price
        # on each agent's primary model (negative when a choice cost more).
        "savings": {
            **_usd(saved),
            "by_reason": {reason: _usd(value) for reason, value in data.saved.items()},
            "list_price": _usd(total.nanousd + saved),
        },
    }
    for name, groups in data.breakdowns.items():
        report[f"by_{name}"] = _groups(groups)
    return report
