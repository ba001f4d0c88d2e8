"""Turns a :class:`ChatRequest` into a :class:`Plan`: scenario, turn, reply content, pacing, fault.

Scenario selection, first match wins:
  1. the ``X-Mock-Scenario`` header (an unknown name is a 400, to surface typos);
  2. the request's ``model`` equals a scenario name;
  3. the first scenario whose ``match`` regex is found in the first user message;
  4. the scenario named ``default`` if the config has one, else the built-in default reply
     ``Mock reply to: <last user text>``. Both are counted as scenario ``default``.

The turn is the number of assistant messages in the request, so the server keeps no conversation
state and identical requests always get identical answers.

Fault selection, first match wins: ``X-Mock-Fault`` header, a ``[[mock:fault=KIND]]`` directive in
the last user message, the turn's ``fault``, then the config's :class:`FaultPolicy`.

Latency and pacing, first set wins: ``X-Mock-Latency-Ms`` / ``X-Mock-Tokens-Per-Second`` headers,
the scenario's knobs, the config's (possibly runtime-changed) knobs.

How a reply ends, as a real model's would:
  - stop sequences (OpenAI ``stop``, Anthropic ``stop_sequences``): the text ends just before the
    first of them it contains (whitespace that ends it is dropped with the tokenising), with no
    tool calls after it; OpenAI says ``finish_reason: stop``,
    Anthropic ``stop_reason: stop_sequence`` with ``stop_sequence`` naming it;
  - a token limit (``max_tokens`` / ``max_completion_tokens``): at most that many output tokens
    (a tool call that does not fit whole is dropped); OpenAI says ``length``, Anthropic
    ``max_tokens``;
  - otherwise ``stop`` / ``end_turn``, or ``tool_calls`` / ``tool_use`` when the turn calls tools.
"""

from __future__ import annotations

import json
import random
import re
import threading
from typing import Any

from agenthost.testing.mock_llm.config import FAULT_KINDS, FaultSpec, MockLLMConfig, Scenario, Turn
from agenthost.testing.mock_llm.exchange import (
    ChatRequest,
    FinishReason,
    MockRequestError,
    Plan,
    ToolCallPlan,
)
from agenthost.testing.mock_llm.stats import MockStats, conversation_key
from agenthost.testing.mock_llm.tokens import tokenize

DEFAULT_SCENARIO = "default"
DEFAULT_REPLY_PREFIX = "Mock reply to: "
_ECHO_LIMIT = 200
_DIRECTIVE_RE = re.compile(r"\[\[mock:fault=([a-z_]+)\]\]")
_PLACEHOLDER_RE = re.compile(r"\{(last_user|last_tool_result|turn|tools)\}")
# Header and directive faults carry only a kind; validating a model per request is wasted work.
_FAULTS_BY_KIND: dict[str, FaultSpec] = {
    kind: FaultSpec.model_validate({"kind": kind}) for kind in FAULT_KINDS
}


def default_reply(last_user: str) -> str:
    """The reply when no scenario applies: ``Mock reply to: `` plus the first 200 chars echoed."""
    return DEFAULT_REPLY_PREFIX + last_user[:_ECHO_LIMIT]


def _fault_for_kind(kind: str, source: str) -> FaultSpec:
    fault = _FAULTS_BY_KIND.get(kind)
    if fault is None:
        raise MockRequestError(f"unknown fault kind {kind!r} in {source}; known: {sorted(FAULT_KINDS)}")
    return fault


class MockEngine:
    """The mock's brain: current config, stats and the global fault counter. One per app."""

    def __init__(self, config: MockLLMConfig) -> None:
        self.initial_config = config
        self.stats = MockStats(config.max_tracked_conversations)
        self._lock = threading.Lock()
        self._config = config
        self._fault_calls = 0
        self._rng = random.Random(config.fault.seed if config.fault else 0)

    @property
    def config(self) -> MockLLMConfig:
        return self._config

    def configure(self, **knobs: Any) -> MockLLMConfig:
        """Override config fields (validated); a new ``fault`` restarts its call numbering."""
        # Validating only the given fields keeps unchanged scenarios (and their compiled regexes) as is.
        given = MockLLMConfig.model_validate(knobs)
        with self._lock:
            new = self._config.model_copy(
                update={name: getattr(given, name) for name in given.model_fields_set}
            )
            self._config = new
            self.stats.max_conversations = new.max_tracked_conversations
            if "fault" in knobs:
                self._restart_fault_counter()
        return new

    def reset(self, *, knobs: bool = False) -> None:
        """Clear stats and fault numbering; with ``knobs`` also restore the start-up config."""
        with self._lock:
            if knobs:
                self._config = self.initial_config
                self.stats.max_conversations = self.initial_config.max_tracked_conversations
            self._restart_fault_counter()
        self.stats.reset()

    def _restart_fault_counter(self) -> None:
        self._fault_calls = 0
        fault = self._config.fault
        self._rng = random.Random(fault.seed if fault else 0)

    def plan(self, request: ChatRequest) -> Plan:
        config = self._config
        name, scenario = self._select_scenario(config, request)
        turn_index = request.assistant_turns
        conversation = conversation_key(request.first_user)
        self.stats.record_call(request.wire, name, turn_index, conversation, request.sampling)
        turn = _resolve_turn(scenario, turn_index) if scenario is not None else None
        fault = self._select_fault(config, request, turn)
        if fault is not None:
            self.stats.record_fault(name)

        text, tool_calls = self._content(request, turn, turn_index)
        text_tokens = tokenize(text)
        finish: FinishReason = "tool_calls" if tool_calls else "stop"
        stopped_at = _stopped_at(text, request.stop_sequences)
        if stopped_at is not None:
            # The model would have stopped there: the rest of the text and any tool calls never come.
            text, tool_calls, finish = text[: text.index(stopped_at)], [], "stop_sequence"
            text_tokens = tokenize(text)
        limit = request.max_tokens
        if limit is not None:
            text_tokens, tool_calls, truncated = _truncate(text_tokens, tool_calls, limit)
            if truncated:
                finish = "length"

        latency_ms = _first_set(
            request.latency_ms_header, scenario.latency_ms if scenario else None, config.latency_ms
        )
        tps = _first_set(
            request.tokens_per_second_header,
            scenario.tokens_per_second if scenario else None,
            config.tokens_per_second,
        )
        return Plan(
            scenario=name,
            turn=turn_index,
            conversation=conversation,
            text_tokens=text_tokens,
            tool_calls=tool_calls,
            finish=finish,
            latency_s=(latency_ms or 0.0) / 1000,
            tokens_per_second=tps,
            fault=fault,
            stop_sequence=stopped_at if finish == "stop_sequence" else None,
        )

    @staticmethod
    def _select_scenario(config: MockLLMConfig, request: ChatRequest) -> tuple[str, Scenario | None]:
        scenarios = config.scenarios
        if request.scenario_header is not None:
            if request.scenario_header == DEFAULT_SCENARIO:
                return DEFAULT_SCENARIO, scenarios.get(DEFAULT_SCENARIO)
            scenario = scenarios.get(request.scenario_header)
            if scenario is None:
                raise MockRequestError(f"unknown scenario {request.scenario_header!r} in X-Mock-Scenario")
            return request.scenario_header, scenario
        scenario = scenarios.get(request.model)
        if scenario is not None:
            return request.model, scenario
        for name, candidate in scenarios.items():
            if candidate.matches(request.first_user):
                return name, candidate
        return DEFAULT_SCENARIO, scenarios.get(DEFAULT_SCENARIO)

    def _select_fault(
        self, config: MockLLMConfig, request: ChatRequest, turn: Turn | None
    ) -> FaultSpec | None:
        # Every call advances the global numbering, so `every_n` means every Nth call whatever else applied.
        policy = config.fault
        policy_hit = False
        if policy is not None:
            with self._lock:
                self._fault_calls += 1
                number = self._fault_calls
                checks: list[bool] = []
                if policy.first_n is not None:
                    checks.append(number <= policy.first_n)
                if policy.every_n is not None:
                    checks.append(number % policy.every_n == 0)
                if policy.probability is not None:
                    checks.append(self._rng.random() < policy.probability)
                policy_hit = any(checks) if checks else True
        if request.fault_header is not None:
            return _fault_for_kind(request.fault_header.strip(), "X-Mock-Fault")
        directive = _DIRECTIVE_RE.search(request.last_user)
        if directive is not None:
            return _fault_for_kind(directive.group(1), "a [[mock:fault=...]] directive")
        if turn is not None and turn.fault is not None:
            return turn.fault
        return policy if policy_hit else None

    @staticmethod
    def _content(request: ChatRequest, turn: Turn | None, turn_index: int) -> tuple[str, list[ToolCallPlan]]:
        # A fault turn that still answers (a `timeout` stalls, then replies) uses the default reply.
        if turn is None or turn.fault is not None:
            return default_reply(request.last_user), []
        values = {
            "last_user": request.last_user,
            "last_tool_result": request.last_tool_result,
            "turn": str(turn_index),
            "tools": request.tools,
        }
        text = _fill(turn.text, values) if turn.text else ""
        calls: list[ToolCallPlan] = []
        for spec in turn.tool_calls:
            arguments = (
                _fill_value(spec.arguments, values) if _has_placeholder(spec.arguments) else spec.arguments
            )
            arguments_json = json.dumps(arguments)
            calls.append(ToolCallPlan(spec.name, arguments, arguments_json, tuple(tokenize(arguments_json))))
        return text, calls


def _resolve_turn(scenario: Scenario, turn_index: int) -> Turn | None:
    turns = scenario.turns
    if turn_index < len(turns):
        return turns[turn_index]
    if scenario.repeat_last and turns:
        return turns[-1]
    return None


def _stopped_at(text: str, sequences: tuple[str, ...]) -> str | None:
    """The stop sequence that occurs first in ``text`` (None if none does)."""
    found = [(text.index(s), s) for s in sequences if s in text]
    return min(found)[1] if found else None


def _truncate(
    text_tokens: list[str], tool_calls: list[ToolCallPlan], limit: int
) -> tuple[list[str], list[ToolCallPlan], bool]:
    """Keep at most ``limit`` output tokens; a tool call that does not fit whole is dropped.

    Cutting a call's JSON would hand the client arguments it cannot parse, which no test wants.
    """
    if len(text_tokens) > limit:
        return text_tokens[:limit], [], True
    budget = limit - len(text_tokens)
    kept: list[ToolCallPlan] = []
    for call in tool_calls:
        if len(call.arguments_tokens) > budget:
            return text_tokens, kept, True
        budget -= len(call.arguments_tokens)
        kept.append(call)
    return text_tokens, kept, False


def _first_set(*values: float | None) -> float | None:
    for value in values:
        if value is not None:
            return value
    return None


def _fill(template: str, values: dict[str, str]) -> str:
    if "{" not in template:
        return template
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def _has_placeholder(value: Any) -> bool:
    # Most scripted arguments are literal; skip rebuilding them on every request.
    if isinstance(value, str):
        return "{" in value
    if isinstance(value, dict):
        return any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholder(v) for v in value)
    return False


def _fill_value(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, values)
    if isinstance(value, dict):
        return {k: _fill_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_value(v, values) for v in value]
    return value
