"""ASGI middleware: request ids and the request body size limit (pure ASGI, no per-request objects),
and the options of Starlette's CORS middleware."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthost.config.server import CorsSettings
from agenthost.errors import PayloadTooLargeError

__all__ = ["BodyLimitMiddleware", "RequestIdMiddleware", "cors_options", "request_id_of"]

_HEADER = b"x-request-id"
_MAX_INBOUND_ID = 128


def request_id_of(scope: Scope) -> str | None:
    state: dict[str, Any] = scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    """Give every request an id (the caller's `X-Request-ID` if sane) and echo it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = next((v for k, v in scope["headers"] if k == _HEADER), b"")
        text = inbound.decode("latin-1")
        request_id = (
            text if 0 < len(text) <= _MAX_INBOUND_ID and text.isprintable() else f"req_{secrets.token_hex(8)}"
        )
        scope.setdefault("state", {})["request_id"] = request_id
        raw = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (_HEADER, raw)]
                # The rate limits the request was admitted under (a 429 carries its own).
                limits = (scope.get("state") or {}).get("rate_limit_headers")
                if limits and not any(k.lower() == b"ratelimit-limit" for k, _ in headers):
                    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in limits.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLargeError:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLargeError(f"request body exceeds the limit of {self.max_bytes} bytes")
        body = json.dumps(error.to_body(request_id_of(scope))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLargeError(BaseException):
    """Raised from `receive`; a BaseException so that body parsers, which catch Exception and
    answer 400, let it through to this middleware."""


def cors_options(cors: CorsSettings) -> dict[str, Any]:
    """`[server.cors]` as the keyword arguments of `starlette.middleware.cors.CORSMiddleware`."""
    return {
        "allow_origins": cors.allow_origins,
        "allow_credentials": cors.allow_credentials,
        "allow_methods": cors.allow_methods,
        "allow_headers": cors.allow_headers,
        "expose_headers": cors.expose_headers,
        "max_age": cors.max_age,
    }
