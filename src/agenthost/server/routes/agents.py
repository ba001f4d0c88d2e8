"""`/v1/agents`: list agents and start runs (wait, stream, background)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from starlette.responses import Response

from agenthost.runtime.spec import RunSpec
from agenthost.security.auth import Principal
from agenthost.server.deps import IdempotencyKeyDep, PrincipalDep, RuntimeDep, ServiceDep, ensure_thread
from agenthost.server.openapi import SSE_RESPONSE_CLASS, error_responses, run_links, sse_response
from agenthost.server.responders import run_and_wait, run_background, run_streaming
from agenthost.server.schemas import AgentInfo, RunAccepted, RunCreate, RunView, run_view

router = APIRouter(prefix="/v1/agents", tags=["agents"])

AgentPath = Annotated[str, Path(min_length=1, max_length=64, description="Agent name from the config.")]
RunBody = Annotated[RunCreate, Body()]
# What starting a run can answer besides its own success (400, 413, 422 and the authentication
# statuses are added to every such operation by `install_openapi`).
_START_ERRORS = error_responses(
    402,
    403,
    404,
    409,
    s404="Unknown agent (`agent_not_found`), or a `thread_id` the caller may not see (`thread_not_found`).",
    s409="`idempotency_key_reused` (same key, different body), `thread_busy` (`if_busy: reject`).",
)


async def _spec(runtime: RuntimeDep, principal: Principal, agent: str, body: RunCreate) -> RunSpec:
    runtime.registry.get(agent)
    owner = principal.run_owner(agent, body.user_id)
    await ensure_thread(runtime, principal, body.thread_id)
    return RunSpec(
        agent=agent,
        input=body.input,
        **owner,
        max_tokens=body.max_tokens,
        model_settings=body.sampling().dump(),
        metadata=body.metadata,
        thread_id=body.thread_id,
        tier=body.tier,
        limits=body.limits.model_dump(exclude_none=True) if body.limits else None,
        priority=body.priority,
    )


@router.get("")
async def list_agents(runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, object]:
    """The agents this server runs that the caller may use."""
    registry = runtime.registry
    data = [
        AgentInfo(
            name=e.name,
            description=e.description,
            model=e.model_label,
            default=e.name == registry.default,
            prompt_version=e.prompt_version,
        )
        for e in registry
        if principal.may_run(e.name) or not principal.role.run
    ]
    return {"object": "list", "data": [info.model_dump() for info in data]}


@router.post(
    "/{agent}/run",
    responses={
        200: {"model": RunView, "links": run_links()},
        202: {"model": RunAccepted, "links": run_links()},
        **_START_ERRORS,
    },
    summary="Run and wait for the result",
)
async def run(  # noqa: PLR0917 - FastAPI maps each parameter to a request part
    agent: AgentPath,
    body: RunBody,
    service: ServiceDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    key: IdempotencyKeyDep,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            allow_inf_nan=False,
            description="Seconds to wait before answering 202 (at most the server's limit).",
        ),
    ] = None,
) -> Response:
    """Run the agent and answer with the finished run; past the wait limit, 202 with its location."""
    limit = runtime.settings.server.run_wait_timeout
    spec = await _spec(runtime, principal, agent, body)
    return await run_and_wait(
        service, runtime, spec, key, run_view, min(wait or limit, limit), if_busy=body.if_busy
    )


@router.post(
    "/{agent}/stream",
    response_class=SSE_RESPONSE_CLASS,
    responses={
        **sse_response(
            "Server-sent events: `run.started`, `text.delta`, `tool.call`, `tool.result`, `usage`, "
            "then `run.completed`, `run.failed`, `run.dead` or `run.cancelled`; `id` is the event "
            "number (resume with `GET /v1/runs/{id}/events`)."
        ),
        **_START_ERRORS,
    },
    summary="Run and stream events (SSE)",
)
async def stream(  # noqa: PLR0917 - FastAPI maps each parameter to a request part
    agent: AgentPath,
    body: RunBody,
    service: ServiceDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    key: IdempotencyKeyDep,
) -> Response:
    """SSE: run.started, text.delta, tool.call, tool.result, usage, then run.completed or run.failed."""
    spec = await _spec(runtime, principal, agent, body)
    return await run_streaming(service, runtime, spec, key, if_busy=body.if_busy)


@router.post(
    "/{agent}/runs",
    status_code=202,
    responses={202: {"model": RunAccepted, "links": run_links()}, **_START_ERRORS},
    summary="Run in background",
)
async def run_in_background(  # noqa: PLR0917 - FastAPI maps each parameter to a request part
    agent: AgentPath,
    body: RunBody,
    service: ServiceDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    key: IdempotencyKeyDep,
) -> Response:
    """Queue the run and answer 202 with its id at once; poll `/v1/runs/{id}` or follow its events."""
    spec = await _spec(runtime, principal, agent, body)
    return await run_background(service, spec, key, if_busy=body.if_busy)
