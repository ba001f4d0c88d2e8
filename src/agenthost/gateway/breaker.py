"""Circuit breakers, one per provider endpoint and model.

closed --(N consecutive failed attempts)--> open --(cool-down)--> half-open (one probe call)
half-open --success--> closed;  half-open --failure--> open again.

While open, calls fail at once with `BreakerOpenError` (no request reaches the provider), and a
fallback chain moves on to its next model. The state lives in a `BreakerStore`: in the process by
default (`storage/breakers_memory.py`), or in Redis (`storage/breakers_redis.py`) so that every
replica sees the same breaker.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model

from agenthost.errors import BreakerOpenError, classify
from agenthost.gateway.hooked import HookedModel
from agenthost.observability.metrics import BREAKER_REJECTIONS
from agenthost.storage.protocols import BreakerStore

__all__ = ["BreakerModel", "breaker_key", "counts_as_failure"]


def breaker_key(model: Model) -> str:
    """One breaker per provider endpoint and model."""
    return f"{model.system}:{model.base_url or ''}:{model.model_name}"


def counts_as_failure(exc: BaseException) -> bool:
    """Provider trouble (not a bad request of ours) moves a breaker towards open."""
    return classify(exc).trips_breaker


class BreakerModel(HookedModel):
    """Fails fast while the wrapped model's breaker is open; feeds it every call's outcome."""

    # A stream that fails before its first event is the provider's failure, counted here.
    first_event = True

    def __init__(self, wrapped: Model, store: BreakerStore, *, threshold: int, cooldown: float) -> None:
        super().__init__(wrapped)
        self.store = store
        self.key = breaker_key(wrapped)
        self.threshold = threshold
        self.cooldown = cooldown

    async def before(self) -> None:
        """Admit the call, or refuse it at once while the breaker is open."""
        decision = await self.store.acquire(self.key, self.cooldown)
        if not decision.allowed:
            BREAKER_REJECTIONS.labels(self.key).inc()
            raise BreakerOpenError(self.wrapped.model_name, decision.retry_in)

    async def after(self, token: Any, error: BaseException | None, response: ModelResponse | None) -> None:  # noqa: ARG002
        """A success closes the breaker; provider trouble counts towards opening it."""
        if error is None:
            await self.store.success(self.key)
        elif counts_as_failure(error):
            await self.store.failure(self.key, self.threshold)
