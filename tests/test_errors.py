"""One error tree, one catalogue, one classifier: every failure means the same thing to retries,
breakers, runs and clients."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic_ai import exceptions as ai

from agenthost import errors
from agenthost.errors import (
    AgentHostError,
    AllModelsUnavailableError,
    BreakerOpenError,
    BudgetExceededError,
    ContextOverflowError,
    ErrorCode,
    ModelError,
    ToolError,
    as_client_error,
    classify,
)

SRC = Path(__file__).resolve().parent.parent / "src" / "agenthost"
CONTEXT = "context_length_exceeded"


def _http(status: int) -> ai.ModelHTTPError:
    return ai.ModelHTTPError(status, "gpt-4o", body={"error": "x"})


@pytest.mark.parametrize(
    ("exc", "code", "status", "retryable", "trips", "run_status"),
    [
        (_http(500), "model_error", 502, True, True, "dead"),
        (_http(503), "model_error", 502, True, True, "dead"),
        (_http(429), "model_error", 502, True, True, "dead"),
        (_http(400), "model_error", 502, False, False, "dead"),
        (_http(401), "model_error", 502, False, False, "dead"),
        (ai.ModelAPIError("gpt-4o", "connection reset"), "model_error", 502, True, True, "dead"),
        (ai.ModelQuotaExceededError("gpt-4o", "no credits"), "model_error", 502, False, True, "dead"),
        (ai.ModelRequestRejectedError("gpt-4o", "refused"), "model_error", 502, False, False, "dead"),
        (
            ai.ModelContextWindowExceededError("gpt-4o", "too long"),
            "context_length_exceeded",
            400,
            False,
            False,
            "failed",
        ),
        (ContextOverflowError("gpt-4o", "too long"), "context_length_exceeded", 400, False, False, "failed"),
        (BreakerOpenError("gpt-4o", 3.0), "model_unavailable", 503, False, False, "dead"),
        (AllModelsUnavailableError("chain", ["a: x"]), "all_models_unavailable", 503, False, False, "dead"),
        (BudgetExceededError("limit"), "budget_exceeded", 402, False, False, "failed"),
        (
            ModelError("x", code=ErrorCode.CONTEXT_LENGTH_EXCEEDED),
            "context_length_exceeded",
            502,
            False,
            False,
            "failed",
        ),
        (ToolError("boom"), "tool_error", 500, False, False, "dead"),
        (ai.UsageLimitExceeded("too many"), "usage_limit_exceeded", 400, False, False, "failed"),
        (ai.UnexpectedModelBehavior("bad output"), "agent_error", 500, False, False, "failed"),
        (RuntimeError("bug"), "run_failed", 500, False, False, "dead"),
    ],
)
def test_classify_decides_every_question_about_a_failure(  # noqa: PLR0917
    exc: BaseException, code: str, status: int, retryable: bool, trips: bool, run_status: str
) -> None:
    failure = classify(exc)
    answer = (failure.code, failure.http_status, failure.retryable, failure.trips_breaker, failure.run_status)
    assert answer == (code, status, retryable, trips, run_status)


def test_a_client_gets_the_classified_status_and_code() -> None:
    overflow = as_client_error(ContextOverflowError("m", "too long"))
    assert (overflow.status, overflow.code) == (400, "context_length_exceeded")
    down = as_client_error(BreakerOpenError("m", 1.0))
    assert (down.status, down.code) == (503, "model_unavailable")
    own = BudgetExceededError("spent")
    assert as_client_error(own) is own


# Not errors a caller handles: the body-limit middleware's signal (a BaseException on purpose, so
# body parsers cannot swallow it) and the CLI's view of an error the API answered.
_NOT_ERRORS = {"server/middleware.py:_TooLargeError", "cli/client.py:ApiError"}


def test_every_error_class_lives_in_errors_py() -> None:
    """No module defines an exception of its own (the mock LLM, a test double, excepted)."""
    elsewhere = []
    for path in SRC.rglob("*.py"):
        if (path.name == "errors.py" and path.parent == SRC) or "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                bases = {ast.unparse(base) for base in node.bases}
                if any("Error" in base or "Exception" in base for base in bases):
                    elsewhere.append(f"{path.relative_to(SRC)}:{node.name}")
    assert sorted(set(elsewhere) - _NOT_ERRORS) == []


def test_every_code_at_a_raise_site_is_from_the_catalogue() -> None:
    """Codes are `ErrorCode` members, never string literals, and every default code is one too."""
    literal = []
    for path in SRC.rglob("*.py"):
        if "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                literal.append(f"{path.relative_to(SRC)}:{node.value.lineno}")
    assert literal == []
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, AgentHostError):
            assert isinstance(value.default_code, ErrorCode), name
