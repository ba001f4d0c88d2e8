"""The mock LLM's benchmark fast path (`agenthost mock-llm --fast`), through the official `openai` SDK."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

import httpx
import openai
import pytest
import uvicorn

from agenthost.testing.mock_llm.fast import FAST_REPLY, FAST_USAGE, fast_app

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def fast_url() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(fast_app, http="httptools", lifespan="off", access_log=False, log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the fast mock stopped"
        assert time.monotonic() < deadline, "the fast mock did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def client(fast_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{fast_url}/v1", api_key="k", max_retries=0, timeout=10) as sdk:
        yield sdk


def test_completion_through_the_sdk(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="bench-model", messages=[{"role": "user", "content": "hello"}], temperature=0
    )

    assert response.object == "chat.completion"
    assert response.model == "bench-model"
    assert response.id.startswith("chatcmpl-")
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == FAST_REPLY
    assert choice.finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.model_dump(include=set(FAST_USAGE)) == FAST_USAGE


def test_stream_through_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="bench-model",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FAST_REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == FAST_USAGE["total_tokens"]


def test_keep_alive_and_other_routes(fast_url: str) -> None:
    with httpx.Client(base_url=fast_url, timeout=10) as http:
        for _ in range(3):  # one connection, several requests
            assert http.post("/v1/chat/completions", json={"model": "m", "messages": []}).status_code == 200
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/v1/models").json()["data"][0]["id"] == "mock"
        assert http.post("/v1/chat/completions", content=b"not json").status_code == 400
        assert http.post("/v1/chat/completions", json=["no", "model"]).status_code == 400
        assert http.get("/nowhere").status_code == 404
