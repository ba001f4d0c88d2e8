"""Retries of model calls: exponential backoff with full jitter (tenacity), honouring `Retry-After`.

Retried: rate limits (429), server errors (5xx, 529 overloaded), connection errors, timeouts and
responses that could not be decoded. Never retried: other 4xx (the request itself is wrong), an
exhausted quota, an open circuit breaker, and a `Retry-After` longer than the configured maximum
(the call fails over to the next model instead of waiting). Attempts and total time are bounded.

A stream is retried only until it produces its first event; once text has reached the caller, a
failure is the caller's to handle (the fallback chain or an explicit error event).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelHTTPError,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from agenthost.compat import open_stream_at_first_event
from agenthost.errors import classify

__all__ = ["RetryModel", "RetryPolicy", "is_retryable", "retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """How a model call is retried (from `[gateway]`)."""

    max_attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_total_seconds: float = 30.0
    retry_after_max: float = 30.0


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the provider asked to wait: pydantic-ai's parse, else a fractional header it skipped."""
    if not isinstance(exc, ModelAPIError):
        return None
    if exc.retry_after is not None:
        return float(exc.retry_after)
    headers = exc.headers if isinstance(exc, ModelHTTPError) else None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = (headers or {}).get(name)
        if value is not None:
            try:
                return max(float(value) * scale, 0.0)
            except ValueError:
                continue
    return None


def is_retryable(exc: BaseException, policy: RetryPolicy | None = None) -> bool:
    """Whether trying the same call again may succeed (and, with `policy`, is worth the wait the
    provider asked for)."""
    if not classify(exc).retryable:
        return False
    limit = policy.retry_after_max if policy else None
    wait = retry_after(exc)
    return not (limit is not None and wait is not None and wait > limit)


class _Wait:
    """Full-jitter exponential backoff, or the provider's `Retry-After` when it gave one."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(multiplier=policy.initial_delay, max=policy.max_delay)

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        wait = retry_after(outcome.exception()) if outcome is not None else None
        return wait if wait is not None else float(self._jitter(state))


class RetryModel(WrapperModel):
    """Retries the wrapped model's calls by `RetryPolicy`."""

    def __init__(self, wrapped: Any, policy: RetryPolicy) -> None:
        super().__init__(wrapped)
        self.policy = policy

    def _retrying(self) -> AsyncRetrying:
        policy = self.policy
        return AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_total_seconds),
            wait=_Wait(policy),
            retry=retry_if_exception(lambda exc: is_retryable(exc, policy)),
            reraise=True,
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        async for attempt in self._retrying():
            with attempt:
                return await self.wrapped.request(messages, model_settings, model_request_parameters)
        raise AssertionError  # pragma: no cover - tenacity either returns or re-raises

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        opened = None
        async for attempt in self._retrying():
            with attempt:
                opened = open_stream_at_first_event(
                    self.wrapped, messages, model_settings, model_request_parameters, run_context
                )
                response = await opened.__aenter__()
        assert opened is not None
        try:
            yield response
        except BaseException as exc:
            await opened.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await opened.__aexit__(None, None, None)
