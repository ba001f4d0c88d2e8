"""`[redis]`: the optional shared store of budgets, rate limits, circuit breakers and caches."""

from __future__ import annotations

from pydantic import Field, SecretStr

from agenthost.config.base import Section

__all__ = ["RedisSettings"]


class RedisSettings(Section):
    """`[redis]`: optional; shares budgets, rate limits, circuit breakers and caches across replicas."""

    url: SecretStr | None = Field(
        None, description="`redis://host:6379/0`; unset keeps that state per process."
    )
    key_prefix: str = Field("agenthost", min_length=1, description="Prefix of every key agenthost writes.")
    max_connections: int = Field(
        64, ge=1, le=10_000, description="Connections per pool; calls past it wait for a free one."
    )
