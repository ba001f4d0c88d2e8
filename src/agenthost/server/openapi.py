"""The OpenAPI document and the API docs pages: one error schema, every status an operation sends,
the security schemes, and Swagger UI and ReDoc served from local files (they work offline).

Routes declare the statuses their own code sends with `error_responses`; `install_openapi`
adds what every operation (or every operation of a kind) can send, so no route repeats it:

- every operation: 422 (a parameter, an unknown query parameter) and 500;
- operations with a body: 400 (`invalid_json`), 413 (`payload_too_large`), 415 (a body that is
  not sent as `application/json`);
- operations that authenticate (they depend on `server.deps.authenticate`): the security
  requirement (`X-API-Key` or `Authorization: Bearer`), 401, 429 and 503.

Example, a route of a new module::

    @router.post("/v1/things/{id}", responses=error_responses(403, 404, 409))
    async def do_thing(...): ...

    @router.post("/v1/things/stream", response_class=SSE_RESPONSE_CLASS,
                 responses={**sse_response("The events."), **error_responses(404)})
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from agenthost.errors import ErrorCode
from agenthost.server.query import iter_dependants

__all__ = [
    "API_KEY_SCHEME",
    "BEARER_SCHEME",
    "DOCS_ASSETS_PATH",
    "ERROR_SCHEMA",
    "SSE_RESPONSE_CLASS",
    "ErrorBody",
    "error_responses",
    "install_docs",
    "install_openapi",
    "run_links",
    "sse_response",
]

ERROR_SCHEMA = "Error"
"""The component every error response refers to (`#/components/schemas/Error`)."""
API_KEY_SCHEME = "ApiKeyAuth"
BEARER_SCHEME = "BearerAuth"
DOCS_ASSETS_PATH = "/docs/assets"
SSE_RESPONSE_CLASS = EventSourceResponse
"""`response_class=` of a route that only streams: its 200 is documented as `text/event-stream`."""
INPUT_TEXT_MARK = "x-agenthost-input-text"
"""Schema extension on the string fields that carry a run's input: their `maxLength` is replaced
by the server's configured input limit (`[screening] max_input_chars`) in the document."""


class ErrorDetail(BaseModel):
    model_config = ConfigDict(title="ErrorDetail")

    code: ErrorCode = Field(description="Stable machine-readable code; clients may switch on it.")
    message: str = Field(description="Human-readable explanation, safe to show.")
    request_id: str | None = Field(description="The request's id (also the `X-Request-ID` header).")
    details: dict[str, Any] | None = Field(
        None, description="Extra information (e.g. `errors`: the invalid fields of a 422)."
    )


class ErrorBody(BaseModel):
    """The one error shape: `{"error": {"code", "message", "request_id", "details"?}}`."""

    model_config = ConfigDict(title=ERROR_SCHEMA)

    error: ErrorDetail


_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: `invalid_json` (the body is not JSON), `input_rejected` (input screening: "
    "too long, control characters, a prompt injection), `bad_request`.",
    401: "No valid credentials: `missing_credentials`, `invalid_api_key`, `invalid_token`, "
    "`key_expired`, `key_revoked`, `unknown_role`.",
    402: "A run limit or a spend budget would be crossed: `budget_exceeded`.",
    403: "The caller's role or key scope does not allow this: `forbidden`.",
    404: "Not found, or not visible to the caller: `not_found`, `agent_not_found`, "
    "`run_not_found`, `thread_not_found`, `approval_not_found`, `key_not_found`, `user_not_found`.",
    409: "Conflicts with the current state: `idempotency_key_reused`, `thread_busy`, "
    "`run_not_cancellable`, `run_not_resumable`, `run_not_forkable`, `run_not_waiting`, "
    "`approval_already_decided`, `key_not_active`, `user_has_active_runs`.",
    410: "Sealed content whose key was erased: `content_erased`.",
    413: "The request body is over `[server] max_body_bytes`: `payload_too_large`.",
    415: "The body's media type is not accepted: `unsupported_media_type`.",
    422: "Invalid request: `invalid_request` (`details.errors` lists each invalid field, "
    "including unknown query parameters), or a specific code such as `invalid_cursor`, "
    "`invalid_range`, `invalid_idempotency_key`, `invalid_last_event_id`, `unknown_role`.",
    429: "A rate limit is exhausted: `rate_limited`; retry after `Retry-After` seconds.",
    500: "Unexpected server error: `internal_error`.",
    502: "The model provider failed: `model_error`.",
    503: "A store the request needs is unavailable and the server fails closed: "
    "`rate_limit_unavailable`, `budget_unavailable`, `store_unavailable`, `model_unavailable`.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'The challenge (`Bearer realm="agenthost"`).',
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds until a request would be admitted.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route for the error statuses its own code sends.

    Each refers to the `Error` schema; a description names the codes (`descriptions` overrides
    it per status, as `s404="..."`).

    Example:
        >>> responses = error_responses(404, 409, s409="The run already ended: `run_not_cancellable`.")
        >>> sorted(responses), responses[409]["description"]
        ([404, 409], 'The run already ended: `run_not_cancellable`.')
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": descriptions.get(f"s{status}") or _DESCRIPTIONS.get(status, "Error."),
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
        }
        if status in _HEADERS:
            response["headers"] = copy.deepcopy(_HEADERS[status])
        responses[status] = response
    return responses


def sse_response(
    description: str, *, json_data: bool = True, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a server-sent-events answer (`text/event-stream`), each event
    described by `itemSchema` (`event`, `data`, `id`, `retry`); `json_data`: each `data` is JSON.

    On a route with `response_class=SSE_RESPONSE_CLASS` it is the only media type of `status`;
    on a route that answers JSON or SSE by request (chat completions' `stream`), both are listed.
    """
    data: dict[str, Any] = {"type": "string"}
    if json_data:
        data["contentMediaType"] = "application/json"
    event = {
        "type": "object",
        "properties": {
            "event": {"type": "string"},
            "data": data,
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    }
    return {status: {"description": description, "content": {"text/event-stream": {"itemSchema": event}}}}


def run_links(pointer: str = "$response.body#/id") -> dict[str, Any]:
    """OpenAPI links from a response that names a run to what can be done with it next (status,
    events, steps, cancel): clients and stateful test tools follow them."""

    def ref(path: str, method: str) -> str:
        return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method

    targets = {
        "GetRun": ("/v1/runs/{run_id}", "get"),
        "RunEvents": ("/v1/runs/{run_id}/events", "get"),
        "RunSteps": ("/v1/runs/{run_id}/steps", "get"),
        "CancelRun": ("/v1/runs/{run_id}/cancel", "post"),
    }
    return {
        name: {"operationRef": ref(path, method), "parameters": {"run_id": pointer}}
        for name, (path, method) in targets.items()
    }


def _authenticates(route: RouteContext, guard: Callable[..., Any]) -> bool:
    dependant = route.dependant
    return dependant is not None and any(dep.call is guard for dep in iter_dependants(dependant))


def install_openapi(
    app: FastAPI,
    *,
    guard: Callable[..., Any],
    auth_required: bool,
    input_chars: int,
    input_screened: bool = True,
    agents: Iterable[str] = (),
    also_protected: Iterable[str] = (),
    description: str = "",
) -> None:
    """Make `app.openapi()` build the full contract (computed once, then cached).

    `guard` is the dependency that authenticates (`server.deps.authenticate`); operations that
    depend on it get the security requirement and its statuses, unless `auth_required` is false
    (`[auth] mode = "none"`: nothing asks for credentials). `also_protected` names paths that
    authenticate in their own code (`/metrics` unless `[auth] public_metrics`).
    `input_chars` is the longest run input the server accepts; `input_screened` says whether
    input screening refuses control characters (`[screening] enabled`). `agents` are the agent
    names this server serves: the `agent` path parameter lists them (`enum`)."""
    agent_names = sorted(agents)
    extra_protected = set(also_protected)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=description or None,
            routes=app.routes,
        )
        _add_components(schema, auth_required=auth_required)
        # Routes of included routers are seen with the router's prefix and dependencies.
        for route in iter_route_contexts(app.routes):
            if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
                continue
            protected = auth_required and (
                _authenticates(route, guard) or route.path_format in extra_protected
            )
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    _complete(operation, protected=protected, body=route.body_field is not None)
                    _name_agents(operation, agent_names)
        _apply_input_rules(schema["components"]["schemas"], input_chars, screened=input_screened)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_components(schema: dict[str, Any], *, auth_required: bool) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = error
    if auth_required:
        components["securitySchemes"] = {
            API_KEY_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "An API key (`ahk_...`) or the bootstrap admin key.",
            },
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "API key or JWT",
                "description": "`Authorization: Bearer <API key or JWT>` (JWTs when `[auth.jwt]` is set).",
            },
        }


def _complete(operation: dict[str, Any], *, protected: bool, body: bool) -> None:
    """Add the statuses every operation of its kind can send; errors all use the `Error` schema."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    common = [422, 500]
    if body:
        common += [400, 413, 415]
    if protected:
        common += [401, 429, 503]
        operation["security"] = [{API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]
    for status, response in error_responses(*common).items():
        existing = responses.get(str(status))
        if existing is None or "HTTPValidationError" in str(existing):
            responses[str(status)] = response
    for response in responses.values():
        stream = response.get("content", {}).get("text/event-stream")
        if stream is not None and "itemSchema" in stream:
            # FastAPI adds `schema: string` for the response class; `itemSchema` says it all.
            stream.pop("schema", None)
    operation["responses"] = dict(sorted(responses.items()))


# What input screening refuses (`security.normalize.control_character_problem`): C0 controls
# but tab, line feed and carriage return; DEL; C1 controls.
_NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"


def _name_agents(operation: dict[str, Any], agents: list[str]) -> None:
    for parameter in operation.get("parameters", []):
        if agents and parameter.get("in") == "path" and parameter.get("name") == "agent":
            parameter["schema"]["enum"] = agents


def _apply_input_rules(schemas: dict[str, Any], input_chars: int, *, screened: bool) -> None:
    for component in schemas.values():
        for prop in (component.get("properties") or {}).values():
            if isinstance(prop, dict) and prop.pop(INPUT_TEXT_MARK, False):
                prop["maxLength"] = input_chars
                if screened:
                    prop["pattern"] = _NO_CONTROL_CHARACTERS


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """`/docs` (Swagger UI) and `/redoc` (ReDoc), with their scripts and styles served from the
    `fastapi-offline` package's files under `/docs/assets`: the pages need no network."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")

    async def swagger_ui(_request: Request) -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    async def redoc(_request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
