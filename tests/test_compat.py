"""Every private name of a dependency that agenthost relies on (`agenthost.compat`) still works in
the installed versions: an upgrade that moves one fails here, naming it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, PartStartEvent, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from agenthost import compat
from agenthost.gateway.cache import CachedStreamedResponse


async def _stream(_messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    yield "first "
    yield "second"


async def test_a_stream_opens_at_its_first_event_and_replays_it() -> None:
    """`open_stream_at_first_event` (pydantic-ai `_fallback.request_stream_until_first_event`)
    hands over a stream whose first event was already received, and the consumer still gets it."""
    model = FunctionModel(stream_function=_stream)
    request = [ModelRequest(parts=[UserPromptPart("hi")])]
    async with compat.open_stream_at_first_event(
        model, request, None, ModelRequestParameters(), None
    ) as stream:
        events = [event async for event in stream]
    assert isinstance(events[0], PartStartEvent)
    assert stream.get().parts == [TextPart("first second")]


async def test_a_streamed_response_subclass_feeds_the_parts_manager() -> None:
    """`parts_manager` (pydantic-ai `StreamedResponse._parts_manager`) is what a custom streamed
    response (agenthost's cache hits and batch answers) builds its parts with."""
    stored = CachedStreamedResponse(ModelRequestParameters())
    manager = compat.parts_manager(stored)
    list(manager.handle_text_delta(vendor_part_id=0, content="hello"))
    assert manager.get_parts() == [TextPart("hello")]


def test_an_agents_prompts_can_be_read() -> None:
    """`agent_prompts` (pydantic-ai `Agent._system_prompts`, `_instructions`,
    `_system_prompt_functions`) returns what the agent was built with."""
    agent = Agent("test", system_prompt="You are terse.", instructions="Answer in French.")

    @agent.system_prompt
    def today(ctx: RunContext[None]) -> str:
        return "Today is Monday."

    prompts = compat.agent_prompts(agent)
    assert prompts.readable
    assert prompts.system_prompts == ("You are terse.",)
    assert any("Answer in French." in repr(item) for item in prompts.instructions)
    functions = [getattr(runner, "function", runner) for runner in prompts.system_prompt_functions]
    assert today in functions


def test_something_that_is_not_an_agent_has_no_readable_prompts() -> None:
    assert not compat.agent_prompts(object()).readable
