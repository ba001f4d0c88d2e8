"""The OpenAI Chat Completions wire format, translated to and from pydantic-ai messages.

Used by the OpenAI-compatible front door (`POST /v1/chat/completions`): requests become
pydantic-ai messages and tool definitions; responses and stream events become completions and
completion chunks that the official `openai` SDK parses unmodified.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from agenthost.errors import ErrorCode, InvalidRequestError

__all__ = [
    "ChatCompletionRequest",
    "ChunkWriter",
    "completion_body",
    "completion_id",
    "text_delta",
    "to_messages",
    "to_parameters",
    "to_settings",
]

_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_call": "tool_calls"}


class _Function(BaseModel):
    name: str
    arguments: str = ""


class _ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: _Function


class _ToolFunction(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class _Tool(BaseModel):
    type: Literal["function"]
    function: _ToolFunction


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                msg = f"content part of type {part.get('type')!r} is not supported; send text"
                raise InvalidRequestError(msg, code=ErrorCode.UNSUPPORTED_CONTENT)
            parts.append(part["text"])
        return "".join(parts)


class _StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """Body of `POST /v1/chat/completions` (unknown OpenAI parameters are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[_Tool] | None = None
    user: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _tool_results_answer_calls(self) -> ChatCompletionRequest:
        called = {call.id for m in self.messages for call in m.tool_calls or []}
        for message in self.messages:
            if message.role == "tool" and message.tool_call_id not in called:
                msg = f"a tool message answers {message.tool_call_id!r}, which no assistant tool call has"
                raise ValueError(msg)
        return self


def to_messages(messages: list[ChatMessage]) -> list[_messages.ModelMessage]:
    """OpenAI messages as pydantic-ai messages (consecutive request parts merged)."""
    names = {call.id: call.function.name for m in messages for call in m.tool_calls or []}
    result: list[_messages.ModelMessage] = []
    pending: list[_messages.ModelRequestPart] = []
    for message in messages:
        if message.role == "assistant":
            if pending:
                result.append(_messages.ModelRequest(parts=pending))
                pending = []
            parts: list[_messages.ModelResponsePart] = []
            if message.text():
                parts.append(_messages.TextPart(message.text()))
            parts.extend(
                _messages.ToolCallPart(
                    call.function.name, call.function.arguments or "{}", tool_call_id=call.id
                )
                for call in message.tool_calls or []
            )
            result.append(_messages.ModelResponse(parts=parts))
        elif message.role in ("system", "developer"):
            pending.append(_messages.SystemPromptPart(message.text()))
        elif message.role == "user":
            pending.append(_messages.UserPromptPart(message.text()))
        else:
            call_id = message.tool_call_id or ""
            pending.append(
                _messages.ToolReturnPart(names.get(call_id, "tool"), message.text(), tool_call_id=call_id)
            )
    if pending:
        result.append(_messages.ModelRequest(parts=pending))
    return result


def to_parameters(request: ChatCompletionRequest) -> ModelRequestParameters:
    tools = [
        ToolDefinition(
            name=tool.function.name,
            parameters_json_schema=tool.function.parameters,
            description=tool.function.description,
            strict=tool.function.strict,
        )
        for tool in request.tools or []
    ]
    return ModelRequestParameters(function_tools=tools, allow_text_output=True)


def to_settings(request: ChatCompletionRequest) -> ModelSettings:
    settings = ModelSettings()
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        settings["max_tokens"] = max_tokens
    if request.temperature is not None:
        settings["temperature"] = request.temperature
    if request.top_p is not None:
        settings["top_p"] = request.top_p
    if request.seed is not None:
        settings["seed"] = request.seed
    if request.stop is not None:
        settings["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    return settings


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def _usage(input_tokens: int, output_tokens: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    return {**usage, **(extra or {})}


def completion_body(
    *,
    completion: str,
    model: str,
    text: str | None,
    tool_calls: list[_messages.ToolCallPart],
    finish_reason: str | None,
    input_tokens: int,
    output_tokens: int,
    agenthost: dict[str, Any],
) -> dict[str, Any]:
    """A `chat.completion` object; agenthost's own details under `agenthost` (the SDK keeps extras)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": c.tool_call_id,
                "type": "function",
                "function": {"name": c.tool_name, "arguments": c.args_as_json_str()},
            }
            for c in tool_calls
        ]
    return {
        "id": completion,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason or "stop", "logprobs": None}
        ],
        "usage": _usage(input_tokens, output_tokens),
        "agenthost": agenthost,
    }


def finish_reason_of(response: _messages.ModelResponse) -> str:
    if any(isinstance(part, _messages.ToolCallPart) for part in response.parts):
        return "tool_calls"
    return _FINISH.get(str(response.finish_reason), "stop")


class ChunkWriter:
    """Builds the `chat.completion.chunk` SSE lines of one streamed completion."""

    def __init__(self, completion: str, model: str) -> None:
        self.completion = completion
        self.model = model
        self.created = int(time.time())
        self._tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        body = {
            "id": self.completion,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    def role(self) -> str:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, delta: str) -> str:
        return self._chunk({"content": delta})

    def event(self, event: _messages.ModelResponseStreamEvent) -> str | None:
        """The chunk of one pydantic-ai stream event, if it carries text or a tool call."""
        if isinstance(event, _messages.PartStartEvent):
            part = event.part
            if isinstance(part, _messages.TextPart):
                return self.text(part.content) if part.content else None
            if isinstance(part, _messages.ToolCallPart):
                index = self._tool_index.setdefault(event.index, len(self._tool_index))
                call = {
                    "index": index,
                    "id": part.tool_call_id,
                    "type": "function",
                    "function": {
                        "name": part.tool_name,
                        "arguments": part.args_as_json_str() if part.args else "",
                    },
                }
                return self._chunk({"tool_calls": [call]})
        if isinstance(event, _messages.PartDeltaEvent):
            delta = event.delta
            if isinstance(delta, _messages.TextPartDelta):
                return self.text(delta.content_delta)
            if isinstance(delta, _messages.ToolCallPartDelta) and isinstance(delta.args_delta, str):
                index = self._tool_index.get(event.index, 0)
                return self._chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": delta.args_delta}}]}
                )
        return None

    def finish(self, finish_reason: str) -> str:
        return self._chunk({}, finish_reason)

    def usage(self, input_tokens: int, output_tokens: int, agenthost: dict[str, Any]) -> str:
        body = {
            "id": self.completion,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": _usage(input_tokens, output_tokens),
            "agenthost": agenthost,
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    @staticmethod
    def error(code: str, message: str) -> str:
        """An error inside a stream that already started: the SDK raises it; no `[DONE]` follows."""
        return f"data: {json.dumps({'error': {'message': message, 'type': code, 'code': code}})}\n\n"

    @staticmethod
    def done() -> str:
        return "data: [DONE]\n\n"


def text_delta(event: _messages.ModelResponseStreamEvent) -> str:
    """The text a pydantic-ai stream event adds (empty for tool calls and other parts)."""
    if isinstance(event, _messages.PartStartEvent) and isinstance(event.part, _messages.TextPart):
        return event.part.content
    if isinstance(event, _messages.PartDeltaEvent) and isinstance(event.delta, _messages.TextPartDelta):
        return event.delta.content_delta
    return ""
