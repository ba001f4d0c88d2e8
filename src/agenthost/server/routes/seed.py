"""The seed tutorials' paths, as aliases for the default agent.

They accept the tutorials' body (`prompt`, optional `user_id`, `max_tokens`, `model`) and answer
with the tutorials' fields (`id`, `response`, `model`, `tokens_used`, `cost_usd`, `latency_ms`)
beside agenthost's own, so a client written from the tutorials works unchanged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from starlette.responses import Response

from agenthost.runtime.spec import RunSpec
from agenthost.security.auth import Principal
from agenthost.server.deps import IdempotencyKeyDep, PrincipalDep, RuntimeDep, ServiceDep, visible_run
from agenthost.server.openapi import SSE_RESPONSE_CLASS, error_responses, run_links, sse_response
from agenthost.server.responders import run_and_wait, run_background, run_streaming
from agenthost.server.schemas import RunAccepted, SeedRunCreate, seed_view

router = APIRouter(prefix="/agent", tags=["seed aliases"])

SeedBody = Annotated[SeedRunCreate, Body()]
_START_ERRORS = error_responses(
    402, 403, 409, s409="Same `Idempotency-Key` with a different body: `idempotency_key_reused`."
)


def _spec(runtime: RuntimeDep, principal: Principal, body: SeedRunCreate) -> RunSpec:
    metadata = dict(body.metadata or {})
    if body.model is not None:
        # The tutorials let the client pick a model; agenthost runs the agent's configured model
        # and records what was asked for.
        metadata["requested_model"] = body.model
    agent = runtime.registry.default_entry().name
    return RunSpec(
        agent=agent,
        input=body.prompt,
        **principal.run_owner(agent, body.user_id),
        max_tokens=body.max_tokens,
        metadata=metadata or None,
    )


@router.post("/run", responses={202: {"model": RunAccepted}, **_START_ERRORS})
async def seed_run(
    body: SeedBody, service: ServiceDep, runtime: RuntimeDep, principal: PrincipalDep, key: IdempotencyKeyDep
) -> Response:
    """Run the default agent and wait (`POST /v1/agents/{default}/run`)."""
    return await run_and_wait(service, runtime, _spec(runtime, principal, body), key, seed_view)


@router.post(
    "/stream",
    response_class=SSE_RESPONSE_CLASS,
    responses={
        **sse_response(
            "Server-sent events: `data: <text>` per token (event `text.delta`), a failure as its "
            "run event, then `data: [DONE]`.",
            json_data=False,
        ),
        **_START_ERRORS,
    },
)
async def seed_stream(
    body: SeedBody, service: ServiceDep, runtime: RuntimeDep, principal: PrincipalDep, key: IdempotencyKeyDep
) -> Response:
    """Stream the default agent's text as `data: <token>` lines, ending with `data: [DONE]`."""
    return await run_streaming(service, runtime, _spec(runtime, principal, body), key, seed=True)


@router.post(
    "/async",
    status_code=202,
    responses={202: {"model": RunAccepted, "links": run_links()}, **_START_ERRORS},
)
async def seed_async(
    body: SeedBody, service: ServiceDep, runtime: RuntimeDep, principal: PrincipalDep, key: IdempotencyKeyDep
) -> Response:
    """Queue a run of the default agent; answers 202 with `id` and `request_id`."""
    return await run_background(service, _spec(runtime, principal, body), key, seed=True)


@router.get(
    "/status/{run_id}",
    responses=error_responses(404, s404="No such run, or one the caller may not see: `run_not_found`."),
)
async def seed_status(
    run_id: Annotated[str, Path(min_length=1, max_length=64)], service: ServiceDep, principal: PrincipalDep
) -> Response:
    """A run's status and result with the tutorials' field names."""
    return JSONResponse(seed_view(await visible_run(service, principal, run_id)))
