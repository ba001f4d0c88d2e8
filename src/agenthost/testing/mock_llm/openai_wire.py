"""The OpenAI Chat Completions wire format (``POST /v1/chat/completions``), streaming and not."""

from __future__ import annotations

import json
import time
from typing import Any

from agenthost.testing.mock_llm.exchange import (
    ChatRequest,
    ErrorKind,
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

_ERRORS: dict[ErrorKind, tuple[str, str]] = {
    "invalid_request": ("invalid_request_error", "invalid_request"),
    "rate_limit": ("rate_limit_error", "rate_limit_exceeded"),
    "server_error": ("server_error", "server_error"),
    "overloaded": ("server_error", "overloaded"),
}
_DONE = b"data: [DONE]\n\n"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _tool_call_tokens(tool_calls: Any) -> int:
    tokens = 0
    for call in tool_calls or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            tokens += count_tokens(str(function.get("arguments") or ""))
    return tokens


def _finish(plan: Plan) -> str:
    # OpenAI says `stop` for a stop sequence as for a natural end.
    return "stop" if plan.finish == "stop_sequence" else plan.finish


class OpenAIWire:
    """Parses Chat Completions requests and renders :class:`Plan` objects as OpenAI responses."""

    name: WireName = "openai"

    def parse(self, body: dict[str, Any]) -> ChatRequest:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise MockRequestError("`messages` must be a list")
        prompt_tokens = 0
        first_user: str | None = None
        last_user = ""
        last_tool_result = ""
        assistant_turns = 0
        for message in messages:
            if not isinstance(message, dict):
                raise MockRequestError("each message must be an object")
            role = message.get("role")
            text = text_of(message.get("content"))
            prompt_tokens += count_tokens(text)
            if role == "user":
                if first_user is None:
                    first_user = text
                last_user = text
            elif role == "assistant":
                assistant_turns += 1
                prompt_tokens += _tool_call_tokens(message.get("tool_calls"))
            elif role in {"tool", "function"}:
                last_tool_result = text
        tools = body.get("tools")
        if tools:
            prompt_tokens += count_tokens(json.dumps(tools))
        stream_options = body.get("stream_options")
        stops = stop_sequences(body.get("stop"), "stop")
        return ChatRequest(
            wire="openai",
            model=str(body.get("model") or ""),
            stream=bool(body.get("stream")),
            prompt_tokens=prompt_tokens,
            assistant_turns=assistant_turns,
            first_user=first_user or "",
            last_user=last_user,
            last_tool_result=last_tool_result,
            tools=",".join(
                sorted(str((t.get("function") or {}).get("name")) for t in tools or () if isinstance(t, dict))
            ),
            max_tokens=optional_int(body, "max_completion_tokens", "max_tokens"),
            stop_sequences=stops,
            sampling=sampling_of(body, stops),
            include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
        )

    @staticmethod
    def _usage(request: ChatRequest, plan: Plan) -> dict[str, int]:
        return {
            "prompt_tokens": request.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": request.prompt_tokens + plan.completion_tokens,
        }

    @staticmethod
    def _response_id(plan: Plan) -> str:
        return f"chatcmpl-mock-{plan.conversation}-{plan.turn}"

    def render(self, request: ChatRequest, plan: Plan) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text if plan.text or not plan.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if plan.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{plan.turn}_{index}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for index, call in enumerate(plan.tool_calls)
            ]
        response = {
            "id": self._response_id(plan),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(plan)}],
            "usage": self._usage(request, plan),
            "system_fingerprint": "fp_agenthost_mock",
        }
        return json.dumps(response).encode()

    def stream_events(self, request: ChatRequest, plan: Plan) -> list[StreamEvent]:
        head: dict[str, Any] = {
            "id": self._response_id(plan),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": "fp_agenthost_mock",
        }
        if request.include_usage:
            # The real API puts `usage: null` on every chunk but the last when usage is requested.
            head["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**head, "choices": [choice]})

        # Token chunks dominate a stream; splice each token into a pre-encoded frame instead of
        # building and serialising a dict per token.
        prefix, _, suffix = chunk({"content": ""}).partition(b'"content": ""')

        def token_chunk(token: str) -> bytes:
            return prefix + b'"content": ' + json.dumps(token).encode() + suffix

        events: list[StreamEvent] = [
            (chunk({"role": "assistant", "content": "" if plan.text or not plan.tool_calls else None}), False)
        ]
        events.extend((token_chunk(token), True) for token in plan.text_tokens)
        for index, call in enumerate(plan.tool_calls):
            start = {
                "index": index,
                "id": f"call_{plan.turn}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append((chunk({"tool_calls": [start]}), False))
            events.extend(
                (chunk({"tool_calls": [{"index": index, "function": {"arguments": token}}]}), True)
                for token in call.arguments_tokens
            )
        events.append((chunk({}, _finish(plan)), False))
        if request.include_usage:
            events.append((_sse({**head, "choices": [], "usage": self._usage(request, plan)}), False))
        events.append((_DONE, False))
        return events

    def malformed_event(self) -> bytes:
        return b'data: {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": [{\n\n'

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        error_type, code = _ERRORS[kind]
        return json.dumps(
            {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        ).encode()
