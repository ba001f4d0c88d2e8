"""One error tree for agenthost, one catalogue of stable error codes, one failure classifier.

Every error a client can see is an `AgentHostError` with a stable `code` from `ErrorCode` and an
HTTP status; the server renders any of them as::

    {"error": {"code": "run_not_found", "message": "...", "request_id": "..."}}

The tree::

    AgentHostError
    ├── ConfigError                      configuration invalid (start-up; `agenthost check`)
    ├── RequestError                4xx  the client's request cannot be served
    │   ├── InvalidRequestError     422  malformed or invalid input (400 for bad JSON)
    │   ├── UnauthorizedError       401  missing, invalid, expired or revoked credentials
    │   ├── ForbiddenError          403  the caller's role does not allow this
    │   ├── NotFoundError           404  unknown agent, run, ... (or one the caller may not see)
    │   ├── ConflictError           409  state conflict (idempotency key reuse, run not cancellable)
    │   ├── PayloadTooLargeError    413
    │   ├── InputRejectedError      400  input screening refused the text (prompt injection, control bytes)
    │   ├── UnsupportedParameterError 400  a front door cannot honour a request parameter (names it)
    │   └── RateLimitedError        429  a rate limit is exhausted; `retry_after` seconds until it refills
    ├── RunError                         a run (or a model call) could not complete
    │   ├── ModelError              502  the model provider failed
    │   │   └── EmbeddingError      502  the embedding model failed
    │   ├── ToolError               500  a tool raised an unexpected exception
    │   ├── ModelNotConfiguredError 500  no model could be resolved for an agent
    │   ├── BudgetExceededError     402  a run limit or a spend budget would be crossed
    │   └── BudgetUnavailableError  503  budgets cannot be checked (store down, fail closed)
    ├── RateLimitUnavailableError   503  rate limits cannot be checked (store down, fail closed)
    ├── AuditIntegrityError         500  the audit log cannot be appended to safely
    ├── ContentErasedError          410  sealed content whose key was erased (a run's durable records)
    └── StoreUnavailableError       503  a shared store (Redis) failed (callers fall back or refuse)

Model-layer errors are pydantic-ai `ModelAPIError`s, so that fallback chains and retries treat
them as failed model calls; `classify` maps them (and every other exception) to a `Failure`::

    ModelAPIError (pydantic-ai)
    ├── BreakerOpenError               the model's circuit breaker is open: the call was not sent
    ├── AllModelsUnavailableError      every model of a fallback chain failed
    └── ContextOverflowError           the request cannot be made to fit the context window

`classify(exc)` is the one place that decides, for any exception: its code, the HTTP status a
client gets, whether the same model call may succeed if tried again, whether it counts against
the provider's circuit breaker, and the status of a run that ends with it. Retries, breakers,
model steps, runs and the front door all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self

from pydantic_ai import exceptions as ai

__all__ = [
    "AgentHostError",
    "AllModelsUnavailableError",
    "AuditIntegrityError",
    "BreakerOpenError",
    "BudgetExceededError",
    "BudgetUnavailableError",
    "ConfigError",
    "ConflictError",
    "ContentErasedError",
    "ContextOverflowError",
    "EmbeddingError",
    "ErrorCode",
    "Failure",
    "ForbiddenError",
    "InputRejectedError",
    "InvalidRequestError",
    "ModelError",
    "ModelNotConfiguredError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitUnavailableError",
    "RateLimitedError",
    "RequestError",
    "RunError",
    "StoreUnavailableError",
    "ToolError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "UnsupportedParameterError",
    "as_client_error",
    "classify",
]


class ErrorCode(StrEnum):
    """Every stable error code a client can see (in error bodies and in a run's `error`)."""

    # -- generic -----------------------------------------------------------------------------
    INTERNAL_ERROR = "internal_error"
    CONFIG_INVALID = "config_invalid"
    BAD_REQUEST = "bad_request"
    INVALID_REQUEST = "invalid_request"
    INVALID_JSON = "invalid_json"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    HTTP_ERROR = "http_error"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    # -- request validation -------------------------------------------------------------------
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    INVALID_LAST_EVENT_ID = "invalid_last_event_id"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_RANGE = "invalid_range"
    INVALID_STEP = "invalid_step"
    INVALID_LIMITS = "invalid_limits"
    INVALID_BUDGETS = "invalid_budgets"
    INVALID_RATE_LIMITS = "invalid_rate_limits"
    UNSUPPORTED_CONTENT = "unsupported_content"
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    INPUT_REJECTED = "input_rejected"
    BATCH_UNSUPPORTED = "batch_unsupported"
    # -- authentication and authorisation -------------------------------------------------------
    UNAUTHORIZED = "unauthorized"
    MISSING_CREDENTIALS = "missing_credentials"
    INVALID_API_KEY = "invalid_api_key"  # pragma: allowlist secret - an error code
    INVALID_TOKEN = "invalid_token"  # noqa: S105  # pragma: allowlist secret - an error code
    KEY_EXPIRED = "key_expired"
    KEY_REVOKED = "key_revoked"
    UNKNOWN_ROLE = "unknown_role"
    INVALID_STREAM_TOKEN = "invalid_stream_token"  # noqa: S105  # pragma: allowlist secret - an error code
    STREAM_TOKEN_EXPIRED = "stream_token_expired"  # noqa: S105  # pragma: allowlist secret - an error code
    STREAM_TOKEN_NOT_ACCEPTED = "stream_token_not_accepted"  # noqa: S105  # pragma: allowlist secret
    STREAM_TOKEN_SCOPE = "stream_token_scope"  # noqa: S105  # pragma: allowlist secret - an error code
    FORBIDDEN = "forbidden"
    # -- resources -----------------------------------------------------------------------------
    AGENT_NOT_FOUND = "agent_not_found"
    UNKNOWN_AGENT = "unknown_agent"
    MODEL_NOT_FOUND = "model_not_found"
    RUN_NOT_FOUND = "run_not_found"
    THREAD_NOT_FOUND = "thread_not_found"
    APPROVAL_NOT_FOUND = "approval_not_found"
    KEY_NOT_FOUND = "key_not_found"
    USER_NOT_FOUND = "user_not_found"
    # -- state conflicts -----------------------------------------------------------------------
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    THREAD_BUSY = "thread_busy"
    RUN_NOT_CANCELLABLE = "run_not_cancellable"
    RUN_NOT_RESUMABLE = "run_not_resumable"
    RUN_NOT_FORKABLE = "run_not_forkable"
    RUN_NOT_WAITING = "run_not_waiting"
    APPROVAL_ALREADY_DECIDED = "approval_already_decided"
    KEY_NOT_ACTIVE = "key_not_active"
    USER_HAS_ACTIVE_RUNS = "user_has_active_runs"
    # -- limits --------------------------------------------------------------------------------
    RATE_LIMITED = "rate_limited"
    RATE_LIMIT_UNAVAILABLE = "rate_limit_unavailable"
    BUDGET_EXCEEDED = "budget_exceeded"
    BUDGET_UNAVAILABLE = "budget_unavailable"
    USAGE_LIMIT_EXCEEDED = "usage_limit_exceeded"
    # -- models and runs -----------------------------------------------------------------------
    MODEL_ERROR = "model_error"
    MODEL_UNAVAILABLE = "model_unavailable"
    ALL_MODELS_UNAVAILABLE = "all_models_unavailable"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    MODEL_NOT_CONFIGURED = "model_not_configured"
    EMBEDDING_ERROR = "embedding_error"
    RUN_FAILED = "run_failed"
    RUN_TIMEOUT = "run_timeout"
    RUN_LOST = "run_lost"
    RECOVERY_LIMIT_EXCEEDED = "recovery_limit_exceeded"
    AGENT_ERROR = "agent_error"
    TOOL_ERROR = "tool_error"
    TOOL_OUTCOME_UNKNOWN = "tool_outcome_unknown"
    AUDIT_INTEGRITY = "audit_integrity"
    CONTENT_ERASED = "content_erased"
    STORE_UNAVAILABLE = "store_unavailable"


class AgentHostError(Exception):
    """Base of every error agenthost raises on purpose.

    Attributes:
        code: Stable machine-readable code (an `ErrorCode`); clients may switch on it.
        message: Human-readable explanation, safe to show to the caller.
        status: HTTP status the server answers with.
        details: Optional JSON-serialisable extra information.
        headers: Extra HTTP response headers (`Retry-After`, `WWW-Authenticate`).
    """

    default_status: ClassVar[int] = 500
    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = str(code or self.default_code)
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

    default_code = ErrorCode.CONFIG_INVALID


class RequestError(AgentHostError):
    """The request cannot be served as sent (a 4xx)."""

    default_status = 400
    default_code = ErrorCode.BAD_REQUEST


class InvalidRequestError(RequestError):
    """Malformed JSON, missing or wrong-typed fields, bad query parameters."""

    default_status = 422
    default_code = ErrorCode.INVALID_REQUEST


class UnsupportedMediaTypeError(RequestError):
    """The body is not in a media type the operation reads (JSON bodies sent as a form)."""

    default_status = 415
    default_code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class UnauthorizedError(RequestError):
    """Missing or invalid credentials."""

    default_status = 401
    default_code = ErrorCode.UNAUTHORIZED


class ForbiddenError(RequestError):
    """Authenticated, but the caller's role or scopes do not allow this request."""

    default_status = 403
    default_code = ErrorCode.FORBIDDEN


class NotFoundError(RequestError):
    """The named resource does not exist (or the caller may not see it)."""

    default_status = 404
    default_code = ErrorCode.NOT_FOUND


class ConflictError(RequestError):
    """The request conflicts with the current state of the resource."""

    default_status = 409
    default_code = ErrorCode.CONFLICT


class PayloadTooLargeError(RequestError):
    """The request body exceeds the configured limit."""

    default_status = 413
    default_code = ErrorCode.PAYLOAD_TOO_LARGE


class InputRejectedError(RequestError):
    """Input screening refused the text: a prompt-injection pattern, control bytes, or too large."""

    default_status = 400
    default_code = ErrorCode.INPUT_REJECTED


class UnsupportedParameterError(RequestError):
    """A front door (`/v1/chat/completions`, `/v1/responses`, `/v1/messages`) cannot honour a
    parameter the client sent: refused rather than silently dropped. `param` names it, as OpenAI's
    error objects do."""

    default_status = 400
    default_code = ErrorCode.UNSUPPORTED_PARAMETER

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param

    def to_body(self, request_id: str | None) -> dict[str, Any]:
        body = super().to_body(request_id)
        body["error"]["param"] = self.param
        return body


class RateLimitedError(RequestError):
    """A rate limit is exhausted. `retry_after` is whole seconds until a request would be admitted;
    `headers` carries `Retry-After` and the `RateLimit-*` fields for the response."""

    default_status = 429
    default_code = ErrorCode.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        headers: dict[str, str] | None = None,
        code: ErrorCode | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
        self.headers.update({"Retry-After": str(retry_after), **(headers or {})})


class RunError(AgentHostError):
    """A run failed; `code` says why."""

    default_code = ErrorCode.RUN_FAILED


class ModelError(RunError):
    """The model provider returned an error or could not be reached."""

    default_status = 502
    default_code = ErrorCode.MODEL_ERROR


class EmbeddingError(ModelError):
    """The embedding model could not embed a text (the semantic cache treats it as a miss)."""

    default_code = ErrorCode.EMBEDDING_ERROR


class ToolError(RunError):
    """A tool raised an exception other than `ModelRetry` / `ToolFailed`."""

    default_code = ErrorCode.TOOL_ERROR


class ModelNotConfiguredError(RunError):
    """No model could be resolved for an agent."""

    default_code = ErrorCode.MODEL_NOT_CONFIGURED


class BudgetExceededError(RunError):
    """A run limit (or a budget) would be crossed by the next call, which was not made."""

    default_status = 402
    default_code = ErrorCode.BUDGET_EXCEEDED


class BudgetUnavailableError(RunError):
    """The budget store cannot be reached and `[budgets] on_store_error = "closed"`."""

    default_status = 503
    default_code = ErrorCode.BUDGET_UNAVAILABLE


class RateLimitUnavailableError(AgentHostError):
    """The rate-limit store (Redis) cannot be reached and `on_store_error = "closed"`: 503."""

    default_status = 503
    default_code = ErrorCode.RATE_LIMIT_UNAVAILABLE


class AuditIntegrityError(AgentHostError):
    """The audit log cannot be appended to safely (its head row is missing)."""

    default_code = ErrorCode.AUDIT_INTEGRITY


class ContentErasedError(AgentHostError):
    """Sealed content whose key was erased (or expired by retention): it can never be read again."""

    default_status = 410
    default_code = ErrorCode.CONTENT_ERASED


class StoreUnavailableError(AgentHostError):
    """A shared store (Redis) could not be reached or failed; each caller decides what that means
    (fail open, fail closed, count locally) by its own configuration."""

    default_status = 503
    default_code = ErrorCode.STORE_UNAVAILABLE


# -- model-layer errors (pydantic-ai's ModelAPIError) ---------------------------------------------


class BreakerOpenError(ai.ModelAPIError):
    """The model's circuit breaker is open: the call was not sent."""

    def __init__(self, model_name: str, retry_in: float) -> None:
        super().__init__(
            model_name,
            f"circuit breaker open for {model_name}; next probe in {retry_in:.1f}s",
            retry_after=retry_in,
        )


class AllModelsUnavailableError(ai.ModelAPIError):
    """Every model of a fallback chain failed (after retries) or had its breaker open."""

    def __init__(self, model_name: str, errors: list[str]) -> None:
        super().__init__(model_name, "all models unavailable: " + "; ".join(errors))
        self.errors = errors


class ContextOverflowError(ai.ModelAPIError):
    """The request cannot be made to fit the model's context window."""

    code = ErrorCode.CONTEXT_LENGTH_EXCEEDED

    def __init__(self, model_name: str, message: str) -> None:
        super().__init__(model_name, message)


# -- the classifier -------------------------------------------------------------------------------

RunEnd = Literal["failed", "dead"]


@dataclass(frozen=True, slots=True)
class Failure:
    """What an exception means, wherever it is caught."""

    code: str
    """The stable error code (`ErrorCode`)."""
    http_status: int
    """The status a client gets when the exception ends its request."""
    retryable: bool
    """Whether making the same model call again may succeed (the gateway's retries)."""
    trips_breaker: bool
    """Whether it is provider trouble that counts towards opening the model's circuit breaker."""
    run_status: RunEnd
    """How a run that ends with it is recorded: `failed` (stopped by rule: retrying the same thing
    fails the same way) or `dead` (an outside failure: `POST /v1/runs/{id}/resume` retries it)."""


_CLIENT_HTTP_ERROR_MIN = 400
_SERVER_HTTP_ERROR_MIN = 500
_TOO_MANY_REQUESTS = 429


def classify(exc: BaseException) -> Failure:  # noqa: PLR0911 - one answer per kind of failure
    """The `Failure` an exception stands for.

    Example:
        >>> classify(BudgetExceededError("limit")).run_status
        'failed'
        >>> f = classify(BreakerOpenError("gpt-4o", 3.0))
        >>> (f.code, f.http_status, f.retryable, f.trips_breaker)
        ('model_unavailable', 503, False, False)
    """
    if isinstance(exc, AgentHostError):
        ruled = (
            isinstance(exc, (BudgetExceededError, RequestError))
            or exc.code == ErrorCode.CONTEXT_LENGTH_EXCEEDED
        )
        return _failure(exc.code, exc.status, end="failed" if ruled else "dead")
    if isinstance(exc, BreakerOpenError):
        return _failure(ErrorCode.MODEL_UNAVAILABLE, 503)
    if isinstance(exc, AllModelsUnavailableError):
        return _failure(ErrorCode.ALL_MODELS_UNAVAILABLE, 503)
    if isinstance(exc, (ContextOverflowError, ai.ModelContextWindowExceededError)):
        return _failure(ErrorCode.CONTEXT_LENGTH_EXCEEDED, 400, end="failed")
    if isinstance(exc, ai.ModelAPIError):
        return _provider_failure(exc)
    if isinstance(exc, ai.UsageLimitExceeded):
        return _failure(ErrorCode.USAGE_LIMIT_EXCEEDED, 400, end="failed")
    if isinstance(exc, (ai.AgentRunError, ai.UserError)):
        return _failure(ErrorCode.AGENT_ERROR, 500, end="failed")
    return _failure(ErrorCode.RUN_FAILED, 500)


def _failure(
    code: str, status: int, *, retryable: bool = False, trips: bool = False, end: RunEnd = "dead"
) -> Failure:
    return Failure(str(code), status, retryable=retryable, trips_breaker=trips, run_status=end)


def _provider_failure(exc: ai.ModelAPIError) -> Failure:
    """A provider's error: the request itself was refused (a 4xx other than 429, or a rejected
    request: never retried, never the provider's fault), the account's quota is gone (not worth
    retrying, but the provider is unusable: it trips the breaker), or trouble that may pass."""
    status = exc.status_code if isinstance(exc, ai.ModelHTTPError) else _SERVER_HTTP_ERROR_MIN
    refused = _CLIENT_HTTP_ERROR_MIN <= status < _SERVER_HTTP_ERROR_MIN and status != _TOO_MANY_REQUESTS
    if refused or isinstance(exc, ai.ModelRequestRejectedError):
        return _failure(ErrorCode.MODEL_ERROR, 502)
    if isinstance(exc, ai.ModelQuotaExceededError):
        return _failure(ErrorCode.MODEL_ERROR, 502, trips=True)
    return _failure(ErrorCode.MODEL_ERROR, 502, retryable=True, trips=True)


def as_client_error(exc: BaseException) -> AgentHostError:
    """The error a client gets for `exc` (agenthost's own errors as they are)."""
    if isinstance(exc, AgentHostError):
        return exc
    failure = classify(exc)
    message = str(exc) or type(exc).__name__
    if failure.http_status < _SERVER_HTTP_ERROR_MIN:
        return RequestError(message, code=ErrorCode(failure.code), status=failure.http_status)
    return ModelError(message, code=ErrorCode(failure.code), status=failure.http_status)
