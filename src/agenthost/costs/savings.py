"""What a call saved against list price on the agent's configured (primary) model.

Each model call's ledger row carries four savings, in nano-USD (negative when a choice cost more):

* `routing`: the primary model's price minus the price of the model that served it;
* `response_cache`: the whole price of an answer served from agenthost's response cache;
* `prompt_cache`: the provider's prompt-cache discount (cached input read at a lower rate);
* `batch`: the batch-API discount.

Prices come from the same `PriceBook` as costs (genai-prices and config overrides); a model with
no known price saves 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.usage import RequestUsage

from agenthost.gateway.pricing import CACHE_PROVIDER, PriceBook, call_fields
from agenthost.records import SAVINGS, CallRecord, Cost, Savings

__all__ = ["SAVINGS", "call_record", "savings"]


def _priced(prices: PriceBook, model: str, provider: str | None, usage: RequestUsage) -> int:
    price = prices.price(model, provider, usage)
    return price.nanousd if price.status == "priced" else 0


def savings(prices: PriceBook, primary: Model, response: ModelResponse, cost_nanousd: int) -> dict[str, int]:
    """The savings of one call (see the module docstring)."""
    details: dict[str, Any] = response.provider_details or {}
    cached = response.provider_name == CACHE_PROVIDER
    source = details.get("usage") if cached else None
    usage = response.usage
    if source is not None:
        usage = RequestUsage(input_tokens=source["input_tokens"], output_tokens=source["output_tokens"])
    provider = details.get("provider") if cached else response.provider_name
    plain = RequestUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    served = response.model_name or primary.model_name
    on_primary = _priced(prices, primary.model_name, primary.system, plain)
    on_served = _priced(prices, served, provider, plain)
    found = dict.fromkeys(SAVINGS, 0)
    found["routing"] = on_primary - on_served if on_primary and on_served else 0
    if cached:
        found["response_cache"] = on_served
        return found
    with_prompt_cache = _priced(prices, served, provider, usage)
    found["prompt_cache"] = on_served - with_prompt_cache if with_prompt_cache else 0
    found["batch"] = max(with_prompt_cache - cost_nanousd, 0) if details.get("batch") else 0
    return found


def call_record(
    prices: PriceBook,
    primary: Model,
    response: ModelResponse,
    *,
    summaries: Sequence[ModelResponse] = (),
    model_name: str = "",
    duration_ms: float = 0.0,
) -> CallRecord:
    """What one model call produced, priced (with the context summaries made for it) and with its
    savings against list price on `primary`: the one way every call is accounted."""
    price = prices.total([prices.of(response, model_name), *(prices.of(summary) for summary in summaries)])
    return CallRecord(
        **call_fields(response),
        cost=Cost(nanousd=price.nanousd, status=price.status),
        saved=Savings(**savings(prices, primary, response, price.nanousd)),
        duration_ms=duration_ms,
    )
