"""Budgets: spend per day and per month for everything together, each user and each agent.

Before a model call, its estimated cost is reserved on every budget it counts against, all at
once or not at all (a `BudgetCounterStore`: `storage/budgets_sql.py`, or `storage/budgets_redis.py`
with `[redis] url`); when the call returns, the reservation becomes the real
cost before the call's step (or completion) ends. So concurrent calls, on any number of
replicas, overshoot a budget by at most the difference between estimates and real costs of the
calls in flight. A run asked for while a budget is already spent, or after it refused a call in
the current period (until its limit is raised), is refused at once (HTTP 402, `budget_exceeded`).

After each call, budgets that crossed an alert threshold (`[alerts] budget_thresholds`) fire an
alert once per budget and period. Total spend in the current hour (from the ledger, read after
each run and completion) over `[alerts] hourly_spend_usd` alerts once per hour.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from agenthost.config.costs import BudgetLimit
from agenthost.errors import BudgetExceededError, BudgetUnavailableError
from agenthost.records import Payer
from agenthost.storage.protocols import BudgetCounter, BudgetCounterStore

if TYPE_CHECKING:
    from agenthost.costs.alerts import Alerts
    from agenthost.settings import Settings
    from agenthost.storage.ledger import LedgerStore

__all__ = ["Budgets", "Reservation"]

_log = structlog.get_logger(__name__)
_NANO = 1_000_000_000
_HOURLY_READ_SECONDS = 5.0


@dataclass(frozen=True)
class Reservation:
    """What one call reserved, on which counters (none when unbudgeted)."""

    counters: tuple[BudgetCounter, ...]
    amount: int


def _periods(now: datetime) -> dict[str, tuple[str, datetime]]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {
        "daily": (f"day:{day:%Y-%m-%d}", day + timedelta(days=2)),
        "monthly": (f"month:{month:%Y-%m}", next_month + timedelta(days=1)),
    }


def _usd(nanousd: int) -> str:
    return f"${nanousd / _NANO:,.2f}"


class Budgets:
    """Reserves, settles and checks spend against `[budgets]`, and fires spend alerts."""

    def __init__(self, settings: Settings, store: BudgetCounterStore, alerts: Alerts) -> None:
        self.settings = settings.budgets
        self.alert_settings = settings.alerts
        self.store = store
        self.alerts = alerts
        self._settling: set[asyncio.Task[None]] = set()
        self._hourly_read = -_HOURLY_READ_SECONDS
        self._hourly_fired: datetime | None = None

    def counters(
        self, agent: str | None, user: str | None, now: datetime | None = None, payer: Payer | None = None
    ) -> list[BudgetCounter]:
        """The counters a call by `user` through `agent` (with `payer`'s key and team) counts
        against (limited ones, and the ones only)."""
        now = now or datetime.now(UTC)
        scopes: list[tuple[str, BudgetLimit]] = [("total", self.settings.total)]
        if user is not None:
            scopes.append((f"user:{user}", self.settings.users.get(user, self.settings.per_user)))
        if agent is not None:
            scopes.append((f"agent:{agent}", self.settings.agents.get(agent, self.settings.per_agent)))
        if payer is not None and payer.key_id is not None:
            own = BudgetLimit.model_validate(payer.key_budget) if payer.key_budget else None
            scopes.append((f"key:{payer.key_id}", own or self.settings.per_key))
        if payer is not None and payer.team is not None:
            scopes.append((f"team:{payer.team}", self.settings.teams.get(payer.team, self.settings.per_team)))
        found = []
        for scope, limit in scopes:
            for period, (suffix, expires) in _periods(now).items():
                usd = limit.daily_usd if period == "daily" else limit.monthly_usd
                if usd is not None:
                    found.append(BudgetCounter(f"{scope}:{suffix}", round(usd * _NANO), expires))
        return found

    def _store_failed(self, exc: Exception) -> None:
        if self.settings.on_store_error == "closed":
            raise BudgetUnavailableError(f"budgets cannot be checked: {type(exc).__name__}: {exc}") from exc
        _log.warning("budget_store_unavailable", error=f"{type(exc).__name__}: {exc}"[:300], mode="open")

    async def purge_expired(self) -> None:
        """Drop counters of ended periods (database store; Redis expires them itself)."""
        await self.store.purge_expired()

    async def ensure_open(
        self, agent: str | None, user: str | None, amount: int = 0, payer: Payer | None = None
    ) -> None:
        """Refuse at once (402) when a budget of this agent, user, key or team has less than
        `amount` left (the estimate of a first call), or has refused a call in this period.

        The second rule makes the answer independent of timing: a call refused while an earlier
        call's reservation was still unsettled, or with a larger estimate than `amount`, would
        otherwise let a new run through that is then refused in its first call."""
        counters = [c for c in self.counters(agent, user, payer=payer) if c.limit is not None]
        if not counters:
            return
        try:
            states = await self.store.state(counters)
        except Exception as exc:
            self._store_failed(exc)
            return
        for counter in counters:
            state = states[counter.key]
            limit = counter.limit or 0
            closed = state.closed_at is not None and state.closed_at >= limit
            if closed or state.spent + state.reserved + max(amount, 1) > limit:
                await self._refused(counter)

    async def reserve(
        self, agent: str | None, user: str | None, amount: int, payer: Payer | None = None
    ) -> Reservation:
        """Reserve a call's estimated cost on all its budgets, or raise `BudgetExceededError`.

        With no budget configured for the call, nothing is read or written."""
        counters = self.counters(agent, user, payer=payer)
        limited = [c for c in counters if c.limit is not None]
        if limited:
            try:
                refused = await self.store.reserve(limited, amount)
            except Exception as exc:
                self._store_failed(exc)
                return Reservation(tuple(c for c in counters if c.limit is None), 0)
            if refused is not None:
                await self._refused(refused)
        return Reservation(tuple(counters), amount)

    async def _refused(self, counter: BudgetCounter) -> None:
        """A budget refused a call: it is used up (alerting at 100 % if that is a threshold)."""
        if any(threshold >= 1 for threshold in self.alert_settings.budget_thresholds):
            try:
                spent, _ = (await self.store.spent([counter]))[counter.key]
            except Exception:
                spent = counter.limit or 0
            await self._alert(counter, max(spent, counter.limit or 0))
        raise _exhausted(counter)

    async def settle(self, reservation: Reservation, spent: int) -> None:
        """Charge the real cost (a counter's reservation never goes below 0) before returning; the
        alerts it crossed fire off the caller's path (in a task).

        Awaited, not left to a task: until it lands, the counters still hold the call's estimate
        instead of its cost, and the next run, even of the same caller after this one answered,
        would be refused at the door (or in its first call) by a budget that is not spent."""
        if not reservation.counters:
            return
        try:
            totals = await self.store.settle(reservation.counters, reservation.amount, spent)
        except Exception as exc:
            _log.warning("budget_settle_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return
        task = asyncio.get_running_loop().create_task(self._alerts(reservation, totals))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self, grace_seconds: float) -> None:
        """Let alerts of settlements in flight fire (at shutdown)."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=grace_seconds)

    async def _alerts(self, reservation: Reservation, totals: dict[str, int]) -> None:
        for counter in reservation.counters:
            await self._alert(counter, totals.get(counter.key, 0))

    async def check_hourly_spend(self, ledger: LedgerStore) -> None:
        """Alert (once per hour) when all spend in the current UTC hour passes the hourly limit."""
        hourly = self.alert_settings.hourly_spend_usd
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        # The sum reads the hour's ledger rows: at most one read per few seconds per process, and
        # none once this hour's alert has fired.
        started = time.monotonic()
        if not hourly or hour == self._hourly_fired or started - self._hourly_read < _HOURLY_READ_SECONDS:
            return
        self._hourly_read = started
        spent = await ledger.total_since(hour)
        if spent > hourly * _NANO:
            label = f"{hour:%Y-%m-%dT%H}"
            message = f"spend in the hour {label} UTC is {_usd(spent)}, over {_usd(round(hourly * _NANO))}"
            await self.alerts.fire(f"hourly:{label}", "hourly_spend", message, {"spent_nanousd": spent})
            self._hourly_fired = hour

    async def _alert(self, counter: BudgetCounter, spent: int) -> None:
        if counter.limit is None:
            return
        for threshold in sorted(self.alert_settings.budget_thresholds):
            if spent >= threshold * counter.limit:
                percent = round(threshold * 100)
                message = (
                    f"budget {counter.key} is at {_usd(spent)} of {_usd(counter.limit)} ({percent} % reached)"
                )
                data = {"budget": counter.key, "spent_nanousd": spent, "limit_nanousd": counter.limit}
                await self.alerts.fire(f"budget:{counter.key}:{percent}", "budget", message, data)


def _exhausted(counter: BudgetCounter) -> BudgetExceededError:
    limit = counter.limit or 0
    return BudgetExceededError(
        f"budget {counter.key} ({_usd(limit)}) is spent", details={"limit": f"budget:{counter.key}"}
    )
