"""Rate-limit counters in this process: each process counts on its own (the default)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

from agenthost.storage.protocols import RateLimitEntry, RateMode, RateOutcome, refuses

__all__ = ["MemoryCounters"]


class MemoryCounters:
    """Counters in this process: `key -> [window index, current count, previous count]`."""

    def __init__(self) -> None:
        self._counters: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._swept = 0

    async def apply(self, mode: RateMode, window: int, limits: Sequence[RateLimitEntry]) -> RateOutcome:
        # No await between reading and writing: the check and the increments are one step.
        with self._lock:
            now = time.time()
            index = math.floor(now / window)
            elapsed = now / window - index
            self._sweep(index)
            counts = [self._read(limit.key, index) for limit in limits]
            pairs = list(zip(limits, counts, strict=True))
            passed = not any(refuses(mode, limit, prev * (1 - elapsed) + cur) for limit, (cur, prev) in pairs)
            if mode == "record" or (mode == "hit" and passed):
                counts = [(cur + limit.cost, prev) for limit, (cur, prev) in pairs]
                for limit, (cur, prev) in zip(limits, counts, strict=True):
                    self._counters[limit.key] = [index, cur, prev]
            return RateOutcome(now, passed, counts)

    def _read(self, key: str, index: int) -> tuple[int, int]:
        entry = self._counters.get(key, [index - 2, 0, 0])
        if entry[0] == index:
            return entry[1], entry[2]
        return (0, entry[1]) if entry[0] == index - 1 else (0, 0)

    def _sweep(self, index: int) -> None:
        # Once per window, drop counters that no longer count (clients that went away).
        if index <= self._swept:
            return
        self._swept = index
        stale = [key for key, entry in self._counters.items() if entry[0] < index - 1]
        for key in stale:
            del self._counters[key]
