"""PII and secrets in model output and tool data never leave the server: run results, streamed
deltas (entities split across deltas), stored events, tool calls and results, the OpenAI-style
front door; per-agent entity choice and mask mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agenthost.testing import MockLLMServer
from tests.harness import Server, collect_sse, server_config

RAW = ("jane.doe@example.com", "123 4567", "4111 1111 1111 1111")


@pytest.fixture(scope="module")
def pii_server(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("pii")
    config = server_config(f"sqlite:///{workdir / 'a.db'}", mock_server.url)
    config["agents"]["pii"] = {"path": "tests.agents.pii:agent", "model": "mock"}
    config["agents"]["pii-masked"] = {
        "path": "tests.agents.pii:agent",
        "model": "mock",
        "redaction": {"entities": ["email"], "mode": "mask"},
    }
    srv = Server(workdir, config).start()
    yield srv
    srv.stop()


def assert_clean(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} leaked in {text[:400]!r}"


def test_run_result_events_and_stream_are_redacted(pii_server: Server, mock: MockLLMServer) -> None:
    with pii_server.client() as client:
        body = client.post("/v1/agents/pii/run", json={"input": "[pii] who is Jane?"}).json()
        assert body["status"] == "succeeded", body
        output = body["output"]
        assert "[EMAIL]" in output
        assert "[PHONE]" in output
        assert "[CREDIT_CARD]" in output
        assert "Reach Jane at" in output  # the rest of the text is intact
        assert_clean(json.dumps(body))
        assert_clean(client.get(f"/v1/runs/{body['id']}").text)
        events = client.get(f"/v1/runs/{body['id']}/events", params={"after": 0}).text
        assert_clean(events)
        assert "tool.result" in events
        assert "tool.call" in events

        messages = collect_sse(client, "POST", "/v1/agents/pii/stream", json={"input": "[pii] again"})
        deltas = "".join(m.json()["delta"] for m in messages if m.event == "text.delta")
        assert_clean(deltas)
        assert "[EMAIL]" in deltas
        assert "[CREDIT_CARD]" in deltas
        completed = next(m.json() for m in messages if m.event == "run.completed")
        assert deltas == completed["output"]


def test_per_agent_entities_and_mask_mode(pii_server: Server, mock: MockLLMServer) -> None:
    with pii_server.client() as client:
        body = client.post("/v1/agents/pii-masked/run", json={"input": "[pii] masked"}).json()
    output = body["output"]
    assert "jane.doe@example.com" not in output
    assert "j***" in output  # masked, not replaced
    assert "4111 1111 1111 1111" in output  # this agent redacts emails only


def test_front_door_output_is_redacted(pii_server: Server, mock: MockLLMServer) -> None:
    with pii_server.client() as client:
        plain = client.post(
            "/v1/chat/completions",
            json={"model": "mock", "messages": [{"role": "user", "content": "tell me jane.doe@example.com"}]},
        )
        assert plain.status_code == 200, plain.text
        text = plain.json()["choices"][0]["message"]["content"]
        assert "[EMAIL]" in text
        assert_clean(text)
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "mock",
                "stream": True,
                "messages": [{"role": "user", "content": "write jane.doe@example.com back"}],
            },
        ) as response:
            raw = response.read().decode()
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in raw.splitlines()
        if line.startswith("data: {") and '"choices": [{' in line.replace('"choices":[{', '"choices": [{')
    ]
    streamed = "".join(pieces)
    assert "[EMAIL]" in streamed
    assert_clean(streamed)


def test_stream_redactor_holds_split_entities() -> None:
    from agenthost.security.output import StreamRedactor
    from agenthost.security.redaction import Redactor

    stream = StreamRedactor(Redactor())
    marker = "PRIVATE" + " KEY-----"  # built at run time: no key-shaped literal in the repository
    text = f"mail jane.doe@example.com now, key -----BEGIN RSA {marker}\nMIIB" + "A" * 300
    text += f"\n-----END RSA {marker} done"
    out = "".join(stream.feed(text[i : i + 3]) for i in range(0, len(text), 3)) + stream.flush()
    assert out == Redactor().redact(text)
    assert "MIIB" not in out


def test_config_rejects_unknown_entities(tmp_path: Path) -> None:
    from agenthost.errors import ConfigError
    from agenthost.settings import load_settings

    path = tmp_path / "agenthost.toml"
    path.write_text('[redaction]\nentities = ["email", "shoe_size"]\n')
    with pytest.raises(ConfigError, match="shoe_size"):
        load_settings(path)
