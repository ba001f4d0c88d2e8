"""Prices of model calls, from genai-prices' bundled data (never fetched at run time).

Amounts are integer nano-dollars (1e-9 USD) so that sums stay exact. Every price carries a
status: `priced`, `free` (the local model), or `unknown_model` (no price known: the amount is 0
and the status says so, never a silent zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from genai_prices import calc_price
from pydantic_ai.usage import RequestUsage

__all__ = ["CostStatus", "Price", "combine_status", "price_call"]

CostStatus = Literal["none", "priced", "free", "unknown_model", "partial"]
_NANO = Decimal(1_000_000_000)
_FREE_PROVIDERS = frozenset({"local", "function", "test"})


@dataclass(frozen=True)
class Price:
    """The price of one model call."""

    nanousd: int
    status: CostStatus

    @property
    def usd(self) -> Decimal:
        return Decimal(self.nanousd) / _NANO


def price_call(model_name: str, provider: str | None, usage: RequestUsage) -> Price:
    """Price one call's usage.

    Example:
        >>> price_call("gpt-4o-mini", "openai", RequestUsage(input_tokens=1000, output_tokens=500))
        Price(nanousd=450000, status='priced')
    """
    if provider in _FREE_PROVIDERS:
        return Price(0, "free")
    try:
        calc = calc_price(usage, model_name, provider_id=provider)
    except LookupError:
        try:
            # OpenAI-compatible endpoints serve other vendors' models under provider "openai".
            calc = calc_price(usage, model_name)
        except LookupError:
            return Price(0, "unknown_model")
    return Price(int((calc.total_price * _NANO).to_integral_value()), "priced")


def combine_status(current: CostStatus, new: CostStatus) -> CostStatus:
    """The cost status of a run from the statuses of its calls."""
    if current in ("none", new):
        return new
    if "unknown_model" in (current, new) or current == "partial":
        return "partial" if "priced" in (current, new) or current == "partial" else "unknown_model"
    return "priced"
