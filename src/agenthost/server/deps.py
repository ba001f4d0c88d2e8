"""FastAPI dependencies, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from agenthost.errors import InvalidRequestError
from agenthost.runtime.recovery import RunRecovery
from agenthost.runtime.runtime import Runtime
from agenthost.runtime.service import RunService

__all__ = ["IdempotencyKeyDep", "RecoveryDep", "RuntimeDep", "ServiceDep"]

_MAX_KEY = 256


async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _service(request: Request) -> RunService:
    service: RunService = request.app.state.service
    return service


async def _recovery(request: Request) -> RunRecovery:
    recovery: RunRecovery = request.app.state.recovery
    return recovery


async def _idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str | None:
    if idempotency_key is None:
        return None
    if not (0 < len(idempotency_key) <= _MAX_KEY) or not idempotency_key.isprintable():
        msg = f"Idempotency-Key must be 1-{_MAX_KEY} printable characters"
        raise InvalidRequestError(msg, code="invalid_idempotency_key")
    return idempotency_key


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
ServiceDep = Annotated[RunService, Depends(_service)]
RecoveryDep = Annotated[RunRecovery, Depends(_recovery)]
IdempotencyKeyDep = Annotated[str | None, Depends(_idempotency_key)]
