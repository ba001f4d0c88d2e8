"""The interface of each kind of state that has more than one backend, and the values they share.

One Protocol per kind; one module per backend (`*_memory.py`, `*_sql.py`, `*_redis.py`), opened by
`storage/backends.py`. Kinds that live only in agenthost's database (runs and events, approvals,
threads, the ledger, alerts, batches, keys, audit) are one class each, shared by SQLite and
Postgres (SQLAlchemy Core writes the same queries for both).

Every store that holds personal data can erase one subject (`Erasable.erase_subject`) and drop
what is past its retention (`Erasable.purge`); privacy only orchestrates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "BreakerDecision",
    "BreakerState",
    "BreakerStore",
    "BudgetCounter",
    "BudgetCounterState",
    "BudgetCounterStore",
    "Erasable",
    "RateCounterStore",
    "RateKind",
    "RateLimitEntry",
    "RateMode",
    "RateOutcome",
    "RateScope",
    "ResponseCacheStore",
    "SemanticCacheStore",
    "Subject",
]


@dataclass(frozen=True, slots=True)
class Subject:
    """A user whose data is erased, and the pseudonym that replaces the id where rows stay."""

    user_id: str
    pseudonym: str


class Erasable(Protocol):
    """A store holding personal data."""

    async def erase_subject(self, subject: Subject) -> dict[str, int]:
        """Delete or anonymise what belongs to `subject`; how many of what (idempotent)."""
        ...

    async def purge(self, before: datetime) -> dict[str, int]:
        """Delete or scrub what is older than `before` (retention); how many of what."""
        ...


# -- response caches --------------------------------------------------------------------------


class ResponseCacheStore(Erasable, Protocol):
    """Exact response cache entries: answers by request key, with a TTL and their tenant."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float, tenant: str | None = None) -> None:
        """Store an answer; `tenant` (the user it was made for) lets erasure find it."""
        ...


class SemanticCacheStore(Erasable, Protocol):
    """Semantic cache entries: (vector, answer) pairs per partition, newest first."""

    async def candidates(self, partition: str, limit: int) -> list[tuple[bytes, bytes]]:
        """The partition's live entries, newest first: (float32 vector bytes, stored value)."""
        ...

    async def add(
        self, partition: str, vector: bytes, value: bytes, ttl_seconds: float, tenant: str | None = None
    ) -> None: ...


# -- circuit breakers -------------------------------------------------------------------------

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerDecision:
    """Whether a call may go ahead, and if not, in how many seconds the breaker half-opens."""

    allowed: bool
    state: BreakerState
    retry_in: float = 0.0


class BreakerStore(Protocol):
    """Where breaker state lives; every operation is atomic per key."""

    async def acquire(self, key: str, cooldown: float) -> BreakerDecision:
        """Admit a call: always when closed; one probe when the cool-down has passed; else refuse."""
        ...

    async def success(self, key: str) -> None:
        """A call succeeded: close the breaker."""
        ...

    async def failure(self, key: str, threshold: int) -> BreakerState:
        """A call failed: count it; open the breaker at `threshold` (or at once from half-open)."""
        ...

    async def states(self) -> dict[str, BreakerState]:
        """Every known breaker's state (for `/ready` and metrics)."""
        ...


# -- budget counters --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetCounter:
    """One budget's counter for one period: e.g. key `user:u1:day:2026-11-21`, limit in nano-USD."""

    key: str
    limit: int | None
    expires_at: datetime

    @property
    def ttl_ms(self) -> int:
        return max(int((self.expires_at - datetime.now(UTC)).total_seconds() * 1000), 1000)


class BudgetCounterState(NamedTuple):
    """What a counter holds now."""

    spent: int
    reserved: int
    closed_at: int | None
    """The limit the counter had when it last refused a reservation in its period, if it did."""


class BudgetCounterStore(Protocol):
    """Spent and reserved amounts per budget counter, changed atomically across replicas.

    A counter that refuses a reservation is marked closed, with the limit it had, until its period
    ends, so later reads (`state`) can refuse whatever the amounts say by then."""

    async def reserve(self, counters: Sequence[BudgetCounter], amount: int) -> BudgetCounter | None:
        """Reserve `amount` on every counter, or on none: then mark the one that refused closed
        and return it."""
        ...

    async def settle(self, counters: Sequence[BudgetCounter], reserved: int, spent: int) -> dict[str, int]:
        """Release `reserved`, add `spent`; return each counter's spend after."""
        ...

    async def spent(self, counters: Sequence[BudgetCounter]) -> dict[str, tuple[int, int]]:
        """(spent, reserved) of each counter (0, 0 when it has none yet)."""
        ...

    async def state(self, counters: Sequence[BudgetCounter]) -> dict[str, BudgetCounterState]:
        """Each counter's spend, reservations and closed mark, in one read."""
        ...

    async def purge_expired(self) -> int:
        """Drop counters of ended periods (a store whose entries expire by themselves does nothing)."""
        ...


# -- rate-limit counters ----------------------------------------------------------------------

RateScope = Literal["key", "user", "ip"]
RateKind = Literal["requests", "tokens"]
RateMode = Literal["hit", "check", "record"]


@dataclass(frozen=True, slots=True)
class RateLimitEntry:
    """One limit a call is counted against: its counter's key, quota per window, and the call's cost."""

    scope: RateScope
    kind: RateKind
    key: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class RateOutcome:
    """A store's answer: its time, whether the call passed, each limit's (current, previous) counts."""

    now: float
    passed: bool
    counts: list[tuple[int, int]]


class RateCounterStore(Protocol):
    """Sliding-window counters (current and previous fixed window per key)."""

    async def apply(self, mode: RateMode, window: int, limits: Sequence[RateLimitEntry]) -> RateOutcome:
        """`hit`: count the call in every limit if all admit it; `check`: admit if every limit has
        room left, count nothing; `record`: count the cost whatever the limits say."""
        ...


def refuses(mode: RateMode, limit: RateLimitEntry, used: float) -> bool:
    """The admission rule every rate counter store applies: a request needs room for its cost, a
    token check needs any budget left, a record always passes."""
    return (mode == "hit" and used + limit.cost > limit.limit) or (mode == "check" and used >= limit.limit)
