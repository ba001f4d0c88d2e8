"""Circuit breakers, one per provider endpoint and model.

closed --(N consecutive failed attempts)--> open --(cool-down)--> half-open (one probe call)
half-open --success--> closed;  half-open --failure--> open again.

While open, calls fail at once with `BreakerOpenError` (no request reaches the provider), and a
fallback chain moves on to its next model. The state lives in a `BreakerStore`: in the process by
default, or in Redis (`gateway/breaker_redis.py`) so that every replica sees the same breaker.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from agenthost.compat import open_stream_at_first_event
from agenthost.errors import BreakerOpenError, classify
from agenthost.observability.metrics import BREAKER_REJECTIONS

__all__ = [
    "BreakerModel",
    "BreakerOpenError",
    "BreakerStore",
    "Decision",
    "MemoryBreakerStore",
    "breaker_key",
]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Decision:
    """Whether a call may go ahead, and if not, in how many seconds the breaker half-opens."""

    allowed: bool
    state: State
    retry_in: float = 0.0


class BreakerStore(Protocol):
    """Where breaker state lives; every operation is atomic per key."""

    async def acquire(self, key: str, cooldown: float) -> Decision:
        """Admit a call: always when closed; one probe when the cool-down has passed; else refuse."""
        ...

    async def success(self, key: str) -> None:
        """A call succeeded: close the breaker."""
        ...

    async def failure(self, key: str, threshold: int) -> State:
        """A call failed: count it; open the breaker at `threshold` (or at once from half-open)."""
        ...

    async def states(self) -> dict[str, State]:
        """Every known breaker's state (for `/ready` and metrics)."""
        ...


@dataclass
class _Breaker:
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0


class MemoryBreakerStore:
    """Breaker state in this process (the default): each replica learns on its own."""

    def __init__(self) -> None:
        self._breakers: dict[str, _Breaker] = {}

    async def acquire(self, key: str, cooldown: float) -> Decision:
        breaker = self._breakers.setdefault(key, _Breaker())
        if breaker.state == "closed":
            return Decision(allowed=True, state="closed")
        now = time.monotonic()
        remaining = breaker.opened_at + cooldown - now
        if remaining <= 0:
            # This caller is the probe; others keep failing fast. A probe that never reported back
            # (its caller was cancelled) is replaced after another cool-down.
            breaker.state = "half_open"
            breaker.opened_at = now
            return Decision(allowed=True, state="half_open")
        return Decision(allowed=False, state=breaker.state, retry_in=remaining)

    async def success(self, key: str) -> None:
        self._breakers[key] = _Breaker()

    async def failure(self, key: str, threshold: int) -> State:
        breaker = self._breakers.setdefault(key, _Breaker())
        breaker.failures += 1
        if breaker.state == "half_open" or breaker.failures >= threshold:
            breaker.state = "open"
            breaker.opened_at = time.monotonic()
        return breaker.state

    async def states(self) -> dict[str, State]:
        return {key: breaker.state for key, breaker in self._breakers.items()}


def breaker_key(model: Model) -> str:
    """One breaker per provider endpoint and model."""
    return f"{model.system}:{model.base_url or ''}:{model.model_name}"


def counts_as_failure(exc: BaseException) -> bool:
    """Provider trouble (not a bad request of ours) moves a breaker towards open."""
    return classify(exc).trips_breaker


class BreakerModel(WrapperModel):
    """Fails fast while the wrapped model's breaker is open; feeds it every call's outcome."""

    def __init__(self, wrapped: Model, store: BreakerStore, *, threshold: int, cooldown: float) -> None:
        super().__init__(wrapped)
        self.store = store
        self.key = breaker_key(wrapped)
        self.threshold = threshold
        self.cooldown = cooldown

    async def _admit(self) -> None:
        decision = await self.store.acquire(self.key, self.cooldown)
        if not decision.allowed:
            BREAKER_REJECTIONS.labels(self.key).inc()
            raise BreakerOpenError(self.wrapped.model_name, decision.retry_in)

    async def _record(self, exc: BaseException | None) -> None:
        if exc is None:
            await self.store.success(self.key)
        elif counts_as_failure(exc):
            await self.store.failure(self.key, self.threshold)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        await self._admit()
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except Exception as exc:
            await self._record(exc)
            raise
        await self._record(None)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        await self._admit()
        try:
            async with open_stream_at_first_event(
                self.wrapped, messages, model_settings, model_request_parameters, run_context
            ) as response:
                yield response
        except Exception as exc:
            await self._record(exc)
            raise
        await self._record(None)
