"""Run events: what a run emits, the in-process bus that delivers them live, and their persistence.

Every event of a run has a sequence number that the run workflow assigns deterministically, so a
run replayed after a crash emits the same events with the same numbers: persistence ignores the
duplicates and readers skip numbers they have already sent. That is what makes `Last-Event-ID`
resumption exact.

Events reach readers two ways: live, through the `EventBus` of the process executing the run, and
from the database, where the `EventWriter` stores them in batches (every
`durability.events_flush_interval` seconds, and always together with the run's final state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from agenthost.records import EventType
from agenthost.storage.runs import RunStore

__all__ = ["EventBus", "EventWriter", "RunEvent", "Subscription"]

_log = structlog.get_logger(__name__)


@dataclass(slots=True)
class RunEvent:
    """One event of a run."""

    run_id: str
    seq: int
    type: EventType
    data: dict[str, Any]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def terminal(self) -> bool:
        return self.type.terminal

    def payload(self) -> dict[str, Any]:
        """The JSON object sent to clients."""
        return {"run_id": self.run_id, "seq": self.seq, "type": self.type, **self.data}

    def sse(self) -> dict[str, str]:
        """Fields of the SSE message (`id`, `event`, `data`)."""
        return {"id": str(self.seq), "event": self.type, "data": json.dumps(self.payload(), default=str)}

    def row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "data": self.data,
            "created_at": self.created_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunEvent:
        return cls(row["run_id"], row["seq"], EventType(row["type"]), row["data"], row["created_at"])


class Subscription:
    """A live feed of one run's events; iterate it, and close it when done."""

    # A reader this far behind is dropped from live delivery and catches up from the database,
    # so one slow client cannot make the server buffer without bound.
    MAX_BACKLOG: Final = 10_000

    def __init__(self, bus: EventBus, run_id: str) -> None:
        self._bus = bus
        self.run_id = run_id
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self.lagging = False

    def deliver(self, event: RunEvent) -> None:
        if self.lagging:
            return
        if self.queue.qsize() >= self.MAX_BACKLOG:
            self.lagging = True
            return
        self.queue.put_nowait(event)

    async def get(self, wait_seconds: float | None) -> RunEvent | None:
        """The next event, or None after `wait_seconds` without one (or when lagging)."""
        if self.lagging:
            self.queue = asyncio.Queue()
            self.lagging = False
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), wait_seconds)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """In-process fan-out of run events to live subscribers (SSE streams, waiting requests).

    It also keeps the full event history of each run executing in this process until the run's
    final state is written, so a reader that joins mid-run catches up from memory without racing
    the batched database writes.
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._history: dict[str, list[RunEvent]] = {}

    def open(self, run_id: str) -> None:
        """A run starts executing here (again, after a recovery: its history restarts)."""
        self._history[run_id] = []

    def close(self, run_id: str) -> None:
        """The run's events are all in the database; readers catch up from there now."""
        self._history.pop(run_id, None)

    def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        """Events after `after_seq` of a run executing here, or None if it is not."""
        events = self._history.get(run_id)
        if events is None:
            return None
        return [event for event in events if event.seq > after_seq]

    def subscribe(self, run_id: str) -> Subscription:
        subscription = Subscription(self, run_id)
        self._subscribers[run_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.run_id]

    def publish(self, event: RunEvent) -> None:
        history = self._history.get(event.run_id)
        if history is not None:
            if history and history[-1].seq >= event.seq:
                # A replay re-emits from an earlier number; keep history a strictly increasing prefix.
                del history[next(i for i, e in enumerate(history) if e.seq >= event.seq) :]
            history.append(event)
        for subscription in tuple(self._subscribers.get(event.run_id, ())):
            subscription.deliver(event)


class EventWriter:
    """Persists events off the run's critical path, in batches, and with each run's final state."""

    def __init__(self, store: RunStore, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._pending: defaultdict[str, list[RunEvent]] = defaultdict(list)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, event: RunEvent) -> None:
        self._pending[event.run_id].append(event)
        self._wake.set()

    def take(self, run_id: str) -> list[RunEvent]:
        """Remove and return the run's unwritten events (to write them with its final state)."""
        return self._pending.pop(run_id, [])

    @property
    def lock(self) -> asyncio.Lock:
        """Held while writing; a run's final write takes it so earlier batches land first."""
        return self._lock

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="agenthost-event-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write every pending event now."""
        async with self._lock:
            if not self._pending:
                return
            taken, self._pending = self._pending, defaultdict(list)
            self._wake.clear()
            try:
                await self._store.append_events(
                    [event.row() for events in taken.values() for event in events]
                )
            except BaseException:
                for run_id, events in taken.items():
                    self._pending[run_id][:0] = events
                raise

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                # The events stay reproducible (a replay regenerates them); log and keep going.
                _log.exception("event_flush_failed")
