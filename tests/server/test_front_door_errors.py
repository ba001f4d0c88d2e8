"""Errors of the three front doors as each official SDK sees them: 401 -> AuthenticationError,
404 -> NotFoundError, 429 -> RateLimitError, 400 (context overflow) -> BadRequestError."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from tests.harness import ADMIN_KEY, Server, server_config

from agenthost.testing import MockLLMServer

LONG = "tell me about " + "very " * 600 + "long things"


@pytest.fixture(scope="module")
def door_server(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Iterator[Server]:
    """A server with a gateway model (and an agent on it) whose context window is tiny."""
    workdir = tmp_path_factory.mktemp("doors")
    config = server_config(f"sqlite:///{workdir / 'agenthost.db'}", mock_server.url)
    config["models"]["tiny"] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": f"{mock_server.url}/v1",
        "api_key": "sk-test",
        "context_window": 256,
        "context_overflow": "error",
    }
    config["agents"]["tiny-agent"] = {"path": "tests.agents.plain:agent", "model": "tiny"}
    srv = Server(Path(workdir), config).start()
    yield srv
    srv.stop()


def _openai(server: Server, key: str = ADMIN_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def _anthropic(server: Server, key: str = ADMIN_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


def _chat(server: Server, key: str, model: str, text: str = "hi") -> Any:
    with _openai(server, key) as client:
        return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def _responses(server: Server, key: str, model: str, text: str = "hi") -> Any:
    with _openai(server, key) as client:
        return client.responses.create(model=model, input=text)


def _messages(server: Server, key: str, model: str, text: str = "hi") -> Any:
    with _anthropic(server, key) as client:
        return client.messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": text}]
        )


Door = Callable[..., Any]
DOORS = [
    pytest.param(_chat, openai, id="chat"),
    pytest.param(_responses, openai, id="responses"),
    pytest.param(_messages, anthropic, id="messages"),
]


@pytest.mark.parametrize(("door", "sdk"), DOORS)
def test_bad_key_is_an_authentication_error(door_server: Server, door: Door, sdk: Any) -> None:
    with pytest.raises(sdk.AuthenticationError):
        door(door_server, "not-a-key", "mock")


@pytest.mark.parametrize(("door", "sdk"), DOORS)
def test_unknown_model_is_not_found(door_server: Server, door: Door, sdk: Any) -> None:
    with pytest.raises(sdk.NotFoundError) as missing:
        door(door_server, ADMIN_KEY, "no-such-model")
    assert "no-such-model" in str(missing.value)


@pytest.mark.parametrize(("door", "sdk"), DOORS)
def test_spent_rate_limit_is_a_rate_limit_error(
    door_server: Server, door: Door, sdk: Any, mock: MockLLMServer
) -> None:
    """A key allowed one request a minute: the second is a 429 the SDK raises as RateLimitError."""
    with door_server.client() as admin:
        made = admin.post(
            "/v1/admin/keys", json={"name": "tiny-limit", "rate_limits": {"requests_per_minute": 1}}
        )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    door(door_server, key, "plain")
    with pytest.raises(sdk.RateLimitError) as limited:
        door(door_server, key, "plain")
    assert limited.value.response.headers["retry-after"]


@pytest.mark.parametrize("model", ["tiny", "tiny-agent"])
@pytest.mark.parametrize(("door", "sdk"), DOORS)
def test_context_overflow_is_a_bad_request(
    door_server: Server, door: Door, sdk: Any, model: str, mock: MockLLMServer
) -> None:
    """An input that cannot fit the model's context window is a 400 `context_length_exceeded`
    (gateway model and agent alike), not a 502; the model is never called."""
    with pytest.raises(sdk.BadRequestError) as overflow:
        door(door_server, ADMIN_KEY, model, LONG)
    assert "context_length_exceeded" in str(overflow.value.body)
    assert mock.stats()["total_calls"] == 0
