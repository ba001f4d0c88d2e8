"""The OpenAI Chat Completions wire format, translated to and from pydantic-ai messages.

Used by the OpenAI-compatible front door (`POST /v1/chat/completions`): requests become
pydantic-ai messages and tool definitions; responses and stream events become completions and
completion chunks that the official `openai` SDK parses unmodified.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.settings import ModelSettings, ToolChoice
from pydantic_ai.tools import ToolDefinition

from agenthost.errors import ErrorCode, InvalidRequestError, UnsupportedParameterError
from agenthost.gateway.frontdoor import (
    AGENT_ONLY,
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
from agenthost.records import SamplingSettings

__all__ = [
    "CHAT_PARAMETERS",
    "ChatCompletionRequest",
    "ChunkWriter",
    "completion_body",
    "completion_id",
    "native_output",
    "text_delta",
    "to_messages",
    "to_parameters",
    "to_settings",
    "tool_choice_of",
    "tool_definitions",
]


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


class _ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


CHAT_PARAMETERS: dict[str, Param] = {
    "model": BOTH,
    "messages": BOTH,
    "stream": BOTH,
    "stream_options": BOTH,
    "max_tokens": BOTH,
    "max_completion_tokens": BOTH,
    "user": BOTH,
    "metadata": AGENT_ONLY,
    "temperature": BOTH,
    "top_p": BOTH,
    "seed": BOTH,
    "stop": BOTH,
    "presence_penalty": GATEWAY_ONLY,
    "frequency_penalty": GATEWAY_ONLY,
    "logit_bias": GATEWAY_ONLY,
    "tools": GATEWAY_ONLY,
    "tool_choice": GATEWAY_ONLY,
    "parallel_tool_calls": GATEWAY_ONLY,
    "service_tier": GATEWAY_ONLY,
    "response_format": Param(({"type": "text"},), "yes"),
    "n": Param((1,), (1,)),
    "logprobs": Param((False,), (False,)),
    "modalities": Param((["text"],), (["text"],)),
    "store": Param((False,), (False,)),
    **{
        name: Param("no", "no")
        for name in (
            "top_logprobs",
            "audio",
            "prediction",
            "web_search_options",
            "functions",
            "function_call",
            "reasoning_effort",
            "verbosity",
            "prompt_cache_key",
            "prompt_cache_retention",
            "prompt_cache_options",
            "safety_identifier",
            "moderation",
        )
    },
}
"""Every documented Chat Completions parameter and how the door treats it (docs/operations.md)."""


class ChatCompletionRequest(BaseModel):
    """Body of `POST /v1/chat/completions`: every parameter is honoured or refused by
    `CHAT_PARAMETERS` (400 `unsupported_parameter`), never silently dropped."""

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
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    tools: list[_Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None
    response_format: _ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _tool_results_answer_calls(self) -> ChatCompletionRequest:
        called = {call.id for m in self.messages for call in m.tool_calls or []}
        for message in self.messages:
            if message.role == "tool" and message.tool_call_id not in called:
                msg = f"a tool message answers {message.tool_call_id!r}, which no assistant tool call has"
                raise ValueError(msg)
        return self

    def check(self, *, agent: bool) -> None:
        """400 `unsupported_parameter` for a parameter the door cannot honour for this model."""
        refuse_unsupported(sent_parameters(self), CHAT_PARAMETERS, agent=agent, model=self.model)

    def sampling(self) -> SamplingSettings:
        """The sampling parameters an agent's run honours on every model call."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return SamplingSettings(
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop_sequences=stop
        )


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


def tool_definitions(
    tools: list[tuple[str, str | None, dict[str, Any], bool | None]],
) -> list[ToolDefinition]:
    """Function tools (name, description, JSON schema, strict) as pydantic-ai tool definitions."""
    return [
        ToolDefinition(name=name, parameters_json_schema=schema, description=description, strict=strict)
        for name, description, schema, strict in tools
    ]


def native_output(schema: dict[str, Any] | None, name: str | None, param: str) -> OutputObjectDefinition:
    """A `json_schema` output format as pydantic-ai native structured output."""
    if not isinstance(schema, dict):
        raise UnsupportedParameterError(f"{param}: a json_schema format needs a `schema` object", param=param)
    return OutputObjectDefinition(json_schema=schema, name=name)


def to_parameters(request: ChatCompletionRequest) -> ModelRequestParameters:
    tools = tool_definitions(
        [
            (t.function.name, t.function.description, t.function.parameters, t.function.strict)
            for t in request.tools or []
        ]
    )
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return ModelRequestParameters(function_tools=tools, allow_text_output=True)
    if fmt.type == "json_object":
        msg = "response_format json_object is not supported; send a json_schema format"
        raise UnsupportedParameterError(msg, param="response_format")
    spec = fmt.json_schema or {}
    output = native_output(spec.get("schema"), spec.get("name"), "response_format")
    return ModelRequestParameters(
        function_tools=tools, output_mode="native", output_object=output, allow_text_output=False
    )


def tool_choice_of(value: str | dict[str, Any] | None, param: str) -> ToolChoice:
    """An OpenAI `tool_choice` (`none`/`auto`/`required`, or one named function)."""
    if value is None or isinstance(value, str):
        return value  # type: ignore[return-value]  # validated Literal
    function = value.get("function") if value.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else value.get("name")
    if value.get("type") == "function" and isinstance(name, str):
        return [name]
    raise UnsupportedParameterError(f"{param}: only none, auto, required or one function", param=param)


# Parameters that are pydantic-ai model settings of the same meaning (and, but `stop`, name).
_SETTINGS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "logit_bias": "logit_bias",
    "parallel_tool_calls": "parallel_tool_calls",
    "service_tier": "service_tier",
}


def to_settings(request: ChatCompletionRequest) -> ModelSettings:
    values = {setting: getattr(request, name) for name, setting in _SETTINGS.items()}
    settings: dict[str, Any] = {setting: value for setting, value in values.items() if value is not None}
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        settings["max_tokens"] = max_tokens
    if request.stop is not None:
        settings["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.tool_choice is not None:
        settings["tool_choice"] = tool_choice_of(request.tool_choice, "tool_choice")
    return cast("ModelSettings", settings)  # keys from _SETTINGS


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


_CHAT_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _tool_call(call: _messages.ToolCallPart) -> dict[str, Any]:
    return {
        "id": call.tool_call_id,
        "type": "function",
        "function": {"name": call.tool_name, "arguments": call.args_as_json_str()},
    }


def completion_body(completion: str, model: str, outcome: Outcome) -> dict[str, Any]:
    """A `chat.completion` object; agenthost's own details under `agenthost` (the SDK keeps extras)."""
    message: dict[str, Any] = {"role": "assistant", "content": outcome.text}
    if outcome.tool_calls:
        message["tool_calls"] = [_tool_call(c) for c in outcome.tool_calls]
    finish = _CHAT_FINISH[outcome.finish]
    return {
        "id": completion,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(outcome.input_tokens, outcome.output_tokens),
        "agenthost": outcome.extras.model_dump(),
    }


class ChunkWriter:
    """Builds the `chat.completion.chunk` SSE lines of one streamed completion from door events."""

    def __init__(self, completion: str, model: str, *, include_usage: bool) -> None:
        self.completion = completion
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())

    def _line(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "id": self.completion,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return self._line([{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}])

    def start(self) -> list[str]:
        """The opening chunk (the assistant's role), before any event."""
        return [self._chunk({"role": "assistant", "content": ""})]

    def lines(self, event: DoorEvent) -> list[str]:
        """The SSE lines of one door event (the end of the stream included)."""
        if isinstance(event, TextDelta):
            return [self._chunk({"content": event.text})]
        if isinstance(event, ToolCallStarted):
            call = {
                "index": event.index,
                "id": event.call_id,
                "type": "function",
                "function": {"name": event.name, "arguments": event.arguments},
            }
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, ToolCallDelta):
            return [
                self._chunk(
                    {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
                )
            ]
        if isinstance(event, Finished):
            outcome = event.outcome
            lines = [self._chunk({}, _CHAT_FINISH[outcome.finish])]
            if self.include_usage:
                usage = _usage(outcome.input_tokens, outcome.output_tokens)
                lines.append(self._line([], usage=usage, agenthost=outcome.extras.model_dump()))
            return [*lines, "data: [DONE]\n\n"]
        # An error inside a stream that already started: the SDK raises it.
        error = {"error": {"message": event.message, "type": event.code, "code": event.code}}
        return [f"data: {json.dumps(error)}\n\n", "data: [DONE]\n\n"]


def text_delta(event: _messages.ModelResponseStreamEvent) -> str:
    """The text a pydantic-ai stream event adds (empty for tool calls and other parts)."""
    if isinstance(event, _messages.PartStartEvent) and isinstance(event.part, _messages.TextPart):
        return event.part.content
    if isinstance(event, _messages.PartDeltaEvent) and isinstance(event.delta, _messages.TextPartDelta):
        return event.delta.content_delta
    return ""
