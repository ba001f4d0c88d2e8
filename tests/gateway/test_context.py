"""Context overflow: histories longer than a model's budget are truncated or summarised, or refused
cleanly, before the provider sees them; against the mock LLM over a real socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import BadRequestError, OpenAI
from pydantic_ai import Agent
from pydantic_ai import messages as m
from pydantic_ai.models import ModelRequestParameters
from tests.harness import ADMIN_KEY, Server, server_config

from agenthost.errors import ContextOverflowError
from agenthost.gateway.context import estimate_tokens, trim
from agenthost.gateway.models import Gateway, GatewayStores
from agenthost.gateway.pricing import price_call
from agenthost.settings import Settings
from agenthost.testing import MockLLMServer

WINDOW, RESERVE = 1200, 200
FILLER = "lorem ipsum dolor sit amet " * 8  # ~216 characters, ~58 estimated tokens


def history(exchanges: int) -> list[m.ModelMessage]:
    """A conversation of `exchanges` user/assistant pairs, the first one marked."""
    messages: list[m.ModelMessage] = []
    for i in range(exchanges):
        prefix = "[first] " if i == 0 else ""
        messages.append(m.ModelRequest(parts=[m.UserPromptPart(f"{prefix}question {i}: {FILLER}")]))
        messages.append(
            m.ModelResponse(parts=[m.TextPart(f"answer {i}: {FILLER}")], model_name="gpt-4o-mini")
        )
    return messages


def gateway(mock: MockLLMServer, strategy: str) -> Gateway:
    model = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": mock.openai_base_url,
        "api_key": "k",
        "context_window": WINDOW,
        "context_overflow": strategy,
    }
    return Gateway(
        Settings(models={"small": model}, gateway={"context_reserve_tokens": RESERVE}),
        GatewayStores.detached(),
    )


def test_trim_keeps_the_opening_the_latest_exchange_and_tool_pairs() -> None:
    messages: list[m.ModelMessage] = [
        m.ModelRequest(parts=[m.SystemPromptPart("be brief"), m.UserPromptPart("go")])
    ]
    for i in range(20):
        call = m.ToolCallPart("lookup", {"q": FILLER}, tool_call_id=f"c{i}")
        messages.append(m.ModelResponse(parts=[call]))
        messages.append(m.ModelRequest(parts=[m.ToolReturnPart("lookup", FILLER, tool_call_id=f"c{i}")]))
    params = ModelRequestParameters()
    result = trim(messages, params, budget=500)
    assert result is not None
    kept, dropped = result
    assert kept[0] is messages[0]
    assert kept[-2:] == messages[-2:]
    assert estimate_tokens(kept, params) <= 500
    assert len(kept) + len(dropped) == len(messages)
    calls = {p.tool_call_id for msg in kept for p in msg.parts if isinstance(p, m.ToolCallPart)}
    returns = {p.tool_call_id for msg in kept for p in msg.parts if isinstance(p, m.ToolReturnPart)}
    assert calls == returns  # no call without its result, no result without its call
    # Nothing can be dropped to fit a budget smaller than the opening plus the latest exchange.
    assert trim(messages, params, budget=50) is None


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_truncate_sends_a_history_that_fits(mock: MockLLMServer, stream: bool) -> None:
    model = gateway(mock, "truncate").served("small")
    agent = Agent(model)
    long = history(40)  # ~4,700 estimated tokens against a budget of 1,000
    if stream:
        async with agent.run_stream("and now?", message_history=long) as run:
            output = await run.get_output()
            usage = run.usage
    else:
        result = await agent.run("and now?", message_history=long)
        output, usage = result.output, result.usage
    assert output == "Mock reply to: and now?"
    assert usage.input_tokens < WINDOW - RESERVE
    stats = mock.stats()
    assert stats["total_calls"] == 1
    # The opening request was kept: the mock saw the same conversation (keyed by its first message).
    assert [c["scenario"] for c in stats["by_conversation"].values()] == ["default"]


async def test_summarize_replaces_dropped_exchanges_with_a_summary(mock: MockLLMServer) -> None:
    model = gateway(mock, "summarize").served("small")
    result = await Agent(model).run("and now?", message_history=history(40))
    assert result.output == "Mock reply to: and now?"
    assert result.usage.input_tokens < WINDOW - RESERVE
    assert mock.stats()["total_calls"] == 2  # the summary, then the answer


async def test_error_strategy_refuses_before_calling_the_provider(mock: MockLLMServer) -> None:
    model = gateway(mock, "error").served("small")
    with pytest.raises(ContextOverflowError, match="exceeds the context budget"):
        await Agent(model).run("and now?", message_history=history(40))
    assert mock.stats()["total_calls"] == 0
    # A history that fits is sent as it is.
    assert (await Agent(model).run("short", message_history=history(2))).output == "Mock reply to: short"


def test_runs_and_passthrough_fit_the_context_or_fail_cleanly(tmp_path: Path, mock: MockLLMServer) -> None:
    """Through the server: a thread longer than the window keeps working; an input that cannot fit
    fails the run with `context_length_exceeded`; the front door summarises and prices the summary."""
    small: dict[str, Any] = {"context_window": 700, "context_overflow": "summarize"}
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}", mock.url, gateway={"context_reserve_tokens": 100}
    )
    config["models"]["mock"] = {**config["models"]["mock"], **small}
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            runs = [
                client.post(
                    "/v1/agents/plain/run", json={"input": f"turn {i}: {FILLER * 2}", "thread_id": "long"}
                ).json()
                for i in range(8)
            ]
            too_big = client.post("/v1/agents/plain/run", json={"input": FILLER * 40}).json()
        sdk = OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0)
        chat: list[Any] = []
        for i in range(12):
            chat += [
                {"role": "user", "content": f"q{i} {FILLER}"},
                {"role": "assistant", "content": f"a{i} {FILLER}"},
            ]
        chat.append({"role": "user", "content": "last"})
        mock.reset()
        completion = sdk.chat.completions.create(model="mock", messages=chat)
        with pytest.raises(BadRequestError) as refused:
            sdk.chat.completions.create(model="mock", messages=[{"role": "user", "content": FILLER * 40}])
    finally:
        server.stop()
    assert [r["status"] for r in runs] == ["succeeded"] * 8
    assert max(r["usage"]["input_tokens"] for r in runs) < 700
    assert too_big["status"] == "failed"
    assert too_big["error"]["code"] == "context_length_exceeded"
    assert completion.choices[0].message.content == "Mock reply to: last"
    assert mock.stats()["total_calls"] == 2
    assert completion.usage is not None
    answer_only = price_call(
        "gpt-4o-mini",
        "openai",
        m.RequestUsage(
            input_tokens=completion.usage.prompt_tokens, output_tokens=completion.usage.completion_tokens
        ),
    )
    extra: Any = completion.model_extra
    assert extra["agenthost"]["cost"]["nanousd"] > answer_only.nanousd  # the summary is paid for too
    assert refused.value.status_code == 400
    assert refused.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
