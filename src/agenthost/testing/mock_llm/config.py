"""Configuration of the mock LLM server: knobs, fault injection and scripted scenarios.

Everything here is a pydantic model validated once, at start-up or when knobs change at runtime,
so the request path only reads plain attributes.

A script is a YAML file (or the equivalent dict passed as ``MockLLMConfig(scenarios=...)``)::

    latency_ms: 0               # optional server-wide knobs, same names as MockLLMConfig fields
    tokens_per_second: null
    fault: null                 # or {kind: rate_limit, first_n: 2}
    batch_delay_seconds: 0      # how long provider batches stay in progress
    scenarios:
      weather:
        match: "(?i)weather"    # re.search against the FIRST user message
        latency_ms: 10          # optional per-scenario knobs
        repeat_last: false
        turns:                  # turn index = number of assistant messages in the request
          - tool_calls: [{name: get_weather, arguments: {city: Paris}}]
          - text: "It is {last_tool_result} ({last_user}, turn {turn})."
          - fault: {kind: rate_limit, retry_after: 2}

Load it with :func:`load_script`::

    config = load_script("tests/scripts/weather.yaml")

``agenthost mock-llm --script S.yaml`` serves it; an option given on the command line
(``--latency-ms``, ``--tokens-per-second``, ``--fault``, ``--fault-first-n``) overrides the
script's knob, one left out keeps it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

FaultKind = Literal[
    "rate_limit", "server_error", "overloaded", "timeout", "malformed", "stream_cut", "bad_request"
]
FAULT_KINDS: frozenset[str] = frozenset(
    ("rate_limit", "server_error", "overloaded", "timeout", "malformed", "stream_cut", "bad_request")
)


def _kind_shorthand(value: Any) -> Any:
    # `fault: rate_limit` reads better in YAML than `fault: {kind: rate_limit}`.
    return {"kind": value} if isinstance(value, str) else value


class FaultSpec(BaseModel):
    """One fault to inject: ``FaultSpec(kind="rate_limit", retry_after=2)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    retry_after: float = Field(default=1.0, ge=0)
    """Seconds sent in the ``Retry-After`` header of a ``rate_limit`` fault."""
    hang_seconds: float = Field(default=30.0, ge=0)
    """How long a ``timeout`` fault stalls before answering normally."""


class FaultPolicy(FaultSpec):
    """A server-wide fault and which calls it hits.

    With none of ``first_n``, ``every_n`` and ``probability`` set, every call fails; with several set,
    a call fails when any of them says so. Calls are numbered from 1 since start, the last reset or
    the last time the fault was configured::

        FaultPolicy(kind="server_error", first_n=2)  # calls 1 and 2 fail, the rest succeed
    """

    first_n: int | None = Field(default=None, ge=0)
    every_n: int | None = Field(default=None, ge=1)
    probability: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0


class ToolCallSpec(BaseModel):
    """A tool call the model makes: ``{name: get_weather, arguments: {city: Paris}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Turn(BaseModel):
    """One scripted assistant turn: text, tool calls (with optional leading text), or a fault.

    ``text`` may use the placeholders ``{last_user}``, ``{last_tool_result}``, ``{turn}`` and
    ``{tools}`` (the offered tool names, sorted, comma-separated); string values inside tool-call
    arguments may too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    fault: FaultSpec | None = None

    _fault_shorthand = field_validator("fault", mode="before")(_kind_shorthand)

    @model_validator(mode="after")
    def _one_kind_of_turn(self) -> Turn:
        has_content = self.text is not None or bool(self.tool_calls)
        if self.fault is not None and has_content:
            raise ValueError("a turn is either a fault or text/tool_calls, not both")
        if self.fault is None and not has_content:
            raise ValueError("a turn needs `text`, `tool_calls` or `fault`")
        return self


class Scenario(BaseModel):
    """A named conversation script, selected by header, model name or ``match`` regex.

    Example::

        Scenario(match="weather", turns=[Turn(text="Sunny, asked: {last_user}")], repeat_last=True)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str | None = None
    """Regex searched (``re.search``) in the first user message of the request."""
    latency_ms: float | None = Field(default=None, ge=0)
    tokens_per_second: float | None = Field(default=None, gt=0)
    repeat_last: bool = False
    """Past the last turn, repeat it instead of falling back to the default reply."""
    turns: tuple[Turn, ...] = ()

    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("match")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    def model_post_init(self, _context: Any, /) -> None:
        if self.match is not None:
            self._pattern = re.compile(self.match)

    def matches(self, first_user_text: str) -> bool:
        """Whether this scenario's ``match`` regex is found in ``first_user_text``."""
        return self._pattern is not None and self._pattern.search(first_user_text) is not None


class MockLLMConfig(BaseModel):
    """Everything the mock server does; every field can also be changed at runtime.

    Example::

        MockLLMConfig(
            latency_ms=20,
            tokens_per_second=200,
            fault=FaultPolicy(kind="rate_limit", first_n=1),
            scenarios={"hello": Scenario(match="^hi", turns=[Turn(text="Hello!")])},
        )

    A scenario named ``default`` replaces the built-in reply (``Mock reply to: <last user text>``)
    for requests no other scenario claims.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0)
    """Delay before the first byte of every response."""
    tokens_per_second: float | None = Field(default=None, gt=0)
    """Output pacing; ``None`` sends everything at once."""
    fault: FaultPolicy | None = None
    scenarios: dict[str, Scenario] = Field(default_factory=dict)
    max_tracked_conversations: int = Field(default=10_000, ge=0)
    """Bounds the memory of ``by_conversation`` stats when a benchmark sends many distinct prompts."""
    batch_delay_seconds: float = Field(default=0.0, ge=0)
    """How long a provider batch (:mod:`.batch_wire`) stays in progress; 0 ends it on its first poll."""

    _fault_shorthand = field_validator("fault", mode="before")(_kind_shorthand)


def load_script(path: str | Path) -> MockLLMConfig:
    """Load a YAML script (scenarios plus optional server-wide knobs) into a :class:`MockLLMConfig`.

    Example::

        with MockLLMServer(load_script("scripts/weather.yaml")) as server: ...
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    # An empty file is an empty script; anything but a mapping fails validation with a clear message.
    return MockLLMConfig.model_validate({} if data is None else data)
