"""Prices of model calls, from genai-prices' bundled data (never fetched at run time).

Amounts are integer nano-dollars (1e-9 USD) so that sums stay exact. Every price carries a
status: `priced`, `free` (the local model), or `unknown_model` (no price known: the amount is 0
and the status says so, never a silent zero).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genai_prices import calc_price
from pydantic_ai.messages import ModelResponse
from pydantic_ai.usage import RequestUsage

from agenthost.records import CallRecord, Cost, CostStatus

if TYPE_CHECKING:
    from agenthost.config.models import ModelConfig, PriceOverride

__all__ = [
    "CACHE_PROVIDER",
    "CostStatus",
    "Price",
    "PriceBook",
    "call_fields",
    "combine_status",
    "context_window_of",
    "price_call",
]

_NANO = Decimal(1_000_000_000)
CACHE_PROVIDER = "agenthost-cache"
"""The provider name of answers from the response cache (priced 0, status `cached`)."""
_FREE_PROVIDERS = frozenset({"local", "function", "test"})
# The counts genai-prices may read from a usage (every field but the free-form `details` and `cost`).
_USAGE_COUNTS = tuple(f.name for f in fields(RequestUsage) if f.name not in {"details", "cost"})


@dataclass(frozen=True)
class Price:
    """The price of one model call."""

    nanousd: int
    status: CostStatus

    @property
    def usd(self) -> Decimal:
        return Decimal(self.nanousd) / _NANO


@dataclass(frozen=True)
class PriceBook:
    """Price overrides from `[models.<name>.price]`, by provider model id; genai-prices for the rest."""

    overrides: dict[str, PriceOverride] = field(default_factory=dict)

    batch_price: float = 0.5
    """A call answered through a provider batch API costs this fraction of list price."""

    @classmethod
    def from_models(cls, models: Iterable[ModelConfig], batch_price: float = 0.5) -> PriceBook:
        return cls({model.model: model.price for model in models if model.price is not None}, batch_price)

    def of(self, response: ModelResponse, model_name: str = "") -> Price:
        """The price of one model response (at the batch rate when it came from a batch)."""
        price = self.price(response.model_name or model_name, response.provider_name, response.usage)
        if (response.provider_details or {}).get("batch") and price.nanousd:
            return Price(round(price.nanousd * self.batch_price), price.status)
        return price

    def call(self, response: ModelResponse, *also: ModelResponse) -> CallRecord:
        """What the ledger keeps of a call: model, provider, whether it came from the response
        cache, tokens by kind, and its price (with `also`'s: context summaries). Without savings:
        they are measured against an agent's model (`costs.savings.call_record`)."""
        price = self.total(self.of(call) for call in [response, *also])
        return CallRecord(**call_fields(response), cost=Cost(nanousd=price.nanousd, status=price.status))

    @staticmethod
    def total(prices: Iterable[Price]) -> Price:
        """The sum of several calls' prices, with their combined status."""
        nanousd = 0
        status: CostStatus = "none"
        for price in prices:
            nanousd += price.nanousd
            status = combine_status(status, price.status)
        return Price(nanousd, status)

    def price(self, model_name: str, provider: str | None, usage: RequestUsage) -> Price:
        override = self.overrides.get(model_name)
        if override is None:
            return price_call(model_name, provider, usage)
        return Price(_override_nanousd(override, usage), "priced")


def _override_nanousd(price: PriceOverride, usage: RequestUsage) -> int:
    """Exact nano-dollars: USD per million tokens is nano-dollars per thousandth of a token."""
    per_mtok = {
        "input": Decimal(str(price.input_per_mtok)),
        "output": Decimal(str(price.output_per_mtok)),
        "read": Decimal(
            str(price.cache_read_per_mtok if price.cache_read_per_mtok is not None else price.input_per_mtok)
        ),
        "write": Decimal(
            str(
                price.cache_write_per_mtok if price.cache_write_per_mtok is not None else price.input_per_mtok
            )
        ),
    }
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    total = (
        uncached * per_mtok["input"]
        + usage.cache_read_tokens * per_mtok["read"]
        + usage.cache_write_tokens * per_mtok["write"]
        + usage.output_tokens * per_mtok["output"]
    )
    return int((total * 1000).to_integral_value())


def call_fields(response: ModelResponse) -> dict[str, Any]:
    """A call's model, provider, whether it came from the response cache, and tokens by kind."""
    usage = response.usage
    return {
        "model": response.model_name,
        "provider": response.provider_name,
        "cached": response.provider_name == CACHE_PROVIDER,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def price_call(model_name: str, provider: str | None, usage: RequestUsage) -> Price:
    """Price one call's usage from genai-prices' bundled data.

    Example:
        >>> price_call("gpt-4o-mini", "openai", RequestUsage(input_tokens=1000, output_tokens=500))
        Price(nanousd=450000, status='priced')
    """
    if provider == CACHE_PROVIDER:
        return Price(0, "cached")
    if provider in _FREE_PROVIDERS:
        return Price(0, "free")
    counts = tuple(getattr(usage, name) for name in _USAGE_COUNTS)
    return _genai_price(model_name, provider, counts, datetime.now(UTC).date())


@functools.lru_cache(maxsize=4096)
def _genai_price(model_name: str, provider: str | None, counts: tuple[Any, ...], _day: date) -> Price:
    """genai-prices' price for these token counts (a few hundred microseconds each, so one call
    priced for metrics, its step, the ledger and savings is computed once); the day is in the key
    because prices change on dates."""
    usage = RequestUsage(**dict(zip(_USAGE_COUNTS, counts, strict=True)))
    try:
        calc = calc_price(usage, model_name, provider_id=provider)
    except LookupError:
        try:
            # OpenAI-compatible endpoints serve other vendors' models under provider "openai".
            calc = calc_price(usage, model_name)
        except LookupError:
            return Price(0, "unknown_model")
    return Price(int((calc.total_price * _NANO).to_integral_value()), "priced")


def context_window_of(model_name: str, provider: str | None) -> int | None:
    """The model's context window in tokens according to genai-prices, or None when unknown."""
    for provider_id in (provider, None) if provider else (None,):
        try:
            window: int | None = calc_price(
                RequestUsage(), model_name, provider_id=provider_id
            ).model.context_window
        except LookupError:
            continue
        return window
    return None


def combine_status(current: CostStatus, new: CostStatus) -> CostStatus:
    """The cost status of a run from the statuses of its calls."""
    if current in ("none", new):
        return new
    # A cached or free call costs nothing and says nothing about the other calls' prices.
    if new in ("free", "cached"):
        return current
    if current in ("free", "cached"):
        return new
    if "unknown_model" in (current, new) or current == "partial":
        return "partial" if "priced" in (current, new) or current == "partial" else "unknown_model"
    return "priced"
