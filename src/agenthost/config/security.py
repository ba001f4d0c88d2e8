"""Security sections: `[redaction]`, `[rate_limits]`, `[screening]` and `[retention]`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import ConfigDict, Field, field_validator

from agenthost.config.base import Section

__all__ = [
    "ENTITY_TYPES",
    "RateLimit",
    "RateLimitSettings",
    "RedactionSettings",
    "RetentionSettings",
    "ScreeningAction",
    "ScreeningSettings",
]

ENTITY_TYPES: tuple[str, ...] = (
    "email",
    "phone",
    "credit_card",
    "israeli_id",
    "us_ssn",
    "iban",
    "ip_address",
    "api_key",
    "jwt",
    "private_key",
)
"""The entity types output redaction knows (one detector each, `security/detectors.py`)."""
ScreeningAction = Literal["block", "flag", "wrap"]


class RedactionSettings(Section):
    """`[redaction]` (and `[agents.<name>.redaction]`): what is redacted in output and tool results."""

    enabled: bool = Field(default=True, description="Redact model output, tool calls and tool results.")
    entities: list[str] | None = Field(
        None, description=f"Entity types to redact; unset: all ({', '.join(ENTITY_TYPES)})."
    )
    mode: Literal["placeholder", "mask"] = Field(
        "placeholder",
        description="`placeholder`: `[EMAIL]`; `mask`: keep a few characters (`j***@e***.com`).",
    )
    hold_chars: int = Field(
        32, ge=16, le=4096, description="Streamed text held back so entities split across deltas are seen."
    )

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(ENTITY_TYPES))
        if unknown:
            msg = f"unknown entity types {unknown}; known: {list(ENTITY_TYPES)}"
            raise ValueError(msg)
        return value


class RateLimit(Section):
    """One scope's quotas per window (0 = unlimited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int = Field(0, ge=0, description="Requests admitted per window; 0 = unlimited.")
    tokens_per_minute: int = Field(
        0, ge=0, description="Model tokens (input + output) per window; 0 = unlimited."
    )

    def updated(self, changes: Mapping[str, int | None] | None) -> RateLimit:
        """This limit with the non-None values of `changes` (e.g. an API key's `rate_limits`).

        >>> RateLimit(requests_per_minute=60).updated({"tokens_per_minute": 900, "requests_per_minute": None})
        RateLimit(requests_per_minute=60, tokens_per_minute=900)
        """
        if not changes:
            return self
        return RateLimit.model_validate(
            {**self.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        )


class RateLimitSettings(Section):
    """`[rate_limits]`: requests and tokens per window, per API key, per user and per client address."""

    enabled: bool = Field(default=True, description="Apply rate limits at all.")
    per_key: RateLimit = Field(
        default_factory=RateLimit,
        description="Limits of each API key (a key's own `rate_limits` replace these, field by field). "
        "Unlimited by default: quotas depend on the plan a key belongs to.",
    )
    per_user: RateLimit = Field(
        default_factory=RateLimit,
        description="Limits of each user (key owner or JWT user), across all their keys. "
        "Unlimited by default; spend is capped by `[budgets]`.",
    )
    per_ip: RateLimit = Field(
        default_factory=lambda: RateLimit(requests_per_minute=600),
        description="Limits of each client address (IPv6: each network of `ipv6_prefix_length`). "
        "600 requests a minute by default: far above one person or one integration behind a NAT, "
        "low enough to blunt floods and credential guessing, which it also counts.",
    )
    window_seconds: int = Field(
        60, ge=1, le=86_400, description="The window; `*_per_minute` are per window. Keep 60 outside tests."
    )
    on_store_error: Literal["local", "open", "closed"] = Field(
        "local",
        description="When Redis fails: `local` counts in this process until Redis answers again (each "
        "replica then admits up to the limit), `open` admits every request, `closed` refuses with 503 "
        "`rate_limit_unavailable`. `local` and `open` log a warning (at most every 30 s).",
    )
    store_timeout_seconds: float = Field(
        0.5,
        gt=0,
        le=10,
        description="Redis connect and reply timeout of a rate-limit call, and its longest wait for a "
        "free pooled connection.",
    )
    store_retry_seconds: float = Field(
        2.0, ge=0, le=300, description="After a Redis error, how long before Redis is tried again."
    )
    trust_forwarded_for: bool = Field(
        default=False,
        description="Take the client address from `X-Forwarded-For` (only behind a proxy you run, "
        "which must overwrite or append to it); otherwise the TCP peer address is the client.",
    )
    trusted_proxy_hops: int = Field(
        1,
        ge=1,
        le=10,
        description="Proxies that append to `X-Forwarded-For`; the client is the entry "
        "this far from the right (entries further left can be forged by the client).",
    )
    ipv6_prefix_length: int = Field(
        64,
        ge=32,
        le=128,
        description="IPv6 clients are limited per network of this prefix (one host "
        "usually owns a whole /64 and can rotate addresses within it).",
    )


class ScreeningSettings(Section):
    """Input screening and the prompt-injection detector (`[screening]`)."""

    enabled: bool = Field(
        default=True,
        description="Screen run inputs, chat messages and tool outputs at all (size, control "
        "characters and prompt injection).",
    )
    max_input_chars: int = Field(
        default=32_000,
        ge=1,
        description="Longest input text accepted, in characters; longer input is refused with 400 "
        "`input_rejected`. Tool outputs are not limited.",
    )
    action: ScreeningAction = Field(
        default="block",
        description="What happens to client input that looks like a prompt injection: `block` "
        "answers 400 `input_rejected`, `flag` lets it through and logs `input_flagged`, `wrap` lets "
        "it through inside untrusted-data markers.",
    )
    threshold: float = Field(
        default=1.0,
        gt=0,
        description="Heuristic score at or above which text is suspicious. One strong pattern "
        "(e.g. 'ignore all previous instructions') scores 1.0; weak ones 0.3-0.6 each.",
    )
    tool_threshold: float | None = Field(
        default=None,
        gt=0,
        description="Heuristic threshold for tool outputs; unset means the same as `threshold`.",
    )
    similarity: bool = Field(
        default=False,
        description="Also compare texts the heuristics pass with a corpus of known attacks, by "
        "offline MiniLM embeddings (needs the `[semantic]` extra; about 10-100 ms per text).",
    )
    similarity_threshold: float = Field(
        default=0.55,
        gt=0,
        le=1,
        description="Cosine similarity to a known attack at or above which text is suspicious.",
    )
    screen_tool_outputs: bool = Field(
        default=True,
        description="Screen what tools return before the model reads it (indirect injection).",
    )
    tool_output_action: ScreeningAction = Field(
        default="wrap",
        description="What happens to a tool output that looks like a prompt injection: `wrap` "
        "marks it as untrusted data and passes it on, `block` replaces it with a note that it was "
        "withheld, `flag` passes it on and logs `input_flagged`. Never an error: that would fail "
        "the run for data the user did not write.",
    )


class RetentionSettings(Section):
    """`[retention]`: how long each kind of data is kept, in days (0 = forever).

    The spend ledger's period is `[ledger] retention_days`; cache entries expire after `[cache]
    ttl_seconds`.
    """

    conversations_days: int = Field(
        90,
        ge=0,
        description="Threads, and the input, output, events and durable records of finished runs, are "
        "removed after this many days (run rows with their cost stay).",
    )
    audit_days: int = Field(
        2555,
        ge=0,
        description="Audit entries older than this are deleted (default 7 years); the chain stays "
        "verifiable.",
    )
    schedule: str = Field(
        "0 * * * *",
        description="When the retention job runs (also once at server start): a cron expression "
        "in UTC (5 fields, or 6 with seconds first).",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value, second_at_beginning=True):
            msg = f"not a cron expression: {value!r}"
            raise ValueError(msg)
        return value
