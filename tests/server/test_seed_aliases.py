"""The seed tutorials' paths: their request body and response fields work unchanged."""

from __future__ import annotations

from tests.harness import Server, iter_sse, wait_for_status

from agenthost.testing import MockLLMServer


def test_agent_run_has_seed_fields(server: Server, mock: MockLLMServer) -> None:
    """`POST /agent/run` with the tutorial body answers with the tutorial's fields."""
    body = {
        "prompt": "What is 2+2?",
        "user_id": "u-1",
        "max_tokens": 100,
        "model": "claude-sonnet-4-20250514",
    }
    with server.client() as client:
        response = client.post("/agent/run", json=body)
    assert response.status_code == 200
    run = response.json()
    assert run["id"].startswith("run_")
    assert run["response"] == "Mock reply to: What is 2+2?" == run["output"]
    assert run["model"] == "gpt-4o-mini"
    assert run["tokens_used"] == run["usage"]["total_tokens"] > 0
    assert run["cost_usd"] == run["cost"]["usd"] > 0
    assert run["latency_ms"] > 0
    assert run["agent"] == "support"  # the default agent
    assert run["metadata"] == {"requested_model": "claude-sonnet-4-20250514"}


def test_agent_run_max_tokens_caps_the_output(server: Server, mock: MockLLMServer) -> None:
    """`max_tokens` reaches the model call: the mock truncates to that many tokens."""
    with server.client() as client:
        run = client.post("/agent/run", json={"prompt": "a b c d e f g h", "max_tokens": 3}).json()
    assert run["usage"]["output_tokens"] == 3
    assert run["response"] == "Mock reply to:"


def test_agent_stream_is_data_lines_then_done(server: Server, mock: MockLLMServer) -> None:
    """`POST /agent/stream` sends each token as `data: <text>` and ends with `data: [DONE]`."""
    with (
        server.client() as client,
        client.stream("POST", "/agent/stream", json={"prompt": "stream this"}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        messages = [m for m in iter_sse(r.iter_lines()) if m.data]
    assert messages[-1].data == "[DONE]"
    text = "".join(m.data for m in messages[:-1])
    assert text == "Mock reply to: stream this"


def test_agent_async_then_status(server: Server, mock: MockLLMServer) -> None:
    """`POST /agent/async` queues the run (202, request_id); `GET /agent/status/{id}` gives the result."""
    with server.client() as client:
        response = client.post("/agent/async", json={"prompt": "later please"})
        assert response.status_code == 202
        queued = response.json()
        assert queued["request_id"] == queued["id"]
        wait_for_status(client, queued["id"], {"succeeded"})
        status = client.get(f"/agent/status/{queued['id']}").json()
        missing = client.get("/agent/status/run_doesnotexist")
    assert status["status"] == "succeeded"
    assert status["response"] == "Mock reply to: later please"
    assert status["tokens_used"] > 0
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "run_not_found"


def test_agent_run_accepts_input_synonym(server: Server, mock: MockLLMServer) -> None:
    """Clients of either API work on the aliases: `input` is accepted for `prompt`."""
    with server.client() as client:
        run = client.post("/agent/run", json={"input": "synonym"}).json()
    assert run["response"] == "Mock reply to: synonym"
