"""`/v1/admin/keys`: API key management (admin only). A new or rotated key is shown once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.responses import Response

from agenthost.errors import ErrorCode, InvalidRequestError
from agenthost.runtime.process import Runtime
from agenthost.security.audit import actor_fields
from agenthost.security.auth import Authenticator, Principal
from agenthost.security.keys import KeySpec
from agenthost.server.deps import AdminDep, RuntimeDep
from agenthost.server.middleware import request_id_of
from agenthost.server.openapi import error_responses
from agenthost.server.query import QueryBool
from agenthost.server.schemas import MAX_OUTPUT_TOKENS, LimitsRequest
from agenthost.settings import Settings

router = APIRouter(prefix="/v1/admin/keys", tags=["keys"])

# Per minute. Rate-limit arithmetic (and the Redis scripts) works in doubles, exact to 2**53.
_MAX_RATE = 10**12
# A budget becomes a nano-USD counter in a BIGINT column (at most ~9.2e18).
_MAX_BUDGET_USD = 1_000_000_000

KeyId = Annotated[str, Path(pattern=r"^[a-z0-9]{12}$", description="The key id (`ahk_<id>_...`).")]


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def _json(data: dict[str, Any], status: int = 200) -> Response:
    body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
    return JSONResponse({"object": "api_key", **body}, status_code=status)


async def _audit(  # noqa: PLR0917 - one entry's fields
    request: Request, action: str, admin: Principal, key_id: str, owner: str | None, details: dict[str, Any]
) -> None:
    runtime: Runtime = request.app.state.runtime
    await runtime.policies.audit.append(
        action,
        **actor_fields(admin.subject, admin.user_id),
        subject_user=owner,
        target=key_id,
        details=details,
        request_id=request_id_of(request.scope),
    )


def validate_spec(settings: Settings, roles: dict[str, Any], spec: KeySpec) -> None:
    """422 for a role that is not configured, or an agent/model scope that names nothing served."""
    if spec.role not in roles:
        msg = f"role {spec.role!r} is not configured; roles: {sorted(roles)}"
        raise InvalidRequestError(msg, code=ErrorCode.UNKNOWN_ROLE)
    served = {*settings.agents, *settings.models}
    unknown = sorted(set(spec.agents or ()) - served)
    if unknown:
        msg = f"agents {unknown} are neither agents nor models served here"
        raise InvalidRequestError(msg, code=ErrorCode.UNKNOWN_AGENT)
    if spec.limits:
        fields = set(settings.limits.model_fields)
        bad = sorted(set(spec.limits) - fields)
        if bad:
            msg = f"unknown run limits {bad}; known: {sorted(fields)}"
            raise InvalidRequestError(msg, code=ErrorCode.INVALID_LIMITS)
        _check_limits(settings, spec.limits)
    for name, value in (spec.rate_limits.model_dump(exclude_none=True) if spec.rate_limits else {}).items():
        if value > _MAX_RATE:
            msg = f"rate_limits.{name} must be at most {_MAX_RATE}"
            raise InvalidRequestError(msg, code=ErrorCode.INVALID_RATE_LIMITS)
    for name, usd in (spec.budgets.model_dump(exclude_none=True) if spec.budgets else {}).items():
        if usd > _MAX_BUDGET_USD:
            msg = f"budgets.{name} must be at most {_MAX_BUDGET_USD}"
            raise InvalidRequestError(msg, code=ErrorCode.INVALID_BUDGETS)


def _check_limits(settings: Settings, limits: dict[str, Any]) -> None:
    """422 unless the key's run limits are values the run guard accepts, within the bounds a
    request may ask for (a key's limits are only checked when a run starts: a bad one would fail
    every run made with the key)."""
    try:
        type(settings.limits).model_validate({**settings.limits.model_dump(), **limits})
        LimitsRequest.model_validate({k: v for k, v in limits.items() if k in LimitsRequest.model_fields})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidRequestError(f"invalid run limits: {problems}", code=ErrorCode.INVALID_LIMITS) from None
    if limits.get("output_tokens_estimate", 0) > MAX_OUTPUT_TOKENS:
        msg = f"output_tokens_estimate must be at most {MAX_OUTPUT_TOKENS}"
        raise InvalidRequestError(msg, code=ErrorCode.INVALID_LIMITS)


_ADMIN = error_responses(403, s403="Admin keys only: `forbidden`.")
_ONE_KEY = {**_ADMIN, **error_responses(404, s404="No such key: `key_not_found`.")}


@router.post("", status_code=201, responses=_ADMIN)
async def create_key(
    body: Annotated[KeySpec, Body()], runtime: RuntimeDep, admin: AdminDep, request: Request
) -> Response:
    """Create a key. The response's `key` is the only time the secret is shown."""
    authenticator = _authenticator(request)
    validate_spec(runtime.settings, authenticator.roles, body)
    key, token = await authenticator.keys.create(body, created_by=admin.subject)
    await _audit(request, "key.created", admin, key.id, key.user_id, {"role": key.role, "name": key.name})
    return _json({**key.public(datetime.now(UTC)), "key": token}, status=201)


@router.get("", responses=_ADMIN)
async def list_keys(
    request: Request,
    _admin: AdminDep,
    include_revoked: Annotated[QueryBool, Query(description="Also list revoked keys.")] = False,
) -> Response:
    """Keys, newest first, without secrets."""
    now = datetime.now(UTC)
    keys = await _authenticator(request).keys.list(include_revoked=include_revoked)
    data = [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in key.public(now).items()}
        for key in keys
    ]
    return JSONResponse({"object": "list", "data": data})


@router.get("/{key_id}", responses=_ONE_KEY)
async def get_key(key_id: KeyId, request: Request, _admin: AdminDep) -> Response:
    """One key, without its secret."""
    key = await _authenticator(request).keys.existing(key_id)
    return _json(key.public(datetime.now(UTC)))


@router.post("/{key_id}/revoke", responses=_ONE_KEY)
async def revoke_key(key_id: KeyId, request: Request, admin: AdminDep) -> Response:
    """Revoke a key now; requests with it (or a rotated-out secret of it) get 401."""
    authenticator = _authenticator(request)
    key = await authenticator.keys.revoke(key_id)
    authenticator.forget(key_id)
    await _audit(request, "key.revoked", admin, key.id, key.user_id, {})
    return _json(key.public(datetime.now(UTC)))


@router.post(
    "/{key_id}/rotate",
    responses={**_ONE_KEY, **error_responses(409, s409="The key is revoked or expired: `key_not_active`.")},
)
async def rotate_key(key_id: KeyId, request: Request, admin: AdminDep) -> Response:
    """A new secret for the key (shown once); the old one works for `[auth] rotation_grace_seconds`."""
    authenticator = _authenticator(request)
    grace = timedelta(seconds=authenticator.settings.rotation_grace_seconds)
    key, token = await authenticator.keys.rotate(key_id, grace)
    authenticator.forget(key_id)
    await _audit(request, "key.rotated", admin, key.id, key.user_id, {"grace_seconds": grace.total_seconds()})
    return _json({**key.public(datetime.now(UTC)), "key": token})
