"""`[gateway]` (retries, breakers, degradation, context overflow), `[cache]` and `[routing]`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agenthost.config.base import Section

__all__ = ["CacheSettings", "GatewaySettings", "RoutingSettings"]


class GatewaySettings(Section):
    """`[gateway]`: what happens around every model call: retries, circuit breakers, degradation."""

    retry_max_attempts: int = Field(
        3, ge=1, le=20, description="Attempts per model call, the first included."
    )
    retry_initial_delay: float = Field(
        0.5, ge=0, description="First backoff (seconds); doubles, with full jitter."
    )
    retry_max_delay: float = Field(8.0, ge=0, description="Longest single backoff (seconds).")
    retry_max_total_seconds: float = Field(
        30.0, gt=0, description="No new attempt starts after this long since the first one."
    )
    retry_after_max_seconds: float = Field(
        30.0,
        ge=0,
        description="A provider's `Retry-After` longer than this is not waited for (the call fails over).",
    )
    breaker_failure_threshold: int = Field(
        5, ge=1, description="Consecutive failed attempts that open a model's circuit breaker."
    )
    breaker_cooldown_seconds: float = Field(
        30.0, gt=0, description="How long an open breaker fails calls fast before letting one probe through."
    )
    degradation_message: str | None = Field(
        None,
        description="Answer with this text (at no cost) when every model of a chain fails, not an error.",
    )
    context_overflow: Literal["truncate", "summarize", "error"] = Field(
        "truncate",
        description="When a history exceeds a model's context budget: drop the oldest exchanges "
        "(`truncate`), replace them by a summary from the same model (`summarize`), or refuse (`error`).",
    )
    context_reserve_tokens: int = Field(
        1024, ge=1, description="Tokens kept free for the answer when a call sets no `max_tokens`."
    )


class CacheSettings(Section):
    """`[cache]`: the exact response cache (off by default)."""

    enabled: bool = Field(
        default=False, description="Answer repeated identical requests from the cache, at no cost."
    )
    ttl_seconds: float = Field(3600.0, gt=0, description="How long an answer stays in the cache.")
    shared_across_tenants: bool = Field(
        default=False,
        description="Let different users' identical requests share answers (off: keyed by user).",
    )
    semantic: bool = Field(
        default=False,
        description="Also answer paraphrases of an earlier last question (embedding similarity); "
        "needs `enabled`.",
    )
    semantic_threshold: float = Field(
        0.9, gt=0, le=1, description="Cosine similarity at or above which a paraphrase is a hit."
    )
    semantic_embeddings: str = Field(
        "local",
        description="`local` (all-MiniLM-L6-v2 on the CPU, `[semantic]` extra) or a `[models]` name "
        "whose `model` is an embedding model served over the OpenAI embeddings API.",
    )
    semantic_max_entries: int = Field(
        1000, ge=1, description="Newest entries compared per lookup (per model, tenant and context)."
    )


class RoutingSettings(Section):
    """`[routing]`: the model of each complexity tier, for agents with `routing = true`."""

    simple: str | None = Field(
        None, description="`[models]` name for greetings, lookups, short factual asks."
    )
    medium: str | None = Field(
        None, description="`[models]` name for explanations, summaries, short writing."
    )
    complex: str | None = Field(None, description="`[models]` name for multi-step work, code, analysis.")
    classifier: str | None = Field(
        None,
        description="`[models]` name of a cheap model that classifies each input (one short call per "
        "routed run); unset uses the local heuristic. On any failure the heuristic decides.",
    )
    classifier_timeout_seconds: float = Field(
        5.0, gt=0, description="Time the classifier model gets before the heuristic decides instead."
    )
