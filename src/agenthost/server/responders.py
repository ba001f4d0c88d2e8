"""The three ways to start a run over HTTP (wait, stream, background), shared by every route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from starlette.responses import Response

from agenthost.runtime.process import Runtime
from agenthost.runtime.service import RunService
from agenthost.runtime.spec import RunSpec
from agenthost.server.sse import event_stream, seed_messages

__all__ = ["accepted", "run_and_wait", "run_background", "run_streaming"]

View = Callable[[dict[str, Any]], dict[str, Any]]


def accepted(run_id: str, status: str, **extra: Any) -> JSONResponse:
    """202 with where to find the run."""
    location = f"/v1/runs/{run_id}"
    body = {
        "id": run_id,
        "object": "run",
        "status": status,
        "location": location,
        "events": f"{location}/events",
        **extra,
    }
    return JSONResponse(body, status_code=202, headers={"Location": location})


async def run_and_wait(  # noqa: PLR0917
    service: RunService,
    runtime: Runtime,
    spec: RunSpec,
    key: str | None,
    view: View,
    wait_seconds: float | None = None,
    *,
    if_busy: str = "queue",
) -> Response:
    submission = await service.submit(spec, idempotency_key=key, if_busy=if_busy)
    row = await service.wait(submission, wait_seconds or runtime.settings.server.run_wait_timeout)
    if row is None:
        return accepted(submission.row["id"], "running")
    return JSONResponse(view(row))


async def run_streaming(
    service: RunService,
    runtime: Runtime,
    spec: RunSpec,
    key: str | None,
    *,
    seed: bool = False,
    if_busy: str = "queue",
) -> Response:
    submission = await service.submit(spec, idempotency_key=key, if_busy=if_busy)
    run_id = submission.row["id"]
    return event_stream(
        service.follow(run_id),
        heartbeat=runtime.settings.server.heartbeat_interval,
        run_id=run_id,
        render=seed_messages if seed else None,
    )


async def run_background(
    service: RunService, spec: RunSpec, key: str | None, *, seed: bool = False, if_busy: str = "queue"
) -> Response:
    queued = spec.model_copy(update={"queued": True})
    submission = await service.submit(queued, idempotency_key=key, if_busy=if_busy)
    run_id = submission.row["id"]
    # The seed tutorials call the id of a queued request `request_id`.
    return accepted(run_id, submission.row["status"], **({"request_id": run_id} if seed else {}))
