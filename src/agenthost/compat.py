"""The private internals of dependencies that agenthost relies on, in one place.

Each function here reaches into something a dependency does not promise to keep (a name with a
leading underscore). `tests/test_compat.py` exercises every one of them against the installed
versions, so an upgrade that moves one fails there, with the name of what moved, instead of
somewhere deep in a run. Nothing else in agenthost may touch a dependency's private names.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_ai._parts_manager import ModelResponsePartsManager
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
    from pydantic_ai.settings import ModelSettings
    from pydantic_ai.tools import RunContext

__all__ = ["AgentPrompts", "agent_prompts", "open_stream_at_first_event", "parts_manager"]


def open_stream_at_first_event(
    model: Model,
    messages: list[ModelMessage],
    settings: ModelSettings | None,
    parameters: ModelRequestParameters,
    run_context: RunContext[Any] | None,
) -> AbstractAsyncContextManager[StreamedResponse]:
    """`model.request_stream(...)`, entered only once the provider sent its first event.

    A provider can accept a streamed request and fail before producing anything; waiting for the
    first event raises that failure while the call can still be retried or fall back. The event is
    replayed to the consumer. (pydantic-ai `_fallback.request_stream_until_first_event`, which its
    `FallbackModel` uses for the same purpose.)
    """
    from pydantic_ai._fallback import request_stream_until_first_event  # noqa: PLC0415

    return request_stream_until_first_event(model, None, messages, settings, parameters, run_context)


def parts_manager(response: StreamedResponse) -> ModelResponsePartsManager:
    """The parts manager a `StreamedResponse` subclass feeds its events through (pydantic-ai's own
    model implementations use `self._parts_manager` the same way)."""
    return response._parts_manager  # noqa: SLF001


@dataclass(frozen=True)
class AgentPrompts:
    """The prompts an agent was built with, as `Agent.__init__` stores them."""

    readable: bool
    """False for agents that keep no prompts of their own (e.g. wrapper agents)."""
    system_prompts: tuple[Any, ...]
    """Literal system prompts (strings)."""
    instructions: tuple[Any, ...]
    """Instructions: strings, templates, functions, or runners holding one in `.instruction`."""
    system_prompt_functions: tuple[Any, ...]
    """System prompt functions, in runners holding each in `.function`."""


def agent_prompts(agent: Any) -> AgentPrompts:
    """The instructions and system prompts of a `pydantic_ai.Agent`; pydantic-ai has no public
    accessor for them (`readable` is False for agents that do not keep them, e.g. wrappers)."""
    return AgentPrompts(
        readable=any(hasattr(agent, name) for name in ("_instructions", "_system_prompts")),
        system_prompts=tuple(getattr(agent, "_system_prompts", ())),
        instructions=tuple(getattr(agent, "_instructions", ())),
        system_prompt_functions=tuple(getattr(agent, "_system_prompt_functions", ())),
    )
