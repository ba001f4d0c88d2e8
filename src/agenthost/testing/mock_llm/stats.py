"""Call counters behind ``GET /_mock/stats`` and ``MockLLMServer.stats()``.

The event loop records while a test thread may read or reset, hence the (uncontended, cheap) lock.

Requests answered inside a provider batch (:mod:`.batch_wire`) are not interactive calls: they never
touch ``total_calls``, ``by_protocol``, ``by_scenario`` or ``by_conversation``. They are counted
under ``batches`` instead, a key the snapshot only has once batch activity was recorded since the last
reset (so snapshots of interactive-only tests keep their exact shape); ``batch_snapshot()`` always
returns it::

    "batches": {
        "created": 2, "requests": 5,        # batches created, requests submitted in them
        "by_protocol": {"openai": {"created": 1, "requests": 3}, "anthropic": {...}},
        "succeeded": 3, "errored": 1, "canceled": 1,   # outcomes, counted as batches end
        "by_scenario": {"weather": {"calls": 2, "faults": 0, "by_turn": {"0": 1, "1": 1}}},
    }
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterator

BatchOutcome = Literal["succeeded", "errored", "canceled"]

# Set while a batch answers its requests, so the engine's `record_*` calls land in the batch counters.
_IN_BATCH: ContextVar[bool] = ContextVar("mock_llm_in_batch", default=False)


def conversation_key(first_user_text: str) -> str:
    """Stable id of a conversation: the first 12 hex chars of sha1 of its first user message."""
    return hashlib.sha1(first_user_text.encode(), usedforsecurity=False).hexdigest()[:12]


class _ScenarioCounter:
    __slots__ = ("by_turn", "calls", "faults")

    def __init__(self) -> None:
        self.calls = 0
        self.faults = 0
        self.by_turn: dict[int, int] = {}

    def to_json(self) -> dict[str, Any]:
        by_turn = {str(turn): n for turn, n in sorted(self.by_turn.items())}
        return {"calls": self.calls, "faults": self.faults, "by_turn": by_turn}


class _BatchCounter:
    __slots__ = ("by_protocol", "by_scenario", "outcomes")

    def __init__(self) -> None:
        self.by_protocol = {
            "openai": {"created": 0, "requests": 0},
            "anthropic": {"created": 0, "requests": 0},
        }
        self.outcomes: dict[str, int] = {"succeeded": 0, "errored": 0, "canceled": 0}
        self.by_scenario: dict[str, _ScenarioCounter] = {}

    def to_json(self) -> dict[str, Any]:
        counts = self.by_protocol.values()
        return {
            "created": sum(c["created"] for c in counts),
            "requests": sum(c["requests"] for c in counts),
            "by_protocol": {protocol: dict(c) for protocol, c in self.by_protocol.items()},
            **self.outcomes,
            "by_scenario": {name: c.to_json() for name, c in self.by_scenario.items()},
        }


class _ConversationCounter:
    __slots__ = ("by_turn", "sampling", "scenario")

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.by_turn: dict[int, int] = {}
        self.sampling: dict[str, Any] = {}

    def to_json(self) -> dict[str, Any]:
        by_turn = {str(turn): n for turn, n in sorted(self.by_turn.items())}
        entry: dict[str, Any] = {"scenario": self.scenario, "by_turn": by_turn}
        if self.sampling:  # only when the latest call carried some: other snapshots keep their shape
            entry["sampling"] = dict(self.sampling)
        return entry


class MockStats:
    """Counts calls per protocol, scenario, turn and conversation, and faults per scenario."""

    def __init__(self, max_conversations: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.max_conversations = max_conversations
        self._clear()

    def _clear(self) -> None:
        self._total = 0
        self._by_protocol = {"openai": 0, "anthropic": 0}
        self._by_scenario: dict[str, _ScenarioCounter] = {}
        self._by_conversation: dict[str, _ConversationCounter] = {}
        self._untracked = 0
        self._batches: _BatchCounter | None = None

    def reset(self) -> None:
        with self._lock:
            self._clear()

    @staticmethod
    @contextmanager
    def answering_batch() -> Iterator[None]:
        """Within this block, calls and faults recorded (by the engine) count as batch requests."""
        token = _IN_BATCH.set(True)
        try:
            yield
        finally:
            _IN_BATCH.reset(token)

    @staticmethod
    def _scenario(by_scenario: dict[str, _ScenarioCounter], scenario: str) -> _ScenarioCounter:
        counter = by_scenario.get(scenario)
        if counter is None:
            counter = by_scenario[scenario] = _ScenarioCounter()
        return counter

    def _batch_counter(self) -> _BatchCounter:
        if self._batches is None:
            self._batches = _BatchCounter()
        return self._batches

    def record_batch(self, protocol: str, requests: int) -> None:
        """A batch of ``requests`` requests was created."""
        with self._lock:
            counts = self._batch_counter().by_protocol.setdefault(protocol, {"created": 0, "requests": 0})
            counts["created"] += 1
            counts["requests"] += requests

    def record_batch_outcome(self, outcome: BatchOutcome, requests: int = 1) -> None:
        """``requests`` requests of a batch ended with ``outcome``."""
        with self._lock:
            self._batch_counter().outcomes[outcome] += requests

    def record_call(
        self,
        protocol: str,
        scenario: str,
        turn: int,
        conversation: str,
        sampling: dict[str, Any] | None = None,
    ) -> None:
        """One interactive call (or a batch's request); `sampling`: the parameters it carried."""
        if _IN_BATCH.get():
            with self._lock:
                counter = self._scenario(self._batch_counter().by_scenario, scenario)
                counter.calls += 1
                counter.by_turn[turn] = counter.by_turn.get(turn, 0) + 1
            return
        with self._lock:
            self._total += 1
            self._by_protocol[protocol] = self._by_protocol.get(protocol, 0) + 1
            counter = self._scenario(self._by_scenario, scenario)
            counter.calls += 1
            counter.by_turn[turn] = counter.by_turn.get(turn, 0) + 1
            conv = self._by_conversation.get(conversation)
            if conv is None:
                if len(self._by_conversation) >= self.max_conversations:
                    self._untracked += 1
                    return
                conv = self._by_conversation[conversation] = _ConversationCounter(scenario)
            # A header can move a conversation to another scenario mid-way; report the latest.
            conv.scenario = scenario
            conv.by_turn[turn] = conv.by_turn.get(turn, 0) + 1
            conv.sampling = dict(sampling or {})

    def record_fault(self, scenario: str) -> None:
        with self._lock:
            by_scenario = self._batch_counter().by_scenario if _IN_BATCH.get() else self._by_scenario
            self._scenario(by_scenario, scenario).faults += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy; turn numbers become string keys, as they would in JSON anyway."""
        with self._lock:
            snapshot = {
                "total_calls": self._total,
                "by_protocol": dict(self._by_protocol),
                "by_scenario": {name: c.to_json() for name, c in self._by_scenario.items()},
                "by_conversation": {key: c.to_json() for key, c in self._by_conversation.items()},
                "untracked_conversations": self._untracked,
            }
            if self._batches is not None:
                snapshot["batches"] = self._batches.to_json()
            return snapshot

    def batch_snapshot(self) -> dict[str, Any]:
        """The ``batches`` counters, all zero when no batch was created since the last reset."""
        with self._lock:
            return (self._batches or _BatchCounter()).to_json()
