"""Scenario selection, scripts, templates, stats, control endpoints and pacing knobs."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.testclient import TestClient

from agenthost.testing import MockLLMConfig, MockLLMServer, Scenario, Turn, create_mock_app, load_script
from agenthost.testing.mock_llm.tokens import count_tokens, tokenize

if TYPE_CHECKING:
    import anthropic

SCRIPT = Path(__file__).parent / "scripts" / "support.yaml"
SELECTION = {
    "alpha": {"match": "shared", "turns": [{"text": "from alpha"}]},
    "beta": {"match": "shared|beta-only", "turns": [{"text": "from beta"}]},
    "gamma": {"turns": [{"text": "from gamma"}]},
}


def _ask(client: openai.OpenAI, text: str, *, model: str = "m", scenario: str | None = None) -> str:
    headers = {"X-Mock-Scenario": scenario} if scenario else None
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers
    )
    return response.choices[0].message.content or ""


def _conversation(*turns: str) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": "start"}]
    for turn in turns:
        messages += [{"role": "assistant", "content": turn}, {"role": "user", "content": f"after {turn}"}]
    return messages


@settings(database=None)
@given(st.text())
def test_tokens_join_back_to_the_text_without_trailing_whitespace(text: str) -> None:
    tokens = tokenize(text)
    assert "".join(tokens) == text.rstrip()
    assert count_tokens(text) == len(tokens) == len(text.split())


def test_scenario_selection_precedence(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios=SELECTION)
    assert _ask(openai_client, "shared topic", model="gamma", scenario="beta") == "from beta"
    assert _ask(openai_client, "shared topic", model="gamma") == "from gamma"
    assert _ask(openai_client, "shared topic") == "from alpha"
    assert _ask(openai_client, "a beta-only topic") == "from beta"
    assert _ask(openai_client, "nothing matches") == "Mock reply to: nothing matches"
    assert _ask(openai_client, "shared topic", scenario="default") == "Mock reply to: shared topic"
    with pytest.raises(openai.BadRequestError, match="unknown scenario"):
        _ask(openai_client, "x", scenario="nope")
    calls = {name: s["calls"] for name, s in mock_llm.stats()["by_scenario"].items()}
    assert calls == {"beta": 2, "gamma": 1, "alpha": 1, "default": 2}


def test_match_uses_the_first_user_message(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(scenarios=SELECTION)
    messages: Any = [
        {"role": "user", "content": "unrelated opener"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "shared topic"},
    ]
    response = openai_client.chat.completions.create(model="m", messages=messages)
    assert response.choices[0].message.content == "Mock reply to: shared topic"


def test_a_default_scenario_replaces_the_builtin_reply(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(scenarios={"default": {"turns": [{"text": "custom default"}]}})
    assert _ask(openai_client, "anything") == "custom default"
    assert mock_llm.stats()["by_scenario"]["default"]["calls"] == 1


def test_turns_templates_repeat_last_and_fallback(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(
        scenarios={
            "echo": {"turns": [{"text": "t{turn}: {last_user} {unknown} {{braces}}"}, {"text": "second"}]},
            "loop": {"repeat_last": True, "turns": [{"text": "first"}, {"text": "again {turn}"}]},
        }
    )

    def reply(model: str, *turns: str) -> str:
        messages: Any = _conversation(*turns)
        response = openai_client.chat.completions.create(model=model, messages=messages)
        return response.choices[0].message.content or ""

    assert reply("echo") == "t0: start {unknown} {{braces}}"
    assert reply("echo", "a") == "second"
    assert reply("echo", "a", "b") == "Mock reply to: after b"
    assert reply("loop") == "first"
    assert reply("loop", "a", "b", "c") == "again 3"


def test_stats_by_scenario_turn_and_conversation(
    mock_llm: MockLLMServer,
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    http: httpx.Client,
) -> None:
    mock_llm.configure(scenarios={"s": {"repeat_last": True, "turns": [{"text": "ok"}]}})
    for turns in [(), ("a",), ("a", "b"), ()]:
        messages: Any = _conversation(*turns)
        openai_client.chat.completions.create(model="s", messages=messages)
    anthropic_client.messages.create(model="s", max_tokens=10, messages=_conversation("a"))
    with pytest.raises(openai.RateLimitError):
        openai_client.chat.completions.create(
            model="other",
            messages=[{"role": "user", "content": "z"}],
            extra_headers={"X-Mock-Fault": "rate_limit"},
        )

    stats = http.get("/_mock/stats").json()
    assert stats == mock_llm.stats()
    start_key = hashlib.sha1(b"start").hexdigest()[:12]
    z_key = hashlib.sha1(b"z").hexdigest()[:12]
    assert stats == {
        "total_calls": 6,
        "by_protocol": {"openai": 5, "anthropic": 1},
        "by_scenario": {
            "s": {"calls": 5, "faults": 0, "by_turn": {"0": 2, "1": 2, "2": 1}},
            "default": {"calls": 1, "faults": 1, "by_turn": {"0": 1}},
        },
        "by_conversation": {
            start_key: {"scenario": "s", "by_turn": {"0": 2, "1": 2, "2": 1}},
            z_key: {"scenario": "default", "by_turn": {"0": 1}},
        },
        "untracked_conversations": 0,
    }

    assert http.post("/_mock/reset").json() == {"status": "ok"}
    assert mock_llm.stats()["total_calls"] == 0
    assert mock_llm.stats()["by_scenario"] == {}
    # A plain reset keeps runtime knobs; `knobs: true` restores the start-up config.
    assert "s" in mock_llm.engine.config.scenarios
    http.post("/_mock/reset", json={"knobs": True})
    assert mock_llm.engine.config.scenarios == {}


def test_conversation_tracking_is_bounded(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    mock_llm.configure(max_tracked_conversations=2)
    for text in ["a", "b", "c", "a"]:
        _ask(openai_client, text)
    stats = mock_llm.stats()
    assert len(stats["by_conversation"]) == 2
    assert stats["untracked_conversations"] == 1
    assert stats["total_calls"] == 4


def test_mock_llm_fixture_restores_knobs(mock_llm: MockLLMServer) -> None:
    # Other tests configure scenarios and faults; each starts from the session's start-up config.
    assert mock_llm.engine.config == MockLLMConfig()
    assert mock_llm.stats()["total_calls"] == 0


def test_config_endpoint_changes_knobs_at_runtime(mock_llm: MockLLMServer, http: httpx.Client) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    current = http.post(
        "/_mock/config", json={"latency_ms": 150, "fault": {"kind": "overloaded", "first_n": 1}}
    )
    assert current.status_code == 200
    assert current.json()["latency_ms"] == 150
    assert current.json()["fault"]["kind"] == "overloaded"
    assert http.get("/_mock/config").json() == current.json()

    started = time.monotonic()
    assert http.post("/v1/chat/completions", json=body).status_code == 529
    assert http.post("/v1/chat/completions", json=body).status_code == 200
    assert time.monotonic() - started >= 0.29

    bad = http.post("/_mock/config", json={"latency_ms": -1, "bogus": 1})
    assert bad.status_code == 422
    assert {tuple(error["loc"]) for error in bad.json()["error"]} == {("latency_ms",), ("bogus",)}
    assert http.post("/_mock/config", json=[1]).status_code == 400
    with pytest.raises(ValidationError):
        mock_llm.configure(tokens_per_second=0)
    assert http.post("/_mock/config", json={"fault": None}).json()["fault"] is None


def test_latency_knob_and_header(mock_llm: MockLLMServer, openai_client: openai.OpenAI) -> None:
    started = time.monotonic()
    _ask(openai_client, "fast")
    assert time.monotonic() - started < 0.2

    mock_llm.configure(latency_ms=200)
    started = time.monotonic()
    stream = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "slow"}], stream=True
    )
    next(iter(stream))
    assert time.monotonic() - started >= 0.19
    stream.close()

    mock_llm.configure(latency_ms=0)
    started = time.monotonic()
    openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], extra_headers={"X-Mock-Latency-Ms": "150"}
    )
    assert time.monotonic() - started >= 0.14


def test_scenario_latency_overrides_the_global_knob(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    mock_llm.configure(latency_ms=5000, scenarios={"quick": {"latency_ms": 0, "turns": [{"text": "ok"}]}})
    started = time.monotonic()
    assert _ask(openai_client, "x", model="quick") == "ok"
    assert time.monotonic() - started < 1


def test_tokens_per_second_paces_streams_and_full_responses(
    mock_llm: MockLLMServer, openai_client: openai.OpenAI
) -> None:
    ten_tokens = " ".join(["w"] * 10)
    mock_llm.configure(tokens_per_second=50, scenarios={"ten": {"turns": [{"text": ten_tokens}]}})
    started = time.monotonic()
    stamps = []
    for chunk in openai_client.chat.completions.create(
        model="ten", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.monotonic())
    assert len(stamps) == 10
    assert stamps[-1] - started >= 0.19
    assert stamps[-1] - stamps[0] >= 0.17  # tokens trickle in rather than arriving together

    started = time.monotonic()
    assert _ask(openai_client, "x", model="ten") == ten_tokens
    assert time.monotonic() - started >= 0.19


def test_load_script_and_serve_it() -> None:
    config = load_script(SCRIPT)
    assert set(config.scenarios) == {"weather", "refund", "flaky"}
    assert config.scenarios["flaky"].turns[0].fault is not None
    assert config.scenarios["flaky"].turns[0].fault.kind == "rate_limit"

    with (
        MockLLMServer(config) as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0) as client,
    ):
        assert server.openai_base_url == server.url + "/v1"
        assert server.anthropic_base_url == server.url
        first = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Weather today?"}]
        )
        [call] = first.choices[0].message.tool_calls or []
        assert json.loads(call.function.arguments) == {"city": "Paris", "note": "asked: Weather today?"}
        assert _ask(client, "I want a refund") == "Refund step 0."
        with pytest.raises(openai.RateLimitError):
            _ask(client, "x", model="flaky")
        assert server.stats()["by_scenario"]["flaky"]["faults"] == 1
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url


def test_invalid_scripts_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  x:\n    match: '('\n    turns: [{text: hi}]\n")
    with pytest.raises(ValidationError, match="invalid regex"):
        load_script(bad)
    bad.write_text("scenarios:\n  x:\n    turns: [{text: hi, fault: rate_limit}]\n")
    with pytest.raises(ValidationError, match="either a fault"):
        load_script(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ValidationError):
        load_script(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_script(empty) == MockLLMConfig()


def test_python_config_and_asgi_app_without_a_socket() -> None:
    config = MockLLMConfig(scenarios={"hi": Scenario(match="^hello", turns=(Turn(text="Hi!"),))})
    with TestClient(create_mock_app(config)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
        assert (
            client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"] == "Hi!"
        )
        bad = client.post("/v1/chat/completions", content=b"{not json")
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        missing = client.post("/v1/messages", json={"model": "m"})
        assert missing.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "`messages` must be a list"},
        }


def test_serve_runs_as_a_subprocess() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = f"from agenthost.testing import serve; serve(port={port}, log_level='warning')"
    process = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.post("/_mock/config", json={"fault": "server_error"})
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            assert client.post("/v1/chat/completions", json=body).status_code == 500
            assert client.get("/_mock/stats").json()["total_calls"] == 1
    finally:
        process.terminate()
        process.wait(10)
