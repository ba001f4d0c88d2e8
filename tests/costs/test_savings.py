"""The savings report: routing to a cheaper model, answers from the response cache and the
provider's prompt cache, against list price on the agent's primary model, to the nano-dollar."""

from __future__ import annotations

from pathlib import Path

from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.usage import RequestUsage

from agenthost.costs.savings import savings
from agenthost.gateway.pricing import PriceBook
from agenthost.testing import MockLLMServer
from tests.harness import Server, server_config

GPT_4O = (2500, 10000)  # nano-USD per input, output token
GPT_4O_MINI = (150, 600)


def priced(usage: dict[str, int], rates: tuple[int, int]) -> int:
    return usage["input_tokens"] * rates[0] + usage["output_tokens"] * rates[1]


def test_routing_and_response_cache_savings_in_the_report(tmp_path: Path, mock: MockLLMServer) -> None:
    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock.url, cache={"enabled": True})
    # An agent whose own model is gpt-4o, routed: simple questions go to gpt-4o-mini.
    config["agents"]["big"] = {"path": "tests.agents.plain:agent", "model": "mock-big", "routing": True}
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            routed = client.post("/v1/agents/big/run", json={"input": "What are your opening hours?"}).json()
            first = client.post("/v1/agents/plain/run", json={"input": "cache me", "user_id": "u"}).json()
            cached = client.post("/v1/agents/plain/run", json={"input": "cache me", "user_id": "u"}).json()
            report = client.get("/v1/costs").json()
    finally:
        server.stop()
    assert (routed["tier"], routed["model"]) == ("simple", "gpt-4o-mini")
    assert cached["cost"]["status"] == "cached"
    routing = priced(routed["usage"], GPT_4O) - priced(routed["usage"], GPT_4O_MINI)
    saved = report["savings"]
    assert saved["by_reason"]["routing"]["nanousd"] == routing > 0
    assert saved["by_reason"]["response_cache"]["nanousd"] == first["cost"]["nanousd"] > 0
    assert saved["by_reason"]["prompt_cache"]["nanousd"] == 0
    assert saved["nanousd"] == routing + first["cost"]["nanousd"]
    assert saved["list_price"]["nanousd"] == report["total"]["nanousd"] + saved["nanousd"]


def test_prompt_cache_savings_are_the_cached_read_discount() -> None:
    prices = PriceBook()
    haiku = AnthropicModel("claude-haiku-4-5", provider=AnthropicProvider(api_key="unused"))
    usage = RequestUsage(input_tokens=1000, cache_read_tokens=800, output_tokens=50)
    response = ModelResponse(
        parts=[TextPart("hi")], usage=usage, model_name="claude-haiku-4-5", provider_name="anthropic"
    )
    cost = prices.price("claude-haiku-4-5", "anthropic", usage).nanousd
    # claude-haiku-4-5: $1 per million input tokens, cached reads at $0.10: 800 * (1000 - 100).
    assert savings(prices, haiku, response, cost) == {
        "routing": 0,
        "response_cache": 0,
        "prompt_cache": 800 * 900,
        "batch": 0,
    }
