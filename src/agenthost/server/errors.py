"""Every error leaves the server as `{"error": {"code", "message", "request_id"}}` with its status."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from agenthost.errors import AgentHostError, ErrorCode, InvalidRequestError, UnsupportedMediaTypeError

__all__ = ["install_error_handlers"]

_log = structlog.get_logger(__name__)
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
}


def _request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _agenthost_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentHostError)
    if exc.status >= 500:  # noqa: PLR2004
        _log.error("request_failed", code=exc.code, message=exc.message)
    return JSONResponse(
        exc.to_body(_request_id(request)), status_code=exc.status, headers=exc.headers or None
    )


# What pydantic reports when a body model receives something other than a JSON object: the case
# of a JSON body sent with a form or text content type (curl's `-d` without `-H content-type`).
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type"})


def _not_json(request: Request, error: dict[str, Any]) -> JSONResponse | None:
    """415 when the body could not be read as JSON because its content type says it is not JSON."""
    if tuple(error.get("loc", ())) != ("body",) or error.get("type") not in _NOT_AN_OBJECT:
        return None
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    got = f"got {media!r}" if media else "no content-type was sent"
    detail = UnsupportedMediaTypeError(
        f"send the body as JSON with the header `content-type: application/json` ({got})"
    )
    return JSONResponse(detail.to_body(_request_id(request)), status_code=detail.status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        if (refusal := _not_json(request, error)) is not None:
            return refusal
        if error.get("type") == "json_invalid":
            detail = InvalidRequestError("request body is not valid JSON", code=ErrorCode.INVALID_JSON)
            return JSONResponse(detail.to_body(_request_id(request)), status_code=400)
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        problems.append({"field": _field(tuple(error.get("loc", ()))), "message": message})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    detail = InvalidRequestError(f"invalid request: {summary}", details={"errors": problems})
    return JSONResponse(detail.to_body(_request_id(request)), status_code=detail.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 404:  # noqa: PLR2004
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:  # noqa: PLR2004
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
    body = {"error": {"code": code, "message": message, "request_id": _request_id(request)}}
    return JSONResponse(body, status_code=exc.status_code, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Starlette's own 405 names only the
    methods of the first route that matched the path, not of the others at the same path (GET and
    DELETE `/v1/threads/{id}` are two routes)."""
    methods: set[str] = set()
    path = request.scope["path"]
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(route.methods or ())
    order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    body = {
        "error": {"code": "internal_error", "message": "internal error", "request_id": _request_id(request)}
    }
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentHostError, _agenthost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
