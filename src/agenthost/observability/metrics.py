"""Prometheus metrics, served at `GET /metrics`.

Every series is prefixed `agenthost_`. The gateway feeds the model series (one count per attempt
that reached a provider, so retries are visible), breakers, caches and routing; the server feeds
HTTP and run series. Label values are bounded: configured model and agent names, route templates
(never raw paths), status classes.

With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by the
workers (prometheus-client's multiprocess mode): `/metrics` then aggregates every worker's files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from pydantic_ai.exceptions import ModelHTTPError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BREAKER_REJECTIONS",
    "BREAKER_STATE",
    "CACHE_LOOKUPS",
    "CONTENT_TYPE_LATEST",
    "MODEL_COST",
    "MODEL_LATENCY",
    "MODEL_REQUESTS",
    "MODEL_TOKENS",
    "ROUTING_DECISIONS",
    "RUNS_FINISHED",
    "RUNS_RECOVERED",
    "TOOL_OUTCOME_UNKNOWN",
    "MetricsMiddleware",
    "outcome_of",
    "render",
    "set_breaker_states",
]

_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_HTTP_OUTCOMES: Final = {429: "rate_limited", 529: "overloaded"}
_BREAKER_VALUES: Final = {"closed": 0, "half_open": 1, "open": 2}

MODEL_REQUESTS = Counter(
    "agenthost_model_requests_total",
    "Requests sent to a model provider (every attempt, retries included), by outcome.",
    ["model", "outcome"],
)
MODEL_LATENCY = Histogram(
    "agenthost_model_request_seconds",
    "Duration of model provider requests (to the end of the stream when streaming).",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
MODEL_TOKENS = Counter(
    "agenthost_model_tokens_total",
    "Tokens reported by providers, by kind (input, output, cache_read, cache_write).",
    ["model", "kind"],
)
MODEL_COST = Counter(
    "agenthost_model_cost_usd_total", "Spend on model calls in USD (genai-prices and overrides).", ["model"]
)
BREAKER_STATE = Gauge(
    "agenthost_breaker_state",
    "Circuit breaker state per provider+model: 0 closed, 1 half-open, 2 open.",
    ["breaker"],
    multiprocess_mode="max",
)
BREAKER_REJECTIONS = Counter(
    "agenthost_breaker_rejections_total", "Calls failed fast because the breaker was open.", ["breaker"]
)
CACHE_LOOKUPS = Counter(
    "agenthost_cache_lookups_total",
    "Response cache lookups by cache (exact, semantic) and result (hit, miss).",
    ["cache", "result"],
)
ROUTING_DECISIONS = Counter(
    "agenthost_routing_decisions_total",
    "Runs routed by complexity: the tier, the model it maps to, and who chose (heuristic, "
    "classifier, forced).",
    ["agent", "tier", "model", "source"],
)
RUNS_FINISHED = Counter(
    "agenthost_runs_finished_total", "Runs that reached an end state.", ["agent", "status"]
)
RUNS_RECOVERED = Counter(
    "agenthost_runs_recovered_total",
    "Runs a previous process left executing, resumed by this one at start-up.",
)
TOOL_OUTCOME_UNKNOWN = Counter(
    "agenthost_tool_outcome_unknown_total",
    "At-most-once tool calls interrupted by a crash: not run again, their outcome unknown.",
    ["agent", "tool"],
)
HTTP_REQUESTS = Counter(
    "agenthost_http_requests_total",
    "HTTP requests by route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "agenthost_http_request_seconds",
    "HTTP request duration until the response starts (streams are not timed to their end).",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)


def outcome_of(exc: BaseException | None) -> str:
    """A bounded label for how a provider request ended."""
    if exc is None:
        return "ok"
    if isinstance(exc, ModelHTTPError):
        code = exc.status_code
        named = _HTTP_OUTCOMES.get(code)
        return named or ("server_error" if code >= 500 else "client_error")  # noqa: PLR2004
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:
        return "timeout"
    return "connection_error" if "connect" in name else "error"


def set_breaker_states(states: Mapping[str, str]) -> None:
    """Publish the breakers' current states (read from their store at each scrape)."""
    for key, state in states.items():
        BREAKER_STATE.labels(key).set(_BREAKER_VALUES.get(state, 0))


def render() -> bytes:
    """The exposition text of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)


class MetricsMiddleware:
    """Count and time HTTP requests by route template (unmatched paths share one label)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                template = getattr(route, "path", "<unmatched>")
                HTTP_LATENCY.labels(scope["method"], template).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "<unmatched>")
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
