"""Circuit breaker state in this process (the default): each replica learns on its own."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agenthost.storage.protocols import BreakerDecision, BreakerState

__all__ = ["MemoryBreakerStore"]


@dataclass
class _Breaker:
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0


class MemoryBreakerStore:
    """Breaker state in this process (the default): each replica learns on its own."""

    def __init__(self) -> None:
        self._breakers: dict[str, _Breaker] = {}

    async def acquire(self, key: str, cooldown: float) -> BreakerDecision:
        breaker = self._breakers.setdefault(key, _Breaker())
        if breaker.state == "closed":
            return BreakerDecision(allowed=True, state="closed")
        now = time.monotonic()
        remaining = breaker.opened_at + cooldown - now
        if remaining <= 0:
            # This caller is the probe; others keep failing fast. A probe that never reported back
            # (its caller was cancelled) is replaced after another cool-down.
            breaker.state = "half_open"
            breaker.opened_at = now
            return BreakerDecision(allowed=True, state="half_open")
        return BreakerDecision(allowed=False, state=breaker.state, retry_in=remaining)

    async def success(self, key: str) -> None:
        self._breakers[key] = _Breaker()

    async def failure(self, key: str, threshold: int) -> BreakerState:
        breaker = self._breakers.setdefault(key, _Breaker())
        breaker.failures += 1
        if breaker.state == "half_open" or breaker.failures >= threshold:
            breaker.state = "open"
            breaker.opened_at = time.monotonic()
        return breaker.state

    async def states(self) -> dict[str, BreakerState]:
        return {key: breaker.state for key, breaker in self._breakers.items()}
