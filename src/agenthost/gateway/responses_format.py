"""The OpenAI Responses (Open Responses) wire format, translated to and from the front door.

Used by `POST /v1/responses`: a request's `input` (a string, or message / function_call /
function_call_output items) and `instructions` become pydantic-ai messages; an `Outcome` becomes
a `response` object, and a stream of door events becomes the Responses streaming events
(`response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta`, ..., `response.completed`), each
with its `sequence_number`. The official `openai` SDK parses both.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_ai import messages as _messages
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from agenthost.errors import ErrorCode, InvalidRequestError, UnsupportedParameterError
from agenthost.gateway.frontdoor import (
    BOTH,
    GATEWAY_ONLY,
    DoorEvent,
    Finished,
    Outcome,
    Param,
    TextDelta,
    ToolCallDelta,
    ToolCallStarted,
    refuse_unsupported,
    sent_parameters,
)
from agenthost.gateway.openai_format import native_output, tool_choice_of, tool_definitions
from agenthost.records import SamplingSettings

__all__ = [
    "RESPONSES_PARAMETERS",
    "ResponseStreamWriter",
    "ResponsesRequest",
    "response_body",
    "response_id",
    "split_agent_input",
    "to_messages",
    "to_parameters",
    "to_settings",
]

RESPONSES_PARAMETERS: dict[str, Param] = {
    "model": BOTH,
    "input": BOTH,
    "stream": BOTH,
    "max_output_tokens": BOTH,
    "metadata": BOTH,
    "user": BOTH,
    "previous_response_id": Param("yes", "no"),
    "store": Param((True,), (False,)),
    "instructions": GATEWAY_ONLY,
    "temperature": BOTH,
    "top_p": BOTH,
    "tools": GATEWAY_ONLY,
    "tool_choice": GATEWAY_ONLY,
    "parallel_tool_calls": GATEWAY_ONLY,
    "service_tier": GATEWAY_ONLY,
    "text": Param(({"format": {"type": "text"}},), "yes"),
    "truncation": Param(("disabled",), ("disabled",)),
    "background": Param((False,), (False,)),
    **{
        name: Param("no", "no")
        for name in (
            "include",
            "reasoning",
            "conversation",
            "prompt",
            "prompt_cache_key",
            "prompt_cache_retention",
            "prompt_cache_options",
            "safety_identifier",
            "top_logprobs",
            "max_tool_calls",
            "stream_options",
            "context_management",
            "image",
            "moderation",
            "access_programs",
            "background_options",
        )
    },
}
"""Every documented Responses parameter and how the door treats it (docs/operations.md)."""


class _FunctionTool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class _TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")


class _Text(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: _TextFormat | None = None


class ResponsesRequest(BaseModel):
    """Body of `POST /v1/responses`: every parameter is honoured or refused by
    `RESPONSES_PARAMETERS` (400 `unsupported_parameter`), never silently dropped."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: Annotated[str, Field(min_length=1)] | Annotated[list[dict[str, Any]], Field(min_length=1)]
    instructions: str | None = None
    stream: bool = False
    previous_response_id: str | None = Field(None, min_length=1, max_length=128)
    max_output_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    tools: list[_FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None
    text: _Text | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    user: str | None = Field(None, max_length=256)
    truncation: str | None = None
    background: bool | None = None

    def check(self, *, agent: bool) -> None:
        """400 `unsupported_parameter` for a parameter the door cannot honour for this model."""
        refuse_unsupported(sent_parameters(self), RESPONSES_PARAMETERS, agent=agent, model=self.model)

    def sampling(self) -> SamplingSettings:
        """The sampling parameters an agent's run honours on every model call."""
        return SamplingSettings(temperature=self.temperature, top_p=self.top_p)


def response_id() -> str:
    return f"resp_{secrets.token_hex(12)}"


# --- requests ----------------------------------------------------------------------------------------


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}: content must be a string or a list of parts")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text") or not isinstance(part.get("text"), str):
            msg = f"{where}: content part of type {kind!r} is not supported; send input_text"
            raise InvalidRequestError(msg, code=ErrorCode.UNSUPPORTED_CONTENT)
        texts.append(part["text"])
    return "".join(texts)


def _items(request: ResponsesRequest) -> list[dict[str, Any]]:
    if isinstance(request.input, str):
        return [{"type": "message", "role": "user", "content": request.input}]
    return request.input


def to_messages(request: ResponsesRequest) -> list[_messages.ModelMessage]:
    """The instructions and input items as pydantic-ai messages (consecutive request parts merged)."""
    result: list[_messages.ModelMessage] = []
    pending: list[_messages.ModelRequestPart] = []
    if request.instructions:
        pending.append(_messages.SystemPromptPart(request.instructions))
    names: dict[str, str] = {}
    for index, item in enumerate(_items(request)):
        where = f"input[{index}]"
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "assistant":
            if pending:
                result.append(_messages.ModelRequest(parts=pending))
                pending = []
            text = _content_text(item.get("content"), where)
            result.append(_messages.ModelResponse(parts=[_messages.TextPart(text)]))
        elif kind == "message" and item.get("role") in ("user", "system", "developer"):
            text = _content_text(item.get("content"), where)
            part_type = _messages.UserPromptPart if item["role"] == "user" else _messages.SystemPromptPart
            pending.append(part_type(text))
        elif kind == "function_call":
            if pending:
                result.append(_messages.ModelRequest(parts=pending))
                pending = []
            call_id, name = str(item.get("call_id") or ""), str(item.get("name") or "")
            names[call_id] = name
            call = _messages.ToolCallPart(name, str(item.get("arguments") or "{}"), tool_call_id=call_id)
            _append_call(result, call)
        elif kind == "function_call_output":
            call_id = str(item.get("call_id") or "")
            output = _content_text(item.get("output"), where)
            pending.append(_messages.ToolReturnPart(names.get(call_id, "tool"), output, tool_call_id=call_id))
        else:
            msg = f"{where}: input item of type {kind!r} is not supported"
            msg += "; send message, function_call or function_call_output items"
            raise InvalidRequestError(msg, code=ErrorCode.UNSUPPORTED_CONTENT)
    if pending:
        result.append(_messages.ModelRequest(parts=pending))
    return result


def _append_call(result: list[_messages.ModelMessage], call: _messages.ToolCallPart) -> None:
    """Tool calls that follow one another belong to the same model response."""
    if result and isinstance(result[-1], _messages.ModelResponse):
        result[-1] = _messages.ModelResponse(parts=[*result[-1].parts, call])
    else:
        result.append(_messages.ModelResponse(parts=[call]))


def split_agent_input(request: ResponsesRequest) -> tuple[str, list[_messages.ModelMessage]]:
    """An agent's input (the last item, a user message) and the earlier items as its history."""
    items = _items(request)
    last = items[-1]
    if last.get("type", "message") != "message" or last.get("role") != "user":
        msg = "the last input item must be a user message when `model` names an agent"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_REQUEST)
    if any(item.get("type", "message") != "message" for item in items):
        msg = "function_call items are for gateway models; an agent calls its own tools"
        raise InvalidRequestError(msg, code=ErrorCode.UNSUPPORTED_CONTENT)
    earlier = request.model_copy(update={"input": items[:-1], "instructions": None})
    history = to_messages(earlier) if items[:-1] else []
    return _content_text(last.get("content"), f"input[{len(items) - 1}]"), history


def to_parameters(request: ResponsesRequest) -> ModelRequestParameters:
    tools = tool_definitions([(t.name, t.description, t.parameters, t.strict) for t in request.tools or []])
    fmt = request.text.format if request.text is not None else None
    if fmt is None or fmt.type == "text":
        return ModelRequestParameters(function_tools=tools, allow_text_output=True)
    if fmt.type == "json_object":
        msg = "text.format json_object is not supported; send a json_schema format"
        raise UnsupportedParameterError(msg, param="text")
    output = native_output(fmt.schema_, fmt.name, "text")
    return ModelRequestParameters(
        function_tools=tools, output_mode="native", output_object=output, allow_text_output=False
    )


def to_settings(request: ResponsesRequest) -> ModelSettings:
    settings = ModelSettings()
    if request.max_output_tokens is not None:
        settings["max_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        settings["temperature"] = request.temperature
    if request.top_p is not None:
        settings["top_p"] = request.top_p
    if request.parallel_tool_calls is not None:
        settings["parallel_tool_calls"] = request.parallel_tool_calls
    if request.service_tier is not None:
        settings["service_tier"] = request.service_tier
    if request.tool_choice is not None:
        settings["tool_choice"] = tool_choice_of(request.tool_choice, "tool_choice")
    return settings


# --- responses ---------------------------------------------------------------------------------------


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": f"fc_{call_id}",
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_body(
    rid: str,
    request: ResponsesRequest,
    outcome: Outcome | None,
    *,
    conversation: str | None = None,
    status: str | None = None,
    error: dict[str, str] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """A `response` object: finished (`outcome`), or in progress / failed (`status`, no outcome)."""
    output: list[dict[str, Any]] = []
    incomplete = _INCOMPLETE.get(outcome.finish) if outcome is not None else None
    if outcome is not None:
        item_status = "incomplete" if incomplete else "completed"
        if outcome.text is not None:
            output.append(_message_item(message_id or f"msg_{rid}", outcome.text, item_status))
        output += [
            _call_item(c.tool_call_id, c.tool_name, c.args_as_json_str(), "completed")
            for c in outcome.tool_calls
        ]
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status or ("incomplete" if incomplete else "completed"),
        "model": request.model,
        "output": output,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.instructions,
        "metadata": request.metadata or {},
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "tool_choice": request.tool_choice or "auto",
        "tools": [t.model_dump(exclude_none=True) for t in request.tools or []],
        "max_output_tokens": request.max_output_tokens,
        "previous_response_id": request.previous_response_id,
        "store": conversation is not None,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "user": request.user,
        "conversation": {"id": conversation} if conversation else None,
        "usage": None,
    }
    if outcome is not None:
        body["usage"] = {
            "input_tokens": outcome.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": outcome.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": outcome.input_tokens + outcome.output_tokens,
        }
        body["agenthost"] = outcome.extras.model_dump()
    return body


class ResponseStreamWriter:
    """Builds the SSE events of one streamed response from door events, numbered in order."""

    def __init__(self, rid: str, request: ResponsesRequest, *, conversation: str | None) -> None:
        self.rid = rid
        self.request = request
        self.conversation = conversation
        self.message_id = f"msg_{rid}"
        self._seq = 0
        self._output = 0
        self._text: list[str] | None = None  # the open message item's text
        self._text_index = 0
        self._calls: dict[int, tuple[int, str, str, list[str]]] = {}  # index -> (output, id, name, args)

    def _event(self, kind: str, **fields: Any) -> str:
        body = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"

    def start(self) -> list[str]:
        body = response_body(
            self.rid, self.request, None, conversation=self.conversation, status="in_progress"
        )
        return [
            self._event("response.created", response=body),
            self._event("response.in_progress", response=body),
        ]

    def lines(self, event: DoorEvent) -> list[str]:
        if isinstance(event, TextDelta):
            return self._text_delta(event.text)
        if isinstance(event, ToolCallStarted):
            lines = self._close_text()
            index = self._output
            self._output += 1
            self._calls[event.index] = (index, event.call_id, event.name, [event.arguments])
            item = _call_item(event.call_id, event.name, "", "in_progress")
            lines.append(self._event("response.output_item.added", output_index=index, item=item))
            if event.arguments:
                lines.append(self._args_delta(event.index, event.arguments, record=False))
            return lines
        if isinstance(event, ToolCallDelta):
            return [self._args_delta(event.index, event.arguments, record=True)]
        if isinstance(event, Finished):
            lines = [*self._close_text(event.outcome.finish), *self._close_calls()]
            body = response_body(
                self.rid,
                self.request,
                event.outcome,
                conversation=self.conversation,
                message_id=self.message_id,
            )
            kind = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
            return [*lines, self._event(kind, response=body)]
        error = {"code": event.code, "message": event.message}
        body = response_body(
            self.rid, self.request, None, conversation=self.conversation, status="failed", error=error
        )
        return [
            self._event("error", code=event.code, message=event.message, param=None),
            self._event("response.failed", response=body),
        ]

    def _text_delta(self, delta: str) -> list[str]:
        lines = []
        if self._text is None:
            self._text = []
            self._text_index = self._output
            self._output += 1
            item = {**_message_item(self.message_id, "", "in_progress"), "content": []}
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            lines += [
                self._event("response.output_item.added", output_index=self._text_index, item=item),
                self._event(
                    "response.content_part.added",
                    item_id=self.message_id,
                    output_index=self._text_index,
                    content_index=0,
                    part=part,
                ),
            ]
        self._text.append(delta)
        lines.append(
            self._event(
                "response.output_text.delta",
                item_id=self.message_id,
                output_index=self._text_index,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return lines

    def _close_text(self, finish: str = "stop") -> list[str]:
        if self._text is None:
            return []
        text, self._text = "".join(self._text), None
        where = {"item_id": self.message_id, "output_index": self._text_index, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        status = "incomplete" if finish in _INCOMPLETE else "completed"
        return [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=part),
            self._event(
                "response.output_item.done",
                output_index=self._text_index,
                item=_message_item(self.message_id, text, status),
            ),
        ]

    def _args_delta(self, index: int, delta: str, *, record: bool) -> str:
        output, call_id, _, arguments = self._calls[index]
        if record:
            arguments.append(delta)
        return self._event(
            "response.function_call_arguments.delta",
            item_id=f"fc_{call_id}",
            output_index=output,
            delta=delta,
        )

    def _close_calls(self) -> list[str]:
        lines = []
        for output, call_id, name, parts in self._calls.values():
            arguments = "".join(parts)
            lines += [
                self._event(
                    "response.function_call_arguments.done",
                    item_id=f"fc_{call_id}",
                    output_index=output,
                    arguments=arguments,
                ),
                self._event(
                    "response.output_item.done",
                    output_index=output,
                    item=_call_item(call_id, name, arguments, "completed"),
                ),
            ]
        self._calls = {}
        return lines
