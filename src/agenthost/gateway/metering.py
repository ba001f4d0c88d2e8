"""Metering: every request that reaches a provider is counted, timed, and its tokens and cost
added to the Prometheus series (`observability/metrics.py`).

It wraps the provider model itself (innermost in a chain link), so each retry attempt and each
fallback model is seen separately, and calls refused by an open breaker never count as requests.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model

from agenthost.gateway.hooked import HookedModel
from agenthost.gateway.pricing import PriceBook
from agenthost.observability.metrics import (
    MODEL_COST,
    MODEL_LATENCY,
    MODEL_REQUESTS,
    MODEL_TOKENS,
    outcome_of,
)

__all__ = ["MeteredModel"]


class MeteredModel(HookedModel):
    """Counts, times and prices the wrapped provider model's requests."""

    def __init__(self, wrapped: Model, prices: PriceBook) -> None:
        super().__init__(wrapped)
        self.prices = prices
        self.metric_label = wrapped.model_name

    async def before(self) -> float:
        return time.perf_counter()

    async def after(self, token: Any, error: BaseException | None, response: ModelResponse | None) -> None:
        self._observe(token, error, response)

    def _observe(self, started: float, exc: BaseException | None, response: ModelResponse | None) -> None:
        MODEL_REQUESTS.labels(self.metric_label, outcome_of(exc)).inc()
        MODEL_LATENCY.labels(self.metric_label).observe(time.perf_counter() - started)
        if response is None:
            return
        usage = response.usage
        for kind, tokens in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ):
            if tokens:
                MODEL_TOKENS.labels(self.metric_label, kind).inc(tokens)
        price = self.prices.price(response.model_name or self.metric_label, response.provider_name, usage)
        if price.nanousd:
            MODEL_COST.labels(self.metric_label).inc(price.nanousd / 1e9)
