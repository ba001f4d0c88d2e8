"""The gateway model of a configured name: its fallback chain, each link retried and guarded.

    ChainModel
      └─ FallbackModel (pydantic-ai), in order: [models.X], then each of X's `fallbacks`
           └─ RetryModel ─ BreakerModel ─ MeteredModel ─ provider model (SDK retries off: the gateway retries)

When every link fails, `ChainModel` answers with `[gateway] degradation_message` if one is set,
otherwise raises `AllModelsUnavailableError` (a `ModelAPIError`, so a run records it as the failed
model step, code `all_models_unavailable`). A chain of one model raises that model's own error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.exceptions import FallbackExceptionGroup, ModelAPIError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from agenthost.config.gateway import GatewaySettings
from agenthost.errors import AllModelsUnavailableError
from agenthost.gateway.breaker import BreakerModel
from agenthost.gateway.metering import MeteredModel
from agenthost.gateway.pricing import PriceBook
from agenthost.gateway.retry import RetryModel, RetryPolicy
from agenthost.storage.protocols import BreakerStore

__all__ = ["AllModelsUnavailableError", "ChainModel", "guard", "primary_model"]

DEGRADED_MODEL_NAME = "agenthost:degraded"


def guard(model: Model, gateway: GatewaySettings, breakers: BreakerStore, prices: PriceBook) -> Model:
    """One link of a chain: retries around a circuit breaker around the metered provider model."""
    breaker = BreakerModel(
        MeteredModel(model, prices),
        breakers,
        threshold=gateway.breaker_failure_threshold,
        cooldown=gateway.breaker_cooldown_seconds,
    )
    policy = RetryPolicy(
        max_attempts=gateway.retry_max_attempts,
        initial_delay=gateway.retry_initial_delay,
        max_delay=gateway.retry_max_delay,
        max_total_seconds=gateway.retry_max_total_seconds,
        retry_after_max=gateway.retry_after_max_seconds,
    )
    return RetryModel(breaker, policy)


class ChainModel(WrapperModel):
    """A configured model name: its links in order, a clean error (or degradation) when all fail."""

    def __init__(self, name: str, links: list[Model], degradation_message: str | None = None) -> None:
        super().__init__(links[0] if len(links) == 1 else FallbackModel(*links))
        self.name = name
        self.links = links
        self.degradation_message = degradation_message

    def _unavailable(self, exc: BaseException) -> BaseException:
        if isinstance(exc, FallbackExceptionGroup):
            errors = [f"{type(error).__name__}: {error}" for error in exc.exceptions]
            return AllModelsUnavailableError(self.name, errors)
        return exc

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        try:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        except (FallbackExceptionGroup, ModelAPIError) as exc:
            if self.degradation_message is None:
                raise self._unavailable(exc) from exc
            return ModelResponse(parts=[TextPart(self.degradation_message)], model_name=DEGRADED_MODEL_NAME)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        stream = self.wrapped.request_stream(messages, model_settings, model_request_parameters, run_context)
        try:
            response = await stream.__aenter__()
        except (FallbackExceptionGroup, ModelAPIError) as exc:
            if self.degradation_message is None:
                raise self._unavailable(exc) from exc
        else:
            # A failure after the stream was handed over is the stream's own (an explicit error).
            try:
                yield response
            except BaseException as exc:
                await stream.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            await stream.__aexit__(None, None, None)
            return
        # Every model failed before streaming anything: stream the degradation message instead.
        message = self.degradation_message
        degraded = FunctionModel(stream_function=_stream_text(message), model_name=DEGRADED_MODEL_NAME)
        async with degraded.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as out:
            yield out


def _stream_text(text: str) -> Any:
    async def stream(_messages: list[ModelMessage], _info: Any) -> AsyncGenerator[str]:
        yield text

    return stream


def primary_model(model: Model) -> Model:
    """The provider model a gateway model calls first (through wrappers and fallback chains)."""
    while True:
        if isinstance(model, WrapperModel):
            model = model.wrapped
        elif isinstance(model, FallbackModel):
            model = model.models[0]
        else:
            return model
