"""What the three front doors share below the server: their outcome, their stream, their rules.

`/v1/chat/completions`, `/v1/responses` and `/v1/messages` are three wire formats over one door
(`server/door.py`). Each translates its request into pydantic-ai messages and settings, and
renders the door's neutral results defined here:

- `Outcome`: a finished answer (text, tool calls, a truthful finish reason, tokens, and the
  `agenthost` extras built by `extras`, the one builder, so streamed and non-streamed answers
  carry the same object);
- `DoorEvent`: a stream, `TextDelta` / `ToolCallStarted` / `ToolCallDelta`, then `Finished`
  (with the outcome) or `Failed`;
- `Param` tables and `refuse_unsupported`: each documented parameter is honoured or refused
  with 400 `unsupported_parameter` naming it, separately for agents and gateway models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_ai import messages as _messages

from agenthost.errors import UnsupportedParameterError
from agenthost.records import Cost, CostStatus

__all__ = [
    "AGENT_ONLY",
    "BOTH",
    "GATEWAY_ONLY",
    "DoorCost",
    "DoorEvent",
    "DoorExtras",
    "Failed",
    "FinishReason",
    "Finished",
    "Outcome",
    "Param",
    "StreamTranslator",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallStarted",
    "extras",
    "finish_reason_of",
    "refuse_unsupported",
    "sent_parameters",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "stop_sequence"]
"""Why a model stopped, in the doors' shared vocabulary; each wire format maps it to its own."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_call": "tool_calls",
}


def finish_reason_of(response: _messages.ModelResponse) -> FinishReason:
    """The truthful finish reason of a model response (a stop sequence told apart where the
    provider says so, as Anthropic does)."""
    if any(isinstance(part, _messages.ToolCallPart) for part in response.parts):
        return "tool_calls"
    if (response.provider_details or {}).get("finish_reason") == "stop_sequence":
        return "stop_sequence"
    return _FINISH.get(str(response.finish_reason), "stop")


# --- the `agenthost` object -------------------------------------------------------------------------


class DoorCost(BaseModel):
    """What an answer cost: `usd` (float, for people), `nanousd` (exact), and how sure the price is."""

    usd: float
    nanousd: int
    status: CostStatus


class DoorExtras(BaseModel):
    """The `agenthost` object of every front-door answer, streamed or not, agent or gateway."""

    run_id: str | None
    """The durable run (agents); None for a gateway passthrough."""
    served_by: str | None
    """The model that answered (after fallbacks and routing)."""
    cost: DoorCost


def extras(*, run_id: str | None, served_by: str | None, cost: Cost) -> DoorExtras:
    """The one builder of the `agenthost` object."""
    return DoorExtras(
        run_id=run_id,
        served_by=served_by,
        cost=DoorCost(usd=cost.usd, nanousd=cost.nanousd, status=cost.status),
    )


# --- outcomes and streams ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A finished answer, in no wire format yet."""

    text: str | None
    tool_calls: list[_messages.ToolCallPart]
    finish: FinishReason
    input_tokens: int
    output_tokens: int
    extras: DoorExtras


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    index: int
    """Position among the answer's tool calls (0, 1, ...)."""
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    arguments: str


@dataclass(frozen=True)
class Finished:
    outcome: Outcome


@dataclass(frozen=True)
class Failed:
    """The answer failed after its stream started (an HTTP status can no longer say so)."""

    code: str
    message: str


DoorEvent = TextDelta | ToolCallStarted | ToolCallDelta | Finished | Failed


@dataclass
class StreamTranslator:
    """pydantic-ai stream events as door events (tool calls numbered in order of appearance)."""

    _tool_index: dict[int, int] = field(default_factory=dict)

    def event(self, event: _messages.ModelResponseStreamEvent) -> DoorEvent | None:
        if isinstance(event, _messages.PartStartEvent):
            part = event.part
            if isinstance(part, _messages.TextPart):
                return TextDelta(part.content) if part.content else None
            if isinstance(part, _messages.ToolCallPart):
                index = self._tool_index.setdefault(event.index, len(self._tool_index))
                arguments = part.args_as_json_str() if part.args else ""
                return ToolCallStarted(index, part.tool_call_id, part.tool_name, arguments)
        if isinstance(event, _messages.PartDeltaEvent):
            delta = event.delta
            if isinstance(delta, _messages.TextPartDelta):
                return TextDelta(delta.content_delta) if delta.content_delta else None
            if isinstance(delta, _messages.ToolCallPartDelta) and isinstance(delta.args_delta, str):
                return ToolCallDelta(self._tool_index.get(event.index, 0), delta.args_delta)
        return None


# --- parameters -------------------------------------------------------------------------------------

Support = Literal["yes", "no"] | tuple[Any, ...]
"""`yes`: honoured; `no`: refused; a tuple: only these values (which change nothing) are accepted."""


@dataclass(frozen=True)
class Param:
    """How a door treats one documented request parameter, for agents and for gateway models."""

    agent: Support
    gateway: Support


BOTH = Param("yes", "yes")
GATEWAY_ONLY = Param("no", "yes")
AGENT_ONLY = Param("yes", "no")


def sent_parameters(body: BaseModel) -> dict[str, Any]:
    """The parameters a client actually sent (a default is not sent), unknown ones included."""
    sent = {name: getattr(body, name) for name in body.model_fields_set}
    return {**sent, **(body.model_extra or {})}


def refuse_unsupported(
    sent: Mapping[str, Any], table: Mapping[str, Param], *, agent: bool, model: str
) -> None:
    """400 `unsupported_parameter` for the first parameter the door cannot honour for `model`
    (unknown parameters included: a dropped parameter would change the answer silently)."""
    for name, value in sent.items():
        param = table.get(name)
        if param is None:
            raise UnsupportedParameterError(f"unknown parameter {name!r}", param=name)
        rule = param.agent if agent else param.gateway
        if rule == "yes" or value is None:  # null is "not sent"
            continue
        if isinstance(rule, tuple):
            if _plain(value) in rule:
                continue
            allowed = ", ".join(repr(v) for v in rule)
            kind = "agent" if agent else "gateway model"
            msg = f"parameter {name!r} = {_plain(value)!r} is not supported for {kind} {model!r}"
            msg += f"; accepted: {allowed}"
            raise UnsupportedParameterError(msg, param=name)
        what = (
            f"{model!r} is an agent: its tools, instructions, output type and provider-specific "
            "settings are its own"
            if agent
            else f"gateway model {model!r} cannot honour it here"
        )
        raise UnsupportedParameterError(f"parameter {name!r} is not supported: {what}", param=name)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value
