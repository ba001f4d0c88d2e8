"""Protocol-neutral shapes shared by the OpenAI and Anthropic wire formats and the behaviour engine.

A wire module parses its request body into a :class:`ChatRequest`; the engine turns that into a
:class:`Plan` (what to answer, how fast, which fault); the wire module renders the plan back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from agenthost.testing.mock_llm.config import FaultSpec

WireName = Literal["openai", "anthropic"]
FinishReason = Literal["stop", "tool_calls", "length", "stop_sequence"]
"""Why a reply ends; ``stop_sequence``: its text reached one of the request's stop sequences."""
ErrorKind = Literal["invalid_request", "rate_limit", "server_error", "overloaded"]

ERROR_STATUS: dict[ErrorKind, int] = {
    "invalid_request": 400,
    "rate_limit": 429,
    "server_error": 500,
    "overloaded": 529,
}

StreamEvent = tuple[bytes, bool]
"""One encoded SSE event and whether it carries an output token (paced by ``tokens_per_second``)."""


class MockRequestError(Exception):
    """The request cannot be served (bad body, unknown scenario or fault); answered with a 400."""


@dataclass(slots=True)
class ChatRequest:
    """What the engine needs to know about one chat request, whatever the protocol."""

    wire: WireName
    model: str
    stream: bool
    prompt_tokens: int
    assistant_turns: int
    first_user: str
    last_user: str
    last_tool_result: str
    tools: str = ""
    """Names of the tools offered in the request, sorted and comma-separated (`{tools}` in scripts)."""
    max_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    """OpenAI ``stop`` / Anthropic ``stop_sequences``: the reply's text ends before the first one."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """The request's sampling parameters as sent (`temperature`, `top_p`, `top_k`, `seed`, and
    its stop sequences as `stop_sequences`); the latest of a conversation shows in its stats."""
    include_usage: bool = False
    cache_write_tokens: int = 0
    """Prompt-cache tokens written (Anthropic `cache_control`, first time a prefix is seen)."""
    cache_read_tokens: int = 0
    """Prompt-cache tokens read (the same prefix again)."""
    scenario_header: str | None = None
    fault_header: str | None = None
    latency_ms_header: float | None = None
    tokens_per_second_header: float | None = None


@dataclass(slots=True, frozen=True)
class ToolCallPlan:
    name: str
    arguments: dict[str, Any]
    arguments_json: str
    arguments_tokens: tuple[str, ...]


@dataclass(slots=True)
class Plan:
    """The engine's answer to a request: content (already truncated), pacing and fault."""

    scenario: str
    turn: int
    conversation: str
    text_tokens: list[str]
    tool_calls: list[ToolCallPlan]
    finish: FinishReason
    latency_s: float
    tokens_per_second: float | None
    fault: FaultSpec | None = None
    stop_sequence: str | None = None
    """The stop sequence the text was cut at (``finish == "stop_sequence"``)."""
    text: str = field(init=False)
    completion_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.text = "".join(self.text_tokens)
        self.completion_tokens = len(self.text_tokens) + sum(
            len(call.arguments_tokens) for call in self.tool_calls
        )


class Wire(Protocol):
    """A wire format: request parsing, response rendering, SSE events and error bodies."""

    name: WireName

    def parse(self, body: dict[str, Any]) -> ChatRequest: ...

    def render(self, request: ChatRequest, plan: Plan) -> bytes: ...

    def stream_events(self, request: ChatRequest, plan: Plan) -> list[StreamEvent]: ...

    def malformed_event(self) -> bytes: ...

    def error_body(self, kind: ErrorKind, message: str) -> bytes: ...


def text_of(content: Any) -> str:
    """Flatten message content (a string or a list of content parts/blocks) to its text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def stop_sequences(value: Any, key: str) -> tuple[str, ...]:
    """A request's stop sequences (a string or a list of strings); a 400 for anything else."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item)
    raise MockRequestError(f"`{key}` must be a string or a list of strings")


_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "seed")


def sampling_of(body: dict[str, Any], stops: tuple[str, ...]) -> dict[str, Any]:
    """The sampling parameters a request body carries (absent and null ones left out)."""
    sampling = {key: body[key] for key in _SAMPLING_KEYS if body.get(key) is not None}
    if stops:
        sampling["stop_sequences"] = list(stops)
    return sampling


def optional_int(body: dict[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` holding an int in ``body``; a 400 if one holds something else."""
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MockRequestError(f"`{key}` must be a non-negative integer")
        return value
    return None
