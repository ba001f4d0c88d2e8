"""Context overflow: a history longer than the model's context budget is cut down before the call,
by the configured strategy, instead of failing at the provider.

The budget is the model's context window (`[models.<name>] context_window`, else genai-prices'
figure, else `[local] n_ctx` for the local model) minus the tokens kept for the answer
(`max_tokens` of the call, else `[gateway] context_reserve_tokens`). The history's size is an
estimate (about four characters per token, plus a few per part): conservative for English.

Strategies (`[gateway] context_overflow`, or per model):

* `truncate`: drop the oldest exchanges. The first request (system prompt and the opening ask)
  and the latest exchange are kept; a tool call is never separated from its result.
* `summarize`: the dropped exchanges are replaced by a summary written by the same model (one
  extra call, priced with the step that needed it).
* `error`: refuse with `context_length_exceeded` before calling the provider.

When even the first request plus the latest exchange do not fit, the call fails with
`context_length_exceeded` (a client error: retrying cannot help).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Literal

from pydantic_ai import messages as _messages
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from agenthost.errors import ContextOverflowError

__all__ = [
    "ContextModel",
    "ContextOverflowError",
    "OverflowStrategy",
    "estimate_tokens",
    "side_calls",
    "trim",
]

OverflowStrategy = Literal["truncate", "summarize", "error"]
_CHARS_PER_TOKEN = 4
_TOKENS_PER_PART = 4
_SUMMARY_PROMPT = (
    "Summarise the conversation below for the assistant that continues it: keep every fact, "
    "decision, name, number, open question and tool result that may matter later. Be concise."
)
_SUMMARY_MAX_TOKENS = 512

_side_calls: ContextVar[list[_messages.ModelResponse] | None] = ContextVar(
    "agenthost_side_calls", default=None
)


@contextmanager
def side_calls() -> Iterator[list[_messages.ModelResponse]]:
    """Collect the extra model responses (summaries) made on behalf of the calls in this block,
    so that their cost is added to the step that needed them."""
    collected: list[_messages.ModelResponse] = []
    token = _side_calls.set(collected)
    try:
        yield collected
    finally:
        _side_calls.reset(token)


def _part_tokens(part: Any) -> int:
    content = getattr(part, "content", None)
    if isinstance(part, _messages.ToolCallPart):
        text = part.tool_name + part.args_as_json_str()
    elif isinstance(content, str):
        text = content
    elif content is None:
        text = ""
    else:
        text = json.dumps(content, default=str)
    return -(-len(text) // _CHARS_PER_TOKEN) + _TOKENS_PER_PART


def estimate_tokens(messages: list[_messages.ModelMessage], parameters: ModelRequestParameters) -> int:
    """An estimate of the prompt tokens of a request: messages, instructions and tool schemas."""
    total = sum(_part_tokens(part) for message in messages for part in message.parts)
    instructions = getattr(messages[-1], "instructions", None) if messages else None
    total += len(instructions or "") // _CHARS_PER_TOKEN
    for tool in [*parameters.function_tools, *parameters.output_tools]:
        schema = json.dumps(tool.parameters_json_schema)
        total += (len(tool.name) + len(tool.description or "") + len(schema)) // _CHARS_PER_TOKEN
    return total


def _exchanges(messages: list[_messages.ModelMessage]) -> list[list[_messages.ModelMessage]]:
    """The messages after the first, grouped as (response, the request that follows it)."""
    groups: list[list[_messages.ModelMessage]] = []
    for message in messages[1:]:
        if isinstance(message, _messages.ModelResponse) or not groups:
            groups.append([message])
        else:
            groups[-1].append(message)
    return groups


def trim(
    messages: list[_messages.ModelMessage], parameters: ModelRequestParameters, budget: int
) -> tuple[list[_messages.ModelMessage], list[_messages.ModelMessage]] | None:
    """(kept, dropped) so that the kept history fits `budget`, or None when nothing can be dropped
    to make it fit. Keeps the first request and the latest exchange; drops oldest exchanges whole."""
    groups = _exchanges(messages)
    fixed = estimate_tokens([messages[0], *(groups[-1] if groups else [])], parameters)
    if fixed > budget:
        return None
    sizes = [estimate_tokens(group, ModelRequestParameters()) for group in groups[:-1]]
    room = budget - fixed
    keep_from = len(sizes)
    while keep_from > 0 and sizes[keep_from - 1] <= room:
        room -= sizes[keep_from - 1]
        keep_from -= 1
    dropped = [m for group in groups[:keep_from] for m in group]
    kept = [messages[0], *(m for group in groups[keep_from:] for m in group)]
    return kept, dropped


def _transcript(messages: list[_messages.ModelMessage]) -> str:
    lines: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, _messages.ToolCallPart):
                lines.append(f"assistant called {part.tool_name}({part.args_as_json_str()})")
            elif isinstance(part, _messages.ToolReturnPart):
                lines.append(f"tool {part.tool_name} returned: {part.model_response_str()}")
            elif isinstance(part, _messages.TextPart):
                lines.append(f"assistant: {part.content}")
            elif isinstance(part, _messages.UserPromptPart) and isinstance(part.content, str):
                lines.append(f"user: {part.content}")
    return "\n".join(lines)


class ContextModel(WrapperModel):
    """Fits each request into the wrapped model's context window by the configured strategy."""

    def __init__(
        self, wrapped: Model, *, context_window: int, reserve_tokens: int, strategy: OverflowStrategy
    ) -> None:
        super().__init__(wrapped)
        self.window_tokens = context_window
        self.reserve_tokens = reserve_tokens
        self.strategy = strategy

    def _budget(self, settings: ModelSettings | None) -> int:
        reserve: int = (settings or {}).get("max_tokens") or self.reserve_tokens
        return self.window_tokens - reserve

    async def _fit(
        self,
        messages: list[_messages.ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> list[_messages.ModelMessage]:
        budget = self._budget(settings)
        estimate = estimate_tokens(messages, parameters)
        if estimate <= budget:
            return messages
        name = self.wrapped.model_name
        what = f"the request (~{estimate} tokens) exceeds the context budget of {name} ({budget} tokens)"
        if self.strategy == "error":
            raise ContextOverflowError(name, what)
        trimmed = trim(messages, parameters, budget)
        if trimmed is None:
            raise ContextOverflowError(name, f"{what}, even with all earlier exchanges dropped")
        kept, dropped = trimmed
        if self.strategy == "truncate" or not dropped:
            return kept
        return await self._summarised(kept, dropped, parameters, budget)

    async def _summarised(
        self,
        kept: list[_messages.ModelMessage],
        dropped: list[_messages.ModelMessage],
        parameters: ModelRequestParameters,
        budget: int,
    ) -> list[_messages.ModelMessage]:
        first = kept[0]
        assert isinstance(first, _messages.ModelRequest)
        # The opening request's own ask joins the summary; its system prompt stays as it was.
        system = [p for p in first.parts if isinstance(p, _messages.SystemPromptPart)]
        rest = [p for p in first.parts if not isinstance(p, _messages.SystemPromptPart)]
        source = [_messages.ModelRequest(parts=rest), *dropped] if rest else dropped
        request = _messages.ModelRequest(
            parts=[_messages.SystemPromptPart(_SUMMARY_PROMPT), _messages.UserPromptPart(_transcript(source))]
        )
        response = await self.wrapped.request(
            [request], ModelSettings(max_tokens=_SUMMARY_MAX_TOKENS), ModelRequestParameters()
        )
        if (collected := _side_calls.get()) is not None:
            collected.append(response)
        summary = " ".join(p.content for p in response.parts if isinstance(p, _messages.TextPart))
        note = _messages.UserPromptPart(f"Summary of the earlier conversation:\n{summary}")
        opening = replace(first, parts=[*system, note])
        fitted = [opening, *kept[1:]]
        if estimate_tokens(fitted, parameters) > budget:
            # The summary itself is too long for what is left: fall back to plain truncation.
            return kept
        return fitted

    async def request(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> _messages.ModelResponse:
        fitted = await self._fit(messages, model_settings, model_request_parameters)
        return await self.wrapped.request(fitted, model_settings, model_request_parameters)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[_messages.ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        fitted = await self._fit(messages, model_settings, model_request_parameters)
        async with self.wrapped.request_stream(
            fitted, model_settings, model_request_parameters, run_context
        ) as response:
            yield response
