"""Call counters behind ``GET /_mock/stats`` and ``MockLLMServer.stats()``.

The event loop records while a test thread may read or reset, hence the (uncontended, cheap) lock.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any


def conversation_key(first_user_text: str) -> str:
    """Stable id of a conversation: the first 12 hex chars of sha1 of its first user message."""
    return hashlib.sha1(first_user_text.encode(), usedforsecurity=False).hexdigest()[:12]


class _ScenarioCounter:
    __slots__ = ("by_turn", "calls", "faults")

    def __init__(self) -> None:
        self.calls = 0
        self.faults = 0
        self.by_turn: dict[int, int] = {}


class _ConversationCounter:
    __slots__ = ("by_turn", "scenario")

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.by_turn: dict[int, int] = {}


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

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def record_call(self, protocol: str, scenario: str, turn: int, conversation: str) -> None:
        with self._lock:
            self._total += 1
            self._by_protocol[protocol] = self._by_protocol.get(protocol, 0) + 1
            counter = self._by_scenario.get(scenario)
            if counter is None:
                counter = self._by_scenario[scenario] = _ScenarioCounter()
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

    def record_fault(self, scenario: str) -> None:
        with self._lock:
            counter = self._by_scenario.get(scenario)
            if counter is None:
                counter = self._by_scenario[scenario] = _ScenarioCounter()
            counter.faults += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy; turn numbers become string keys, as they would in JSON anyway."""
        with self._lock:
            return {
                "total_calls": self._total,
                "by_protocol": dict(self._by_protocol),
                "by_scenario": {
                    name: {
                        "calls": c.calls,
                        "faults": c.faults,
                        "by_turn": {str(turn): n for turn, n in sorted(c.by_turn.items())},
                    }
                    for name, c in self._by_scenario.items()
                },
                "by_conversation": {
                    key: {
                        "scenario": c.scenario,
                        "by_turn": {str(turn): n for turn, n in sorted(c.by_turn.items())},
                    }
                    for key, c in self._by_conversation.items()
                },
                "untracked_conversations": self._untracked,
            }
