"""The runs API end to end: real server subprocess (SQLite and Postgres), mock LLM over a socket."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
from tests.harness import ADMIN_HEADERS, Server, collect_sse, iter_sse, wait_for_status

from agenthost.testing import MockLLMServer
from agenthost.testing.mock_llm.stats import conversation_key


def uid() -> str:
    return f"user-{secrets.token_hex(4)}"


def test_a_run_honours_sampling_parameters(server: Server, mock: MockLLMServer) -> None:
    """`temperature`, `top_p`, `seed` and `stop` reach the model the run calls (the stop sequence
    cuts the output); a value out of range is a 422 and starts nothing."""
    body = {"input": "sample me natively", "temperature": 0.7, "top_p": 1, "seed": 42, "stop": ["reply"]}
    with server.client() as client:
        response = client.post("/v1/agents/plain/run", json=body)
        bad = client.post("/v1/agents/plain/run", json={"input": "too hot", "temperature": 3})
    assert response.status_code == 200, response.text
    assert response.json()["output"].strip() == "Mock"
    seen = mock.stats()["by_conversation"][conversation_key("sample me natively")]
    assert seen["sampling"] == {"temperature": 0.7, "top_p": 1, "seed": 42, "stop_sequences": ["reply"]}
    assert bad.status_code == 422
    assert mock.stats()["total_calls"] == 1


def test_run_and_wait_returns_output_usage_cost_and_latency(server: Server, mock: MockLLMServer) -> None:
    """A waited run answers 200 with output, model, tokens, a genai-prices cost, latency and steps."""
    with server.client() as client:
        response = client.post("/v1/agents/plain/run", json={"input": "hello there"})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["output"] == "Mock reply to: hello there"
    assert run["model"] == "gpt-4o-mini"
    usage = run["usage"]
    assert usage["requests"] == 1
    assert usage["output_tokens"] == len(["Mock", "reply", "to:", "hello", "there"])
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # gpt-4o-mini: $0.15 / M input, $0.60 / M output.
    expected = usage["input_tokens"] * 150 + usage["output_tokens"] * 600
    assert run["cost"] == {"usd": expected / 1e9, "nanousd": expected, "status": "priced"}
    assert run["latency_ms"] > 0
    assert run["steps"] == 1
    assert mock.stats()["total_calls"] == 1


def test_tool_run_checkpoints_model_and_tool_steps(server: Server, mock: MockLLMServer) -> None:
    """model -> tool -> model: the tool's result reaches the model and every step is counted."""
    with server.client() as client:
        run = client.post("/v1/agents/support/run", json={"input": "[order] where is 1234?"}).json()
    assert run["status"] == "succeeded", run
    assert "delayed in transit" in run["output"]
    assert run["usage"]["requests"] == 2
    assert run["usage"]["tool_calls"] == 1
    assert run["steps"] == 3
    assert mock.stats()["by_scenario"]["order"]["calls"] == 2


def test_anthropic_provider_run(server: Server, mock: MockLLMServer) -> None:
    """An agent on an Anthropic-protocol model runs and is priced at that model's rates."""
    with server.client() as client:
        run = client.post("/v1/agents/claude/run", json={"input": "bonjour"}).json()
    assert run["status"] == "succeeded", run
    assert run["output"] == "Mock reply to: bonjour"
    assert run["model"] == "claude-haiku-4-5"
    usage = run["usage"]
    # claude-haiku-4-5: $1 / M input, $5 / M output.
    assert run["cost"]["nanousd"] == usage["input_tokens"] * 1000 + usage["output_tokens"] * 5000
    assert mock.stats()["by_protocol"]["anthropic"] == 1


def test_wait_limit_answers_202_with_location(server: Server, mock: MockLLMServer) -> None:
    """Past the wait limit the run keeps going and the answer is 202 + Location."""
    with server.client() as client:
        response = client.post(
            "/v1/agents/plain/run", params={"wait": 0.3}, json={"input": "[slow] take time"}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/runs/{body['id']}" == body["location"]
        assert body["status"] == "running"
        assert client.get(body["location"]).json()["status"] == "running"
        done = wait_for_status(client, body["id"], {"succeeded"}, timeout=30)
        assert done["output"].startswith("This answer takes its time")
    assert mock.stats()["by_scenario"]["slow"]["calls"] == 1


def test_stream_event_order_ids_and_usage(server: Server, mock: MockLLMServer) -> None:
    """SSE: run.started, tool.call, tool.result, text.delta..., usage, run.completed, ids 1..n."""
    with server.client() as client:
        messages = collect_sse(client, "POST", "/v1/agents/support/stream", json={"input": "[order] status?"})
    types = [m.event for m in messages]
    assert types[0] == "run.started"
    assert types[-1] == "run.completed"
    assert [int(m.id or 0) for m in messages] == list(range(1, len(messages) + 1))
    assert types.count("usage") == 2
    call = types.index("tool.call")
    assert types[call + 1] == "tool.result"
    assert types.index("usage") < call  # the first model step asked for the tool
    deltas = [m.json()["delta"] for m in messages if m.event == "text.delta"]
    completed = messages[-1].json()
    assert "".join(deltas) == completed["output"]
    # The mock streams one token per chunk; output redaction holds back `hold_chars` (and whole
    # words) so an entity split over chunks is seen whole, so chunks arrive coalesced but several.
    assert 2 <= len(deltas) <= len(completed["output"].split())
    tool_call = messages[call].json()
    assert tool_call["name"] == "get_order"
    assert tool_call["args"] == {"order_id": "1234"}
    assert messages[call + 1].json()["outcome"] == "ok"
    assert completed["usage"]["tool_calls"] == 1
    assert completed["cost"]["status"] == "priced"
    assert mock.stats()["total_calls"] == 2


def test_stream_sends_heartbeats_while_idle(server: Server, mock: MockLLMServer) -> None:
    """While the model is slow to answer, the stream carries heartbeat comments."""
    with (
        server.client() as client,
        client.stream("POST", "/v1/agents/plain/stream", json={"input": "[slow] x"}) as r,
    ):
        blocks = list(iter_sse(r.iter_lines()))
    heartbeats = [b for b in blocks if "heartbeat" in b.comments]
    assert len(heartbeats) >= 2
    first_delta = next(i for i, b in enumerate(blocks) if b.event == "text.delta")
    assert any("heartbeat" in b.comments for b in blocks[:first_delta])
    assert blocks[-1].event == "run.completed"


def test_client_disconnect_does_not_stop_the_run(server: Server, mock: MockLLMServer) -> None:
    """Leaving a stream after the first event leaves the run running to completion."""
    with server.client() as client:
        with client.stream("POST", "/v1/agents/plain/stream", json={"input": "[long] count"}) as response:
            first = next(iter_sse(response.iter_lines()))
            run_id = first.json()["run_id"]
        done = wait_for_status(client, run_id, {"succeeded", "failed"})
    assert done["status"] == "succeeded"
    assert done["output"].endswith("fifteen")


def test_background_run_and_poll(server: Server, mock: MockLLMServer) -> None:
    """POST .../runs answers 202 at once; the run completes through the queue."""
    user = uid()
    with server.client() as client:
        response = client.post("/v1/agents/plain/runs", json={"input": "in the background", "user_id": user})
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["location"] == f"/v1/runs/{body['id']}"
        done = wait_for_status(client, body["id"], {"succeeded"})
    assert done["output"] == "Mock reply to: in the background"
    assert done["user_id"] == user
    assert done["started_at"] is not None


def test_list_runs_filters_and_pages(server: Server, mock: MockLLMServer) -> None:
    """GET /v1/runs filters by user, agent, status and time, newest first, paged by cursor."""
    user = uid()
    before = datetime.now(UTC) - timedelta(seconds=1)
    with server.client() as client:
        ids = [
            client.post("/v1/agents/plain/run", json={"input": f"n{i}", "user_id": user}).json()["id"]
            for i in range(3)
        ]
        client.post("/v1/agents/support/run", json={"input": "other agent", "user_id": user})
        listed = client.get("/v1/runs", params={"user_id": user, "agent": "plain"}).json()
        assert [r["id"] for r in listed["data"]] == ids[::-1]
        assert listed["next_cursor"] is None
        page1 = client.get("/v1/runs", params={"user_id": user, "limit": 2}).json()
        assert len(page1["data"]) == 2
        page2 = client.get(
            "/v1/runs", params={"user_id": user, "limit": 2, "cursor": page1["next_cursor"]}
        ).json()
        assert len(page2["data"]) == 2
        seen = [r["id"] for r in page1["data"] + page2["data"]]
        assert len(set(seen)) == 4
        assert set(ids) <= set(seen)
        ok = client.get("/v1/runs", params={"user_id": user, "status": "succeeded"}).json()
        assert len(ok["data"]) == 4
        failed = client.get("/v1/runs", params={"user_id": user, "status": "failed"}).json()
        assert failed["data"] == []
        window = client.get(
            "/v1/runs", params={"user_id": user, "created_after": before.isoformat(), "created_before": ""}
        )
        assert window.status_code == 422
        future = client.get(
            "/v1/runs",
            params={"user_id": user, "created_after": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        ).json()
        assert future["data"] == []
        recent = client.get("/v1/runs", params={"user_id": user, "created_after": before.isoformat()}).json()
        assert len(recent["data"]) == 4


def test_events_replay_and_last_event_id_resumption(server: Server, mock: MockLLMServer) -> None:
    """Events of a finished run replay in full, and resume exactly after Last-Event-ID."""
    with server.client() as client:
        run = client.post("/v1/agents/support/run", json={"input": "[order] replay me"}).json()
        events = collect_sse(client, "GET", f"/v1/runs/{run['id']}/events")
        assert events[0].event == "run.started"
        assert events[-1].event == "run.completed"
        ids = [int(e.id or 0) for e in events]
        assert ids == list(range(1, len(events) + 1))
        resumed = collect_sse(client, "GET", f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "3"})
        assert [int(e.id or 0) for e in resumed] == ids[3:]
        assert [e.data for e in resumed] == [e.data for e in events[3:]]
        by_query = collect_sse(client, "GET", f"/v1/runs/{run['id']}/events", params={"after": 3})
        assert [e.id for e in by_query] == [e.id for e in resumed]
        bad = client.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_last_event_id"


def test_events_live_tail_of_a_running_run(server: Server, mock: MockLLMServer) -> None:
    """A reader that joins mid-run gets the past events, then the live ones, until the end."""
    with server.client() as client:
        run_id = client.post("/v1/agents/plain/runs", json={"input": "[long] tail"}).json()["id"]
        wait_for_status(client, run_id, {"running"})
        time.sleep(0.1)
        events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "run.completed"
    text = "".join(e.json()["delta"] for e in events if e.event == "text.delta")
    assert text == events[-1].json()["output"]


def test_idempotency_key_returns_the_same_run(server: Server, mock: MockLLMServer) -> None:
    """A repeated Idempotency-Key returns the first run without running again; a new body is 409."""
    key = secrets.token_hex(8)
    headers = {"Idempotency-Key": key}
    with server.client() as client:
        first = client.post("/v1/agents/plain/run", json={"input": "only once"}, headers=headers).json()
        again = client.post("/v1/agents/plain/run", json={"input": "only once"}, headers=headers).json()
        background = client.post("/v1/agents/plain/runs", json={"input": "only once"}, headers=headers)
        conflict = client.post("/v1/agents/plain/run", json={"input": "something else"}, headers=headers)
        listed = client.get("/v1/runs", params={"agent": "plain", "limit": 100}).json()["data"]
    assert again["id"] == first["id"]
    assert again["output"] == first["output"]
    assert background.json()["id"] == first["id"]
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert sum(1 for r in listed if r["id"] == first["id"]) == 1
    assert mock.stats()["total_calls"] == 1


def test_cancel_a_running_run(server: Server, mock: MockLLMServer) -> None:
    """Cancel stops a running run: status cancelled, a run.cancelled event; cancelling again is 409."""
    with server.client() as client:
        run_id = client.post("/v1/agents/plain/runs", json={"input": "[slow] cancel me"}).json()["id"]
        wait_for_status(client, run_id, {"running"})
        response = client.post(f"/v1/runs/{run_id}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        events = collect_sse(client, "GET", f"/v1/runs/{run_id}/events")
        time.sleep(2.5)  # past the slow model's answer: the run must not come back to life
        after = client.get(f"/v1/runs/{run_id}").json()
        again = client.post(f"/v1/runs/{run_id}/cancel")
    assert after["status"] == "cancelled"
    assert after["output"] is None
    assert events[-1].event == "run.cancelled"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_not_cancellable"


def test_model_failure_leaves_the_run_dead_with_a_clear_error(server: Server, mock: MockLLMServer) -> None:
    """A provider error ends the run `dead` (resumable) with code model_error; the API call is 200."""
    with server.client() as client:
        run = client.post("/v1/agents/plain/run", json={"input": "boom [[mock:fault=server_error]]"}).json()
        events = collect_sse(client, "GET", f"/v1/runs/{run['id']}/events")
    assert run["status"] == "dead"
    assert run["error"]["code"] == "model_error"
    assert run["error"]["step"] == 1
    assert run["output"] is None
    assert events[-1].event == "run.dead"
    assert events[-1].json()["error"]["status_code"] == 500


def test_concurrent_runs(server: Server, mock: MockLLMServer) -> None:
    """Twenty waited runs at once all succeed with their own outputs."""
    results: dict[int, dict[str, object]] = {}

    def one(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers=ADMIN_HEADERS) as client:
            response = client.post("/v1/agents/plain/run", json={"input": f"parallel {i}"})
            results[i] = response.json()
            if response.status_code == 202:
                results[i] = wait_for_status(client, results[i]["id"], {"succeeded", "failed", "dead"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i]["output"] == f"Mock reply to: parallel {i}" for i in range(20))
    assert mock.stats()["total_calls"] == 20


def test_a_run_falls_back_when_its_model_is_down(server: Server, mock: MockLLMServer) -> None:
    """The agent's model refuses connections; its fallback serves and the run is priced for it."""
    with server.client() as client:
        run = client.post("/v1/agents/resilient/run", json={"input": "are you there"}).json()
    assert run["status"] == "succeeded"
    assert run["output"] == "Mock reply to: are you there"
    assert run["model"] == "gpt-4o-mini"
    assert run["cost"]["status"] == "priced"


def test_all_models_unavailable_ends_the_run_with_that_error(server: Server, mock: MockLLMServer) -> None:
    with server.client() as client:
        run = client.post("/v1/agents/hopeless/run", json={"input": "anyone"}).json()
        events = collect_sse(client, "GET", f"/v1/runs/{run['id']}/events")
    assert run["status"] == "dead"
    assert run["error"]["code"] == "all_models_unavailable"
    assert events[-1].event == "run.dead"
    assert mock.stats()["total_calls"] == 0
