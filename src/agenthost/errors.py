"""One error tree for agenthost, with stable codes and one JSON error body.

Every error a client can see is an `AgentHostError`. Each subclass fixes an HTTP status and a
default stable `code`; the server renders any of them as::

    {"error": {"code": "run_not_found", "message": "...", "request_id": "..."}}

The tree::

    AgentHostError
    ├── ConfigError                      configuration invalid (start-up; `agenthost check`)
    ├── RequestError                4xx  the client's request cannot be served
    │   ├── InvalidRequestError     400/422  malformed or invalid input
    │   ├── UnauthorizedError       401  missing, invalid, expired or revoked credentials
    │   ├── ForbiddenError          403  the caller's role does not allow this
    │   ├── NotFoundError           404  unknown agent, run, ...
    │   ├── ConflictError           409  state conflict (idempotency key reuse, run not cancellable)
    │   ├── PayloadTooLargeError    413
    │   ├── InputRejectedError      400  input screening refused the text (prompt injection, control bytes)
    │   └── RateLimitedError        429  a rate limit is exhausted; `retry_after` seconds until it refills
    └── RunError                         a run could not complete
        ├── ModelError              502  the model provider failed
        ├── ToolError               500  a tool raised an unexpected exception
        └── ModelNotConfiguredError 500  no model could be resolved for an agent
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

__all__ = [
    "AgentHostError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "InputRejectedError",
    "InvalidRequestError",
    "ModelError",
    "ModelNotConfiguredError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestError",
    "RunError",
    "ToolError",
    "UnauthorizedError",
]


class AgentHostError(Exception):
    """Base of every error agenthost raises on purpose.

    Attributes:
        code: Stable machine-readable code; clients may switch on it.
        message: Human-readable explanation, safe to show to the caller.
        status: HTTP status the server answers with.
        details: Optional JSON-serialisable extra information.
        headers: Extra HTTP response headers (`Retry-After`, `WWW-Authenticate`).
    """

    default_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.status: int = status if status is not None else self.default_status
        self.headers: dict[str, str] = {}

    def with_headers(self, headers: dict[str, str]) -> Self:
        """Add response headers (e.g. `WWW-Authenticate`) and return the error, for `raise`."""
        self.headers.update(headers)
        return self

    def to_body(self, request_id: str | None) -> dict[str, Any]:
        """The JSON error body, `{"error": {"code", "message", "request_id", ...}}`."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "request_id": request_id}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class ConfigError(AgentHostError):
    """The configuration is invalid; the message names the key and the problem."""

    default_code = "config_invalid"


class RequestError(AgentHostError):
    """The request cannot be served as sent (a 4xx)."""

    default_status = 400
    default_code = "bad_request"


class InvalidRequestError(RequestError):
    """Malformed JSON, missing or wrong-typed fields, bad query parameters."""

    default_status = 422
    default_code = "invalid_request"


class UnauthorizedError(RequestError):
    """Missing or invalid credentials."""

    default_status = 401
    default_code = "unauthorized"


class ForbiddenError(RequestError):
    """Authenticated, but the caller's role or scopes do not allow this request."""

    default_status = 403
    default_code = "forbidden"


class NotFoundError(RequestError):
    """The named resource does not exist (or the caller may not see it)."""

    default_status = 404
    default_code = "not_found"


class ConflictError(RequestError):
    """The request conflicts with the current state of the resource."""

    default_status = 409
    default_code = "conflict"


class PayloadTooLargeError(RequestError):
    """The request body exceeds the configured limit."""

    default_status = 413
    default_code = "payload_too_large"


class InputRejectedError(RequestError):
    """Input screening refused the text: a prompt-injection pattern, control bytes, or too large."""

    default_status = 400
    default_code = "input_rejected"


class RateLimitedError(RequestError):
    """A rate limit is exhausted. `retry_after` is whole seconds until a request would be admitted;
    `headers` carries `Retry-After` and the `RateLimit-*` fields for the response."""

    default_status = 429
    default_code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
        self.headers.update({"Retry-After": str(retry_after), **(headers or {})})


class RunError(AgentHostError):
    """A run failed; `code` says why."""

    default_code = "run_failed"


class ModelError(RunError):
    """The model provider returned an error or could not be reached."""

    default_status = 502
    default_code = "model_error"


class ToolError(RunError):
    """A tool raised an exception other than `ModelRetry` / `ToolFailed`."""

    default_code = "tool_error"


class ModelNotConfiguredError(RunError):
    """No model could be resolved for an agent."""

    default_code = "model_not_configured"
