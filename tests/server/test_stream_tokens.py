"""Stream tokens for `EventSource`: minted by an authenticated caller for a run or thread it sees,
accepted only as `?token=` on `GET /v1/runs/{id}/events`, refused when expired, tampered with,
out of scope or when the minting key is revoked, and never written to the logs. A finished run's
stream answers 204 once the client has every event, so `EventSource` stops reconnecting."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from tests.harness import Server, iter_sse, server_config

from agenthost.testing import MockLLMServer

SECRET = "stream-" + "s" * 32  # pragma: allowlist secret - a test secret


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Iterator[Server]:
    """A server with a configured stream-token secret and per-key rate limits (SQLite)."""
    workdir = tmp_path_factory.mktemp("stream-tokens")
    config = server_config(
        f"sqlite:///{workdir / 'agenthost.db'}",
        mock_server.url,
        server={
            "heartbeat_interval": 0.3,
            "stream_tokens": {"secret": SECRET, "default_ttl_seconds": 120, "max_ttl_seconds": 600},
        },
        rate_limits={"per_key": {"requests_per_minute": 500}},
    )
    server = Server(workdir, config).start()
    yield server
    server.stop()


def make_key(server: Server, **spec: Any) -> str:
    with server.client() as admin:
        response = admin.post("/v1/admin/keys", json={"name": "stream", **spec})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def finished_run(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/agents/plain/run", json={"input": "hello", **body})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    assert run["status"] == "succeeded", run
    return run


def mint(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/stream-tokens", json=body)


def events(server: Server, run_id: str, token: str, **headers: str) -> httpx.Response:
    """The events of `run_id` read to the end with `token` and no other credential."""
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        return anonymous.get(f"/v1/runs/{run_id}/events", params={"token": token}, headers=headers)


def forged(claims: dict[str, Any], secret: str = SECRET) -> str:
    """A token as the server would sign it (the test knows the configured secret)."""
    import hashlib
    import hmac

    key = hmac.new(secret.encode(), b"agenthost stream-token v1", hashlib.sha256).digest()
    return jwt.encode(claims, key, algorithm="HS256")


def test_a_token_follows_its_run_and_the_ended_stream_answers_204(srv: Server, mock: MockLLMServer) -> None:
    """A token minted with a user's key replays the run's events to the terminal event; once the
    client has the last event (Last-Event-ID or ?after=) the stream answers 204, not 200."""
    key = make_key(srv, user_id="alice")
    with srv.client(key=key) as client:
        run = finished_run(client)
        response = mint(client, run_id=run["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "stream_token"
    assert body["scope"] == {"run_id": run["id"], "thread_id": None}
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=100) < expires - datetime.now(UTC) <= timedelta(seconds=121)
    assert response.headers["Cache-Control"] == "no-store"

    streamed = events(srv, run["id"], body["token"])
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["RateLimit-Limit"] == "500"  # counted against the minting key
    messages = [m for m in iter_sse(iter(streamed.text.splitlines())) if m.data]
    ids = [int(m.id or 0) for m in messages]
    assert ids == sorted(set(ids))
    assert ids[0] == 1
    assert messages[-1].event == "run.completed"

    last = str(ids[-1])
    ended = events(srv, run["id"], body["token"], **{"Last-Event-ID": last})
    assert ended.status_code == 204
    assert ended.content == b""
    with httpx.Client(base_url=srv.url, timeout=30) as anonymous:
        after = anonymous.get(f"/v1/runs/{run['id']}/events", params={"token": body["token"], "after": last})
        assert after.status_code == 204
        # One event short of the end: that event, then the stream closes.
        rest = anonymous.get(
            f"/v1/runs/{run['id']}/events", params={"token": body["token"], "after": ids[-2]}
        )
    assert rest.status_code == 200
    assert [m.event for m in iter_sse(iter(rest.text.splitlines())) if m.data] == ["run.completed"]


def test_api_key_callers_get_204_too(srv: Server, mock: MockLLMServer) -> None:
    """The 204 is the stream's answer for any caller, not only token holders."""
    with srv.client() as client:
        run = finished_run(client)
        assert client.get(f"/v1/runs/{run['id']}/events").status_code == 200
        response = client.get(f"/v1/runs/{run['id']}/events", params={"after": 10_000})
    assert response.status_code == 204


def test_tokens_are_accepted_only_as_a_query_value_on_the_events_stream(
    srv: Server, mock: MockLLMServer
) -> None:
    """As a header the token is no API key; as ?token= on any other endpoint it is refused."""
    with srv.client() as client:
        run = finished_run(client)
        token = mint(client, run_id=run["id"]).json()["token"]
    with httpx.Client(base_url=srv.url, timeout=30) as anonymous:
        for headers in ({"X-API-Key": token}, {"Authorization": f"Bearer {token}"}):
            response = anonymous.get(f"/v1/runs/{run['id']}/events", headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "invalid_api_key"
        for method, path in (
            ("GET", f"/v1/runs/{run['id']}"),
            ("GET", f"/v1/runs/{run['id']}/steps"),
            ("GET", "/v1/runs"),
            ("POST", f"/v1/runs/{run['id']}/cancel"),
            ("POST", "/v1/stream-tokens"),
            ("POST", "/v1/agents/plain/stream"),
        ):
            response = anonymous.request(method, path, params={"token": token}, json={"input": "x"})
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"]["code"] == "stream_token_not_accepted", path
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_tampered_foreign_and_out_of_scope_tokens_are_refused(
    srv: Server, mock: MockLLMServer
) -> None:
    with srv.client() as client:
        run = finished_run(client)
        other = finished_run(client)
        token = mint(client, run_id=run["id"]).json()["token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    now = int(time.time())
    widened = {**claims, "scope": {"run_id": other["id"]}}
    cases = {
        "stream_token_expired": forged({**claims, "iat": now - 600, "exp": now - 60}),
        "invalid_stream_token": ".".join(
            [header, base64.urlsafe_b64encode(json.dumps(widened).encode()).decode().rstrip("="), signature]
        ),
    }
    for code, value in cases.items():
        response = events(srv, other["id"] if code == "invalid_stream_token" else run["id"], value)
        assert response.status_code == 401, (code, response.text)
        assert response.json()["error"]["code"] == code
    for value in (
        forged(claims, secret="another-" + "x" * 32),  # another deployment  # pragma: allowlist secret
        forged({**claims, "aud": "someone-else"}),
        forged({k: v for k, v in claims.items() if k != "exp"}),
        "not-a-token",
        "",
    ):
        response = events(srv, run["id"], value)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] in {"invalid_stream_token", "missing_credentials"}
    wrong_run = events(srv, other["id"], token)
    assert wrong_run.status_code == 403
    assert wrong_run.json()["error"]["code"] == "stream_token_scope"
    unknown = events(srv, "run_doesnotexist", token)
    assert unknown.status_code == 403  # refused before any lookup: no existence oracle


def test_a_thread_token_admits_the_runs_of_that_thread_only(srv: Server, mock: MockLLMServer) -> None:
    thread = f"thread-{secrets.token_hex(4)}"
    with srv.client() as client:
        on_thread = finished_run(client, thread_id=thread)
        elsewhere = finished_run(client)
        response = mint(client, thread_id=thread)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert response.json()["scope"] == {"run_id": None, "thread_id": thread}
    assert events(srv, on_thread["id"], token).status_code == 200
    refused = events(srv, elsewhere["id"], token)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "stream_token_scope"


def test_minting_needs_credentials_visibility_and_a_valid_body(srv: Server, mock: MockLLMServer) -> None:
    """Only a caller who sees the run (or thread) gets a token; bad bodies are 422 and mint nothing."""
    alice, bob = make_key(srv, user_id="alice-2"), make_key(srv, user_id="bob-2")
    thread = f"thread-{secrets.token_hex(4)}"
    with srv.client(key=alice) as client:
        run = finished_run(client, thread_id=thread)
    with srv.client(key=bob) as client:
        assert mint(client, run_id=run["id"]).status_code == 404
        assert mint(client, thread_id=thread).status_code == 404
        for body in (
            {},
            {"run_id": run["id"], "thread_id": thread},
            {"run_id": run["id"], "ttl_seconds": 601},
            {"run_id": run["id"], "ttl_seconds": 0},
            {"run_id": "bad id with spaces"},
            {"run_id": run["id"], "extra": 1},
        ):
            response = mint(client, **body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["code"] == "invalid_request"
    with httpx.Client(base_url=srv.url, timeout=30) as anonymous:
        assert anonymous.post("/v1/stream-tokens", json={"run_id": run["id"]}).status_code == 401
    with srv.client(key=alice) as client:
        response = mint(client, run_id=run["id"], ttl_seconds=600)
    assert response.status_code == 200
    # A token carries its minter's visibility: bob's own token for alice's run is impossible, and
    # alice's token still admits only what alice sees.
    assert events(srv, run["id"], response.json()["token"]).status_code == 200


def test_revoking_the_minting_key_kills_its_tokens(srv: Server, mock: MockLLMServer) -> None:
    key = make_key(srv, user_id="carol")
    with srv.client(key=key) as client:
        run = finished_run(client)
        token = mint(client, run_id=run["id"]).json()["token"]
    assert events(srv, run["id"], token).status_code == 200
    key_id = key.split("_")[1]
    with srv.client() as admin:
        assert admin.post(f"/v1/admin/keys/{key_id}/revoke").status_code == 200
    response = events(srv, run["id"], token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "key_revoked"


def test_minting_is_audited_and_tokens_never_reach_the_logs(srv: Server, mock: MockLLMServer) -> None:
    with srv.client() as client:
        run = finished_run(client)
        token = mint(client, run_id=run["id"]).json()["token"]
        assert events(srv, run["id"], token).status_code == 200
        assert events(srv, "run_other", token).status_code == 403
        entries = client.get("/v1/audit", params={"action": "stream_token.*"}).json()["data"]
        metrics = client.get("/metrics").text
    assert any(e["target"] == run["id"] and e["details"]["run_id"] == run["id"] for e in entries)
    assert token not in json.dumps(entries)
    assert token not in metrics
    log = srv.log()
    assert run["id"] in log  # the run was logged...
    assert token not in log  # ...the token never
    assert token.rsplit(".", 1)[1] not in log


def test_the_log_masker_hides_a_token_in_any_line() -> None:
    """An access line (uvicorn's, should an operator enable it) or any other value with a token in
    its query string is masked by the masker every log line goes through."""
    from agenthost.security.redaction import log_masker

    token = forged({"iss": "agenthost", "aud": "agenthost:stream", "exp": int(time.time()) + 60})
    line = f'127.0.0.1:5000 - "GET /v1/runs/run_x/events?token={token}&after=3 HTTP/1.1" 200'
    masked = log_masker()(line)
    assert token not in masked
    assert token.rsplit(".", 1)[1] not in masked
    assert masked.startswith('127.0.0.1:5000 - "GET /v1/runs/run_x/events?token=')


def test_tokens_survive_a_restart_without_a_configured_secret(
    tmp_path: Path, mock_server: MockLLMServer
) -> None:
    """Unset secret: the key comes from the deployment secret in the database, so a restarted
    process (or another replica on the same database) accepts tokens minted before."""
    config = server_config(f"sqlite:///{tmp_path / 'agenthost.db'}", mock_server.url)
    server = Server(tmp_path, config).start()
    try:
        with server.client() as client:
            run = finished_run(client)
            token = mint(client, run_id=run["id"]).json()["token"]
        assert events(server, run["id"], token).status_code == 200
        server.stop()
        server.start()
        assert events(server, run["id"], token).status_code == 200
        assert (
            events(server, run["id"], forged(jwt.decode(token, options={"verify_signature": False}))).json()[
                "error"
            ]["code"]
            == "invalid_stream_token"
        )
    finally:
        server.stop()
