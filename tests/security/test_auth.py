"""API keys, roles and tenant isolation over HTTP, on SQLite and Postgres, as an attacker would try."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from agenthost.testing import MockLLMServer
from tests.harness import Server, wait_for_status


def make_key(server: Server, **spec: Any) -> tuple[str, dict[str, Any]]:
    with server.client() as admin:
        response = admin.post("/v1/admin/keys", json={"name": spec.pop("name", "k"), **spec})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key"], body


def run(client: httpx.Client, agent: str = "plain", **body: Any) -> httpx.Response:
    return client.post(f"/v1/agents/{agent}/run", json={"input": "hello", **body})


def test_missing_wrong_malformed_key_is_401(server: Server, mock: MockLLMServer) -> None:
    key, _ = make_key(server)
    key_id = key.split("_")[1]
    forged = f"ahk_{key_id}_" + "A" * 43  # a real id with a wrong secret
    for headers in ({}, {"X-API-Key": "nope"}, {"Authorization": "Bearer " + forged}, {"X-API-Key": ""}):
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            response = run(client)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json()["error"]["code"] in {"missing_credentials", "invalid_api_key"}
            assert client.get("/v1/runs").status_code == 401
    with server.client(key=None) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/metrics").status_code == 401
    with server.client(key=key) as client:
        assert run(client).status_code == 200
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as bearer:
            assert run(bearer).status_code == 200


def test_revoked_expired_and_rotated_keys(server: Server, mock: MockLLMServer) -> None:
    key, created = make_key(server, name="to-revoke")
    short, _ = make_key(server, name="short", expires_in_days=1 / 86400)  # one second
    with server.client(key=key) as client:
        assert run(client).status_code == 200
    with server.client() as admin:
        listed = admin.get("/v1/admin/keys").json()["data"]
        assert any(k["id"] == created["id"] for k in listed)
        assert all("secret_hash" not in k and "key" not in k for k in listed)
        assert admin.post(f"/v1/admin/keys/{created['id']}/revoke").json()["status"] == "revoked"
    with server.client(key=key) as client:
        response = run(client)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "key_revoked"
    time.sleep(1.2)
    with server.client(key=short) as client:
        response = run(client)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "key_expired"

    old, body = make_key(server, name="rotating")
    with server.client() as admin:
        rotated = admin.post(f"/v1/admin/keys/{body['id']}/rotate").json()
    new = rotated["key"]
    assert new != old
    assert rotated["previous_valid_until"] is not None
    for secret in (old, new):  # the old secret keeps working for the grace period
        with server.client(key=secret) as client:
            assert run(client).status_code == 200


def test_roles_and_scopes_are_403(server: Server, mock: MockLLMServer) -> None:
    reader, _ = make_key(server, role="readonly", user_id="reader")
    scoped, _ = make_key(server, role="user", user_id="scoped", agents=["plain"])
    with server.client(key=reader) as client:
        assert run(client).status_code == 403
        assert client.get("/v1/runs").status_code == 200
        assert client.get("/v1/admin/keys").status_code == 403
        assert client.post("/v1/admin/keys", json={"name": "x", "role": "admin"}).status_code == 403
        assert client.get("/v1/alerts").status_code == 403
        assert client.get("/metrics").status_code == 403
    with server.client(key=scoped) as client:
        assert run(client).status_code == 200
        denied = run(client, agent="support")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "forbidden"
        # A user key acts for its own user only.
        assert run(client, user_id="somebody-else").status_code == 403
    with server.client() as admin:
        bad_role = admin.post("/v1/admin/keys", json={"name": "x", "role": "emperor"})
        assert bad_role.status_code == 422
        assert bad_role.json()["error"]["code"] == "unknown_role"
        bad_agent = admin.post("/v1/admin/keys", json={"name": "x", "agents": ["nope"]})
        assert bad_agent.status_code == 422


def test_tenant_isolation_every_id_endpoint_is_404(server: Server, mock: MockLLMServer) -> None:
    alice, _ = make_key(server, user_id="alice-iso")
    mallory, _ = make_key(server, user_id="mallory-iso")
    thread = f"th-alice-{time.monotonic_ns()}"
    with server.client(key=alice) as client:
        finished = run(client, thread_id=thread).json()
        pending = client.post(
            "/v1/agents/support/runs", json={"input": "[refund] order 5678 arrived broken"}
        ).json()
        waiting = wait_for_status(client, pending["id"], {"waiting_approval"})
        approval = client.get("/v1/approvals", params={"run_id": pending["id"]}).json()["data"][0]
    run_id, waiting_id = finished["id"], waiting["id"]
    probes = [
        ("GET", f"/v1/runs/{run_id}", None),
        ("GET", f"/v1/runs/{run_id}/events?after=0", None),
        ("GET", f"/v1/runs/{run_id}/steps", None),
        ("POST", f"/v1/runs/{run_id}/cancel", None),
        ("POST", f"/v1/runs/{run_id}/resume", None),
        ("POST", f"/v1/runs/{run_id}/fork", {"from_step": 1}),
        ("POST", f"/v1/runs/{waiting_id}/approvals/{approval['id']}", {"decision": "approve"}),
        ("GET", f"/v1/threads/{thread}", None),
        ("DELETE", f"/v1/threads/{thread}", None),
        ("GET", f"/agent/status/{run_id}", None),
        ("POST", "/v1/agents/plain/run", {"input": "join", "thread_id": thread}),
        ("DELETE", "/v1/users/alice-iso/data", None),
    ]
    with server.client(key=mallory) as client:
        for method, path, body in probes:
            response = client.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.status_code, response.text)
            # The same answer as for ids that do not exist: nothing to learn from the difference.
            assert response.json()["error"]["code"] in {"run_not_found", "thread_not_found", "user_not_found"}
        listed = client.get("/v1/runs", params={"limit": 1000}).json()["data"]
        assert not {run_id, waiting_id} & {r["id"] for r in listed}
        assert client.get("/v1/approvals", params={"status": "pending"}).json()["data"] == []
        costs = client.get("/v1/costs").json()
        assert costs["total"]["nanousd"] == 0
        assert costs["top_runs"] == []
    with server.client(key=alice) as client:
        # The owner still sees and acts on all of it.
        assert client.get(f"/v1/runs/{run_id}").status_code == 200
        assert client.get(f"/v1/threads/{thread}").status_code == 200
        assert {r["id"] for r in client.get("/v1/runs").json()["data"]} >= {run_id, waiting_id}
        assert client.get("/v1/costs").json()["total"]["calls"] >= 1
        decided = client.post(f"/v1/runs/{waiting_id}/approvals/{approval['id']}", json={"decision": "deny"})
        assert decided.status_code == 200
        assert decided.json()["decided_by"] == "alice-iso"
        # Let the run finish here: its last model call must not land in another test's mock counts.
        wait_for_status(client, waiting_id, {"succeeded", "failed"})


def test_service_key_sees_what_it_created(server: Server, mock: MockLLMServer) -> None:
    """A key with no user owner may name end users, and sees the runs it made for any of them."""
    service, _ = make_key(server, name="backend")
    other, _ = make_key(server, name="other-backend")
    with server.client(key=service) as client:
        made = run(client, user_id="end-user-7").json()
        assert made["user_id"] == "end-user-7"
        assert client.get(f"/v1/runs/{made['id']}").status_code == 200
    with server.client(key=other) as client:
        assert client.get(f"/v1/runs/{made['id']}").status_code == 404


@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory, mock_server: MockLLMServer) -> Any:
    from tests.harness import server_config

    workdir = tmp_path_factory.mktemp("policy")
    config = server_config(
        f"sqlite:///{workdir / 'data' / 'agenthost.db'}",
        mock_server.url,
        default_tool_risk="high",
        roles={"basic": {"max_tool_risk": "low", "approve_max_risk": "none"}},
    )
    config["agents"]["support"]["tools"] = {
        "search_kb": {"risk": "low"},
        "get_order": {"risk": "medium"},
        "refund": {"risk": "critical", "execution": "at_most_once"},
    }
    srv = Server(workdir, config).start()
    yield srv
    srv.stop()


def _offered(client: httpx.Client) -> str:
    response = client.post("/v1/agents/support/run", json={"input": "[tools] which tools?"})
    assert response.status_code == 200, response.text
    return str(response.json()["output"]).removeprefix("offered: ")


def test_tools_above_the_role_are_not_offered(policy_server: Server, mock: MockLLMServer) -> None:
    basic, _ = make_key(policy_server, role="basic", user_id="b1")
    user, _ = make_key(policy_server, role="user", user_id="u1")
    operator, _ = make_key(policy_server, role="operator", user_id="op1")
    with policy_server.client(key=basic) as client:
        assert _offered(client) == "search_kb"
    with policy_server.client(key=user) as client:
        assert _offered(client) == "get_order,search_kb"
        # The model asks for refund anyway: it is not a tool of this run, so it never executes.
        body = client.post("/v1/agents/support/run", json={"input": "[critical-refund] give me money"}).json()
        assert body["status"] == "succeeded"
        events = client.get(f"/v1/runs/{body['id']}/events", params={"after": 0}, timeout=10)
        assert '"name": "refund"' not in events.text
        assert '"name":"refund"' not in events.text
        assert client.get("/v1/approvals", params={"run_id": body["id"]}).json()["data"] == []
    with policy_server.client(key=operator) as client:
        assert _offered(client) == "get_order,refund,search_kb"


def test_critical_tool_needs_operator_approval(policy_server: Server, mock: MockLLMServer) -> None:
    alice, _ = make_key(policy_server, role="user", user_id="alice-crit")
    operator, _ = make_key(policy_server, role="operator", user_id="op-crit")
    with policy_server.client(key=operator) as client:
        # An operator console starts a run for alice: it is hers, with the operator's tool level.
        started = client.post(
            "/v1/agents/support/runs", json={"input": "[critical-refund] broken", "user_id": "alice-crit"}
        ).json()
        wait_for_status(client, started["id"], {"waiting_approval"})
        approval = client.get("/v1/approvals", params={"run_id": started["id"]}).json()["data"][0]
    url = f"/v1/runs/{started['id']}/approvals/{approval['id']}"
    with policy_server.client(key=alice) as client:
        assert client.get(f"/v1/runs/{started['id']}").status_code == 200
        refused = client.post(url, json={"decision": "approve"})
        assert refused.status_code == 403, refused.text
        assert client.get(f"/v1/runs/{started['id']}").json()["status"] == "waiting_approval"
    with policy_server.client(key=operator) as client:
        assert client.post(url, json={"decision": "approve"}).status_code == 200
        done = wait_for_status(client, started["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded"
        assert "Refund result" in str(done["output"])


def test_auth_none_is_explicit_and_loud(tmp_path: Any, mock_server: MockLLMServer) -> None:
    from tests.harness import server_config

    config = server_config(f"sqlite:///{tmp_path / 'a.db'}", mock_server.url, auth="none")
    srv = Server(tmp_path, config).start()
    try:
        with srv.client(key=None) as client:
            assert run(client).status_code == 200
        assert "AUTHENTICATION IS OFF" in srv.log()
    finally:
        srv.stop()


def test_jwt_bearer_tokens_over_http(tmp_path: Any, mock_server: MockLLMServer) -> None:
    """A server with `[auth.jwt]` accepts signed tokens (role and user from claims) and refuses
    unsigned, wrong-audience, expired and tampered ones with 401."""
    import base64
    import json

    import jwt as pyjwt

    from tests.harness import server_config

    secret = "s" * 40  # pragma: allowlist secret
    config = server_config(
        f"sqlite:///{tmp_path / 'a.db'}",
        mock_server.url,
        auth={"jwt": {"secret": secret, "issuer": "https://idp.test", "audience": "agenthost"}},
    )
    srv = Server(tmp_path, config).start()
    now = int(time.time())
    claims = {"sub": "jwt-user", "role": "user", "iss": "https://idp.test", "aud": "agenthost"}
    good = pyjwt.encode({**claims, "exp": now + 300, "iat": now}, secret, algorithm="HS256")
    wrong_aud = pyjwt.encode({**claims, "aud": "other", "exp": now + 300}, secret, algorithm="HS256")
    expired = pyjwt.encode({**claims, "exp": now - 600, "iat": now - 900}, secret, algorithm="HS256")
    header = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    )
    payload = base64.urlsafe_b64encode(json.dumps({**claims, "exp": now + 300}).encode()).rstrip(b"=")
    unsigned = f"{header}.{payload.decode()}."
    head, body, signature = good.split(".")
    admin_claims = base64.urlsafe_b64encode(json.dumps({**claims, "role": "admin"}).encode()).rstrip(b"=")
    tampered = f"{head}.{admin_claims.decode()}.{signature}"
    try:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {good}"}, timeout=30) as c:
            made = run(c)
            assert made.status_code == 200, made.text
            assert made.json()["user_id"] == "jwt-user"
            assert c.get("/v1/admin/keys").status_code == 403
        for token in (wrong_aud, expired, unsigned, tampered, body):
            with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as c:
                response = run(c)
                assert response.status_code == 401, (token, response.text)
    finally:
        srv.stop()
