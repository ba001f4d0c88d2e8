"""The Anthropic Messages wire format, translated to and from the front door.

Used by `POST /v1/messages`: `system` and `messages` (string content, text blocks, and for gateway
models tool_use / tool_result blocks) become pydantic-ai messages; an `Outcome` becomes a
`message` object with a truthful `stop_reason` (`end_turn`, `max_tokens`, `stop_sequence`,
`tool_use`, `refusal`), and door events become Anthropic's stream (`message_start`, `ping`,
`content_block_start`, `content_block_delta`, `content_block_stop`, `message_delta`,
`message_stop`). The official `anthropic` SDK parses both. Errors use Anthropic's envelope
(`error_envelope`).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings, ToolChoice

from agenthost.errors import ErrorCode, InvalidRequestError, UnsupportedParameterError
from agenthost.gateway.frontdoor import (
    BOTH,
    GATEWAY_ONLY,
    DoorEvent,
    Finished,
    FinishReason,
    Outcome,
    Param,
    TextDelta,
    ToolCallDelta,
    ToolCallStarted,
    refuse_unsupported,
    sent_parameters,
)
from agenthost.gateway.openai_format import tool_definitions
from agenthost.records import SamplingSettings

__all__ = [
    "MESSAGES_PARAMETERS",
    "MessageStreamWriter",
    "MessagesRequest",
    "error_envelope",
    "message_body",
    "message_id",
    "split_agent_input",
    "to_messages",
    "to_parameters",
    "to_settings",
]

MESSAGES_PARAMETERS: dict[str, Param] = {
    "model": BOTH,
    "messages": BOTH,
    "max_tokens": BOTH,
    "stream": BOTH,
    "metadata": BOTH,
    "system": GATEWAY_ONLY,
    "stop_sequences": BOTH,
    "temperature": BOTH,
    "top_p": BOTH,
    "top_k": GATEWAY_ONLY,
    "tools": GATEWAY_ONLY,
    "tool_choice": GATEWAY_ONLY,
    "thinking": Param(({"type": "disabled"},), ({"type": "disabled"},)),
    **{
        name: Param("no", "no")
        for name in (
            "service_tier",
            "container",
            "cache_control",
            "diagnostics",
            "inference_geo",
            "output_config",
            "speed",
            "user_profile_id",
            "workspace_id",
            "mcp_servers",
            "context_management",
        )
    },
}
"""Every documented Messages parameter and how the door treats it (docs/operations.md)."""

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_envelope(status: int, message: str, code: str, request_id: str | None) -> dict[str, Any]:
    """Anthropic's error body; agenthost's stable `code` rides along inside `error`."""
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")  # noqa: PLR2004
    return {
        "type": "error",
        "error": {"type": kind, "message": message, "code": code},
        "request_id": request_id,
    }


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class _ToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, max_length=256)


class MessagesRequest(BaseModel):
    """Body of `POST /v1/messages`: every parameter is honoured or refused by
    `MESSAGES_PARAMETERS` (400 `unsupported_parameter`), never silently dropped."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=1_000_000)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    metadata: _Metadata | None = None

    def check(self, *, agent: bool) -> None:
        """400 `unsupported_parameter` for a parameter the door cannot honour for this model."""
        refuse_unsupported(sent_parameters(self), MESSAGES_PARAMETERS, agent=agent, model=self.model)

    def sampling(self) -> SamplingSettings:
        """The sampling parameters an agent's run honours on every model call."""
        return SamplingSettings(
            temperature=self.temperature, top_p=self.top_p, stop_sequences=self.stop_sequences
        )

    @property
    def user(self) -> str | None:
        return self.metadata.user_id if self.metadata is not None else None


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


# --- requests ----------------------------------------------------------------------------------------


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _text(blocks: Any, where: str) -> str:
    texts = []
    for block in _blocks(blocks) if isinstance(blocks, (str, list)) else [blocks]:
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            msg = f"{where}: content block of type {kind!r} is not supported here; send text"
            raise InvalidRequestError(msg, code=ErrorCode.UNSUPPORTED_CONTENT)
        texts.append(block["text"])
    return "".join(texts)


def _system(request: MessagesRequest) -> list[_messages.ModelRequestPart]:
    if request.system is None:
        return []
    return [_messages.SystemPromptPart(_text(request.system, "system"))]


def to_messages(request: MessagesRequest) -> list[_messages.ModelMessage]:
    """System and messages as pydantic-ai messages."""
    result: list[_messages.ModelMessage] = []
    pending: list[_messages.ModelRequestPart] = _system(request)
    names: dict[str, str] = {}
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role == "assistant":
            if pending:
                result.append(_messages.ModelRequest(parts=pending))
                pending = []
            parts: list[_messages.ModelResponsePart] = []
            for block in _blocks(message.content):
                if block.get("type") == "tool_use":
                    call_id, name = str(block.get("id") or ""), str(block.get("name") or "")
                    names[call_id] = name
                    parts.append(_messages.ToolCallPart(name, block.get("input") or {}, tool_call_id=call_id))
                else:
                    parts.append(_messages.TextPart(_text([block], where)))
            result.append(_messages.ModelResponse(parts=parts))
            continue
        for block in _blocks(message.content):
            if block.get("type") == "tool_result":
                call_id = str(block.get("tool_use_id") or "")
                output = _text(block.get("content") or "", f"{where}.tool_result")
                pending.append(
                    _messages.ToolReturnPart(names.get(call_id, "tool"), output, tool_call_id=call_id)
                )
            else:
                pending.append(_messages.UserPromptPart(_text([block], where)))
    if pending:
        result.append(_messages.ModelRequest(parts=pending))
    return result


def split_agent_input(request: MessagesRequest) -> tuple[str, list[_messages.ModelMessage]]:
    """An agent's input (the last message, the user's text) and the earlier messages as history."""
    *earlier, last = request.messages
    if last.role != "user":
        msg = "the last message must be the user's when `model` names an agent"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_REQUEST)
    text = _text(last.content, f"messages[{len(earlier)}]")
    for index, message in enumerate(earlier):
        if any(block.get("type") in ("tool_use", "tool_result") for block in _blocks(message.content)):
            msg = f"messages[{index}]: tool_use and tool_result blocks are for gateway models"
            msg += "; an agent calls its own tools"
            raise InvalidRequestError(msg, code=ErrorCode.UNSUPPORTED_CONTENT)
    history = to_messages(request.model_copy(update={"messages": earlier})) if earlier else []
    return text, history


def to_parameters(request: MessagesRequest) -> ModelRequestParameters:
    tools = tool_definitions([(t.name, t.description, t.input_schema, None) for t in request.tools or []])
    return ModelRequestParameters(function_tools=tools, allow_text_output=True)


def _tool_choice(choice: _ToolChoice) -> ToolChoice:
    if choice.type == "tool":
        if not choice.name:
            raise UnsupportedParameterError("tool_choice of type tool needs a `name`", param="tool_choice")
        return [choice.name]
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]  # type: ignore[return-value]


def to_settings(request: MessagesRequest, *, provider: str | None) -> ModelSettings:
    settings = ModelSettings(max_tokens=request.max_tokens)
    if request.temperature is not None:
        settings["temperature"] = request.temperature
    if request.top_p is not None:
        settings["top_p"] = request.top_p
    if request.top_k is not None:
        if provider != "anthropic":
            msg = "parameter 'top_k' is only supported for gateway models whose provider is anthropic"
            raise UnsupportedParameterError(msg, param="top_k")
        settings["top_k"] = request.top_k
    if request.stop_sequences:
        settings["stop_sequences"] = request.stop_sequences
    if request.tool_choice is not None:
        settings["tool_choice"] = _tool_choice(request.tool_choice)
        if request.tool_choice.disable_parallel_tool_use is not None:
            settings["parallel_tool_calls"] = not request.tool_choice.disable_parallel_tool_use
    return settings


# --- responses ---------------------------------------------------------------------------------------


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def message_body(mid: str, model: str, outcome: Outcome) -> dict[str, Any]:
    """A `message` object; agenthost's own details under `agenthost` (the SDK keeps extras)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": outcome.text}] if outcome.text else []
    content += [
        {"type": "tool_use", "id": c.tool_call_id, "name": c.tool_name, "input": c.args_as_dict()}
        for c in outcome.tool_calls
    ]
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS[outcome.finish],
        "stop_sequence": None,
        "usage": _usage(outcome.input_tokens, outcome.output_tokens),
        "agenthost": outcome.extras.model_dump(),
    }


def _sse(kind: str, body: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body}, separators=(',', ':'))}\n\n"


class MessageStreamWriter:
    """Builds the SSE events of one streamed message from door events."""

    def __init__(self, mid: str, model: str) -> None:
        self.mid = mid
        self.model = model
        self._blocks = 0
        self._open: int | None = None  # the open content block
        self._open_kind: str | None = None
        self._calls: dict[int, int] = {}  # tool call index -> block index

    def start(self) -> list[str]:
        message: dict[str, Any] = {
            "id": self.mid,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(0, 0),
        }
        return [_sse("message_start", {"message": message}), _sse("ping", {})]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[str]:
        lines = self._close()
        self._open, self._open_kind = self._blocks, kind
        self._blocks += 1
        return [*lines, _sse("content_block_start", {"index": self._open, "content_block": block})]

    def _close(self) -> list[str]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [_sse("content_block_stop", {"index": index})]

    def lines(self, event: DoorEvent) -> list[str]:
        if isinstance(event, TextDelta):
            lines = [] if self._open_kind == "text" else self._begin("text", {"type": "text", "text": ""})
            text = {"type": "text_delta", "text": event.text}
            return [*lines, _sse("content_block_delta", {"index": self._open, "delta": text})]
        if isinstance(event, ToolCallStarted):
            block = {"type": "tool_use", "id": event.call_id, "name": event.name, "input": {}}
            lines = self._begin("tool_use", block)
            self._calls[event.index] = self._blocks - 1
            if event.arguments:
                lines.append(self._json_delta(event.arguments))
            return lines
        if isinstance(event, ToolCallDelta):
            return [self._json_delta(event.arguments)]
        if isinstance(event, Finished):
            outcome = event.outcome
            body = {
                "delta": {"stop_reason": _STOP_REASONS[outcome.finish], "stop_sequence": None},
                "usage": _usage(outcome.input_tokens, outcome.output_tokens),
                "agenthost": outcome.extras.model_dump(),
            }
            return [*self._close(), _sse("message_delta", body), _sse("message_stop", {})]
        error = error_envelope(502, event.message, event.code, None)
        return [_sse("error", {"error": error["error"]})]

    def _json_delta(self, partial: str) -> str:
        delta = {"type": "input_json_delta", "partial_json": partial}
        return _sse("content_block_delta", {"index": self._open, "delta": delta})
