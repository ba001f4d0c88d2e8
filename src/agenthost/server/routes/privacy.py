"""`GET /v1/audit` (the audit log) and `DELETE /v1/users/{user_id}/data` (GDPR erasure); admins only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from agenthost.errors import ErrorCode, NotFoundError
from agenthost.security.audit import actor_fields
from agenthost.server.deps import AdminDep, PrincipalDep, RuntimeDep
from agenthost.server.middleware import request_id_of
from agenthost.server.openapi import error_responses
from agenthost.server.query import IsoDateTime
from agenthost.server.schemas import MAX_AUDIT_SEQ

router = APIRouter(tags=["privacy"])


@router.get("/v1/audit", responses=error_responses(403))
async def list_audit(  # noqa: PLR0917 - one query parameter per filter
    runtime: RuntimeDep,
    _admin: AdminDep,
    since: Annotated[IsoDateTime | None, Query(description="Entries at or after this time.")] = None,
    until: Annotated[IsoDateTime | None, Query(description="Entries before this time.")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="An action, or a prefix ending in `*` (`run.*`).")
    ] = None,
    user: Annotated[str | None, Query(max_length=256, description="Entries made by this user.")] = None,
    subject: Annotated[str | None, Query(max_length=256, description="Entries about this user.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[
        int | None, Query(ge=1, le=MAX_AUDIT_SEQ, description="Page: entries before this seq.")
    ] = None,
) -> dict[str, Any]:
    """Audit entries, newest first (admin only)."""
    entries = await runtime.policies.audit.list(
        since=since,
        until=until,
        action=action,
        actor_user=user,
        subject_user=subject,
        limit=limit,
        before_seq=before_seq,
    )
    more = len(entries) == limit
    return {
        "object": "list",
        "data": [entry.to_dict() for entry in entries],
        "next_before_seq": entries[-1].seq if more and entries else None,
    }


@router.delete(
    "/v1/users/{user_id}/data",
    responses=error_responses(
        404,
        409,
        s404="Not the caller's own user (non-admins): `user_not_found`.",
        s409="The user has runs in progress: `user_has_active_runs`.",
    ),
)
async def erase_user_data(
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    request: Request,
    runtime: RuntimeDep,
    caller: PrincipalDep,
) -> dict[str, Any]:
    """Erase a user's data and return the receipt (409 `user_has_active_runs` while runs are active).

    Admins may erase anyone's data; any other caller only its own user's (the data subject's
    right to erasure)."""
    if not caller.role.admin and caller.user_id != user_id:
        # Like every id a caller may not see: 404, telling nothing about whether the user exists.
        raise NotFoundError(
            f"user {user_id!r} has no data visible to this caller", code=ErrorCode.USER_NOT_FOUND
        )
    receipt = await runtime.privacy.erase_user(
        user_id, **actor_fields(caller.subject, caller.user_id), request_id=request_id_of(request.scope)
    )
    return {"object": "erasure_receipt", **receipt.to_dict()}
