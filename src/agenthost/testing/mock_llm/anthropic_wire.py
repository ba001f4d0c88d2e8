"""The Anthropic Messages wire format (``POST /v1/messages``), streaming and not."""

from __future__ import annotations

import json
from typing import Any

from agenthost.testing.mock_llm.exchange import (
    ChatRequest,
    ErrorKind,
    FinishReason,
    MockRequestError,
    Plan,
    StreamEvent,
    WireName,
    optional_int,
    sampling_of,
    stop_sequences,
    text_of,
)
from agenthost.testing.mock_llm.tokens import count_tokens

_ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "server_error": "api_error",
    "overloaded": "overloaded_error",
}
_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
}


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"


def _count_blocks(content: Any) -> tuple[int, str | None, str | None]:
    """Tokens of one message's content, its text (``None`` if it has none) and its last tool result."""
    if isinstance(content, str):
        return count_tokens(content), content, None
    if not isinstance(content, list):
        return 0, None, None
    tokens = 0
    texts: list[str] = []
    tool_result: str | None = None
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text = str(block.get("text") or "")
            texts.append(text)
            tokens += count_tokens(text)
        elif kind == "tool_use":
            tokens += count_tokens(json.dumps(block.get("input") or {}))
        elif kind == "tool_result":
            tool_result = text_of(block.get("content"))
            tokens += count_tokens(tool_result)
    return tokens, ("\n".join(texts) if texts else None), tool_result


def _has_cache_control(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(_has_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_cache_control(v) for v in value)
    return False


class AnthropicWire:
    """Parses Messages requests and renders :class:`Plan` objects as Anthropic responses.

    Prompt caching is simulated: when the system prompt or the tools carry `cache_control`, their
    tokens are reported as `cache_creation_input_tokens` the first time that prefix is seen and as
    `cache_read_input_tokens` afterwards; `input_tokens` counts the rest, as Anthropic does.
    """

    name: WireName = "anthropic"

    def __init__(self) -> None:
        self._cached_prefixes: set[str] = set()

    def parse(self, body: dict[str, Any]) -> ChatRequest:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise MockRequestError("`messages` must be a list")
        prompt_tokens = count_tokens(text_of(body.get("system")))
        first_user: str | None = None
        last_user = ""
        last_tool_result = ""
        assistant_turns = 0
        for message in messages:
            if not isinstance(message, dict):
                raise MockRequestError("each message must be an object")
            tokens, text, tool_result = _count_blocks(message.get("content"))
            prompt_tokens += tokens
            if message.get("role") == "assistant":
                assistant_turns += 1
            elif text is not None:
                # A user message holding only tool results is the protocol's way of returning them,
                # not something the user said; skipping it keeps `{last_user}` and the conversation
                # key identical to the OpenAI protocol's.
                if first_user is None:
                    first_user = text
                last_user = text
            if tool_result is not None:
                last_tool_result = tool_result
        tools = body.get("tools")
        if tools:
            prompt_tokens += count_tokens(json.dumps(tools))
        cache_write, cache_read = self._prompt_cache(body.get("system"), tools)
        stops = stop_sequences(body.get("stop_sequences"), "stop_sequences")
        return ChatRequest(
            wire="anthropic",
            model=str(body.get("model") or ""),
            stream=bool(body.get("stream")),
            prompt_tokens=prompt_tokens,
            assistant_turns=assistant_turns,
            first_user=first_user or "",
            last_user=last_user,
            last_tool_result=last_tool_result,
            tools=",".join(sorted(str(t.get("name")) for t in tools or () if isinstance(t, dict))),
            max_tokens=optional_int(body, "max_tokens"),
            stop_sequences=stops,
            sampling=sampling_of(body, stops),
            cache_write_tokens=cache_write,
            cache_read_tokens=cache_read,
        )

    def _prompt_cache(self, system: Any, tools: Any) -> tuple[int, int]:
        """(tokens written, tokens read) of the prompt cache for this request's prefix."""
        if not (_has_cache_control(system) or _has_cache_control(tools)):
            return 0, 0
        prefix = json.dumps([system, tools], sort_keys=True)
        prefix_tokens = count_tokens(text_of(system)) + (count_tokens(json.dumps(tools)) if tools else 0)
        if prefix in self._cached_prefixes:
            return 0, prefix_tokens
        self._cached_prefixes.add(prefix)
        return prefix_tokens, 0

    @staticmethod
    def _usage(request: ChatRequest, output_tokens: int) -> dict[str, int]:
        cached = request.cache_write_tokens + request.cache_read_tokens
        return {
            "input_tokens": request.prompt_tokens - cached,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": request.cache_write_tokens,
            "cache_read_input_tokens": request.cache_read_tokens,
        }

    @staticmethod
    def _message(
        request: ChatRequest, plan: Plan, content: list[dict[str, Any]], output_tokens: int
    ) -> dict[str, Any]:
        return {
            "id": f"msg_mock_{plan.conversation}_{plan.turn}",
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": AnthropicWire._usage(request, output_tokens),
        }

    def render(self, request: ChatRequest, plan: Plan) -> bytes:
        content: list[dict[str, Any]] = []
        if plan.text:
            content.append({"type": "text", "text": plan.text})
        content.extend(
            {
                "type": "tool_use",
                "id": f"toolu_{plan.turn}_{index}",
                "name": call.name,
                "input": call.arguments,
            }
            for index, call in enumerate(plan.tool_calls)
        )
        message = self._message(request, plan, content, plan.completion_tokens)
        message["stop_reason"] = _STOP_REASONS[plan.finish]
        message["stop_sequence"] = plan.stop_sequence
        return json.dumps(message).encode()

    def stream_events(self, request: ChatRequest, plan: Plan) -> list[StreamEvent]:
        # Like the real API, message_start reports one output token; message_delta has the final count.
        start = self._message(request, plan, [], 1)
        events: list[StreamEvent] = [
            (_sse("message_start", {"type": "message_start", "message": start}), False),
            (_sse("ping", {"type": "ping"}), False),
        ]
        index = 0
        if plan.text_tokens:
            block: dict[str, Any] = {"type": "text", "text": ""}
            events.append(
                (
                    _sse(
                        "content_block_start",
                        {"type": "content_block_start", "index": 0, "content_block": block},
                    ),
                    False,
                )
            )
            prefix, _, suffix = _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}},
            ).partition(b'"text": ""')
            # Splicing tokens into a pre-encoded frame keeps the per-token cost to one json.dumps of a str.
            events.extend(
                (prefix + b'"text": ' + json.dumps(token).encode() + suffix, True)
                for token in plan.text_tokens
            )
            events.append((_sse("content_block_stop", {"type": "content_block_stop", "index": 0}), False))
            index = 1
        for offset, call in enumerate(plan.tool_calls):
            block = {"type": "tool_use", "id": f"toolu_{plan.turn}_{offset}", "name": call.name, "input": {}}
            events.append(
                (
                    _sse(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": block},
                    ),
                    False,
                )
            )
            events.extend(
                (
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": token},
                        },
                    ),
                    True,
                )
                for token in call.arguments_tokens
            )
            events.append((_sse("content_block_stop", {"type": "content_block_stop", "index": index}), False))
            index += 1
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[plan.finish], "stop_sequence": plan.stop_sequence},
            "usage": {"output_tokens": plan.completion_tokens},
        }
        events.append((_sse("message_delta", delta), False))
        events.append((_sse("message_stop", {"type": "message_stop"}), False))
        return events

    def malformed_event(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n'

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return json.dumps(
            {"type": "error", "error": {"type": _ERROR_TYPES[kind], "message": message}}
        ).encode()
