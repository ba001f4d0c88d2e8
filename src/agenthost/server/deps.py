"""FastAPI dependencies, as `Annotated` aliases."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import WithJsonSchema

from agenthost.errors import ErrorCode, ForbiddenError, InvalidRequestError, NotFoundError, UnauthorizedError
from agenthost.runtime.process import Runtime
from agenthost.runtime.recovery import RunRecovery
from agenthost.runtime.service import RunService
from agenthost.security.auth import Authenticator, Principal
from agenthost.security.ratelimit import RateLimiter, client_ip
from agenthost.security.stream_tokens import StreamScope, StreamTokens

__all__ = [
    "STREAM_TOKEN_ROUTES",
    "AdminDep",
    "IdempotencyKeyDep",
    "PrincipalDep",
    "RecoveryDep",
    "RuntimeDep",
    "ServiceDep",
    "authenticate",
    "ensure_thread",
    "visible_run",
    "visible_stream_run",
]

_MAX_KEY = 256
# Visible ASCII, inner spaces allowed (HTTP drops a value's outer spaces); the OpenAPI document
# shows the same pattern.
_KEY_PATTERN = r"^[!-~](?:[ -~]{0,254}[!-~])?$"

STREAM_TOKEN_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/v1/runs/{run_id}/events")})
"""The only routes that accept a stream token (`?token=`): SSE streams that follow an existing run."""


async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _service(request: Request) -> RunService:
    runtime: Runtime = request.app.state.runtime
    return runtime.service


async def _recovery(request: Request) -> RunRecovery:
    runtime: Runtime = request.app.state.runtime
    return runtime.recovery


async def _idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(description="Repeat a request safely: the same key answers with the same run."),
        WithJsonSchema({"type": "string", "pattern": _KEY_PATTERN}),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not re.fullmatch(_KEY_PATTERN, idempotency_key):
        msg = f"Idempotency-Key must be 1-{_MAX_KEY} visible ASCII characters (inner spaces allowed)"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_IDEMPOTENCY_KEY)
    return idempotency_key


def rate_identities(
    request: Request, principal: Principal | None, limiter: RateLimiter
) -> dict[str, str | None]:
    """Who a request counts against: its key, its user and its client address."""
    peer = request.client.host if request.client is not None else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), limiter.settings)
    if principal is None:
        return {"ip": ip}
    return {"key": principal.key_id, "user": principal.user_id, "ip": ip}


async def authenticate(request: Request) -> Principal:
    """The caller (401 without valid credentials), admitted by the rate limits (429 otherwise);
    computed once per request. Failed authentications count against the client address too."""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    authenticator: Authenticator = request.app.state.authenticator
    limiter: RateLimiter = request.app.state.runtime.policies.limiter
    try:
        principal = await _principal(request, authenticator)
    except UnauthorizedError:
        await limiter.hit_request(rate_identities(request, None, limiter))  # key guessing ends in 429s
        raise
    identities = rate_identities(request, principal, limiter)
    overrides = limiter.key_overrides(principal.key.rate_limits if principal.key is not None else None)
    state = await limiter.hit_request(identities, overrides)
    request.state.principal = principal
    request.state.rate_limit = (identities, overrides)
    request.state.rate_limit_headers = state.headers()
    return principal


async def _principal(request: Request, authenticator: Authenticator) -> Principal:
    """From the credential headers, else (on `STREAM_TOKEN_ROUTES` only) from a `token` query value."""
    token = request.query_params.get("token")
    headers = request.headers
    if token is None or "x-api-key" in headers or "authorization" in headers:
        return await authenticator.authenticate(headers)
    route = request.scope.get("route")
    if (request.method, getattr(route, "path", None)) not in STREAM_TOKEN_ROUTES:
        msg = (
            "stream tokens (?token=) are accepted only by GET /v1/runs/{run_id}/events; "
            "send an API key as X-API-Key or Authorization: Bearer"
        )
        raise UnauthorizedError(msg, code=ErrorCode.STREAM_TOKEN_NOT_ACCEPTED).with_headers(
            {"WWW-Authenticate": 'Bearer realm="agenthost"'}
        )
    tokens: StreamTokens = request.app.state.stream_tokens
    principal, scope = await tokens.verify(token)
    request.state.stream_scope = scope
    return principal


async def _admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    principal.require_admin()
    return principal


async def visible_run(service: RunService, principal: Principal, run_id: str) -> dict[str, Any]:
    """The run, if the caller may see it; otherwise the same 404 as for a run that does not exist."""
    row = await service.get(run_id)
    if not principal.sees(row):
        raise NotFoundError(f"run {run_id!r} does not exist", code=ErrorCode.RUN_NOT_FOUND)
    return row


async def visible_stream_run(
    request: Request, service: RunService, principal: Principal, run_id: str
) -> dict[str, Any]:
    """`visible_run`, and, for a caller admitted by a stream token, inside the token's scope (403)."""
    scope = getattr(request.state, "stream_scope", None)
    if isinstance(scope, StreamScope) and scope.run_id is not None and scope.run_id != run_id:
        # Refused before any lookup: a token for one run says nothing about whether another exists.
        raise ForbiddenError("this stream token is for another run", code=ErrorCode.STREAM_TOKEN_SCOPE)
    row = await visible_run(service, principal, run_id)
    if isinstance(scope, StreamScope) and not scope.covers(row):
        raise ForbiddenError("this stream token is for another thread", code=ErrorCode.STREAM_TOKEN_SCOPE)
    return row


async def ensure_thread(runtime: Runtime, principal: Principal, thread_id: str | None) -> None:
    """404 unless every run on the thread is visible to the caller (a new thread id is fine)."""
    if thread_id is None:
        return
    owners = await runtime.backends.runs.thread_owners(thread_id)
    if not all(principal.sees(owner) for owner in owners):
        raise NotFoundError(f"thread {thread_id!r} does not exist", code=ErrorCode.THREAD_NOT_FOUND)


PrincipalDep = Annotated[Principal, Depends(authenticate)]
AdminDep = Annotated[Principal, Depends(_admin)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
ServiceDep = Annotated[RunService, Depends(_service)]
RecoveryDep = Annotated[RunRecovery, Depends(_recovery)]
IdempotencyKeyDep = Annotated[str | None, Depends(_idempotency_key)]
