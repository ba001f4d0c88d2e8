"""A wrapper model that runs the same code around every call, made whole or streamed.

Gateway features that only watch or admit calls (metering, circuit breakers) implement `before`
and `after`; `HookedModel` applies them to `request` and `request_stream` alike, so no feature
writes the two call paths again.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from agenthost.compat import open_stream_at_first_event

__all__ = ["HookedModel"]


class HookedModel(WrapperModel):
    """Calls `before()` ahead of each call and `after(token, error, response)` when it ends."""

    first_event: ClassVar[bool] = False
    """Open streams only once the provider sent their first event, so that a failure before any
    output is the call's failure (not one of the stream handed over)."""

    async def before(self) -> Any:
        """Runs ahead of the call; what it returns is handed to `after`. May raise to refuse it."""
        return None

    async def after(self, token: Any, error: BaseException | None, response: ModelResponse | None) -> None:
        """Runs when the call ended: with its error, or with its (complete) response."""

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        token = await self.before()
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except Exception as exc:
            await self.after(token, exc, None)
            raise
        await self.after(token, None, response)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        token = await self.before()
        arguments = (messages, model_settings, model_request_parameters, run_context)
        opened = (
            open_stream_at_first_event(self.wrapped, *arguments)
            if self.first_event
            else self.wrapped.request_stream(*arguments)
        )
        try:
            async with opened as response:
                yield response
        except Exception as exc:
            await self.after(token, exc, None)
            raise
        await self.after(token, None, response.get())
