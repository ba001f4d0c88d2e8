"""`/v1/stream-tokens`: short-lived tokens for a browser's `EventSource` (`security/stream_tokens.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from starlette.responses import Response

from agenthost.security.audit import actor_fields
from agenthost.security.stream_tokens import StreamScope, StreamTokens
from agenthost.server.deps import PrincipalDep, RuntimeDep, ServiceDep, ensure_thread, visible_run
from agenthost.server.middleware import request_id_of
from agenthost.server.openapi import error_responses

router = APIRouter(prefix="/v1/stream-tokens", tags=["stream tokens"])

_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
_Id = Annotated[str, Field(min_length=1, max_length=128, pattern=_ID_PATTERN)]
# Optional by absence only: the document shows the non-null type (explicit nulls are a 422).
_OptionalId = Annotated[
    _Id | None,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128, "pattern": _ID_PATTERN}),
]
_OptionalInt = Annotated[
    int | None,
    Field(ge=1, le=2**31 - 1),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
]


class StreamTokenRequest(BaseModel):
    """What a token may follow: one run, or every run on one thread (exactly one of the two)."""

    # The schema says what the validator enforces: one of the two ids, neither null.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"oneOf": [{"required": ["run_id"]}, {"required": ["thread_id"]}]},
    )

    run_id: _OptionalId = Field(None, description="Follow this run's events.")
    thread_id: _OptionalId = Field(None, description="Follow the events of any run on this thread.")
    ttl_seconds: _OptionalInt = Field(
        None,
        description="Lifetime in seconds; default `[server.stream_tokens] default_ttl_seconds`, at most "
        "`max_ttl_seconds` (more is a 422).",
    )

    @field_validator("run_id", "thread_id", "ttl_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Absent means "not given"; an explicit null is not a value the document allows.
        if value is None:
            msg = "must not be null (leave the field out instead)"
            raise ValueError(msg)
        # JSON does not tell 5 from 5.0; anything else is read strictly ("5" and true are not numbers).
        return int(value) if isinstance(value, float) and value.is_integer() else value

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        if (self.run_id is None) == (self.thread_id is None):
            msg = "give exactly one of run_id and thread_id"
            raise ValueError(msg)
        return self


class StreamTokenScope(BaseModel):
    run_id: str | None = Field(None, description="The run the token follows.")
    thread_id: str | None = Field(None, description="The thread whose runs the token follows.")


class StreamTokenView(BaseModel):
    """A stream token: send it as `?token=` to `GET /v1/runs/{run_id}/events`, nowhere else."""

    object: str = Field("stream_token", description="Always `stream_token`.")
    token: str = Field(description="The token; treat it as a credential until it expires.")
    expires_at: datetime = Field(description="When the token stops being accepted (UTC).")
    scope: StreamTokenScope


@router.post(
    "",
    response_model=StreamTokenView,
    responses=error_responses(
        404,
        s404="The run or thread does not exist or is not visible to the caller: `run_not_found`, "
        "`thread_not_found`.",
    ),
)
async def create_stream_token(
    body: StreamTokenRequest,
    request: Request,
    runtime: RuntimeDep,
    service: ServiceDep,
    principal: PrincipalDep,
) -> Response:
    """A short-lived token that lets `EventSource` (which cannot send headers) follow one run, or
    the runs of one thread, as the caller: `GET /v1/runs/{run_id}/events?token=...`."""
    tokens: StreamTokens = request.app.state.stream_tokens
    ttl = tokens.ttl(body.ttl_seconds)  # a bad ttl is a 422 before anything is looked up
    if body.run_id is not None:
        scope = StreamScope(run_id=body.run_id)
        subject_user = (await visible_run(service, principal, body.run_id))["user_id"]
    else:
        scope = StreamScope(thread_id=body.thread_id)
        await ensure_thread(runtime, principal, body.thread_id)
        subject_user = principal.user_id
    minted = await tokens.mint(principal, scope, ttl)
    await runtime.policies.audit.append(
        "stream_token.created",
        **actor_fields(principal.subject, principal.user_id),
        subject_user=subject_user,
        target=body.run_id or body.thread_id,
        details={**scope.claim(), "expires_at": minted.expires_at.isoformat()},
        request_id=request_id_of(request.scope),
    )
    view = StreamTokenView(
        token=minted.token, expires_at=minted.expires_at, scope=StreamTokenScope(**scope.claim())
    )
    return JSONResponse(view.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
