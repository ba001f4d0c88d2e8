"""`[server]`: the HTTP API."""

from __future__ import annotations

from pydantic import Field

from agenthost.config.base import Section

__all__ = ["ServerSettings"]


class ServerSettings(Section):
    """`[server]`: the HTTP API."""

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in containers.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    run_wait_timeout: float = Field(
        30.0, gt=0, description="Seconds `POST .../run` waits before answering 202 with the run's location."
    )
    heartbeat_interval: float = Field(15.0, gt=0, description="Seconds between SSE heartbeat comments.")
    chat_completions_timeout: float = Field(
        600.0,
        gt=0,
        description="Longest wait for an agent run behind a non-streaming `/v1/chat/completions`.",
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="Grace period for in-flight work on SIGTERM."
    )
    max_page_size: int = Field(100, ge=1, le=1000, description="Upper bound on `limit` for list endpoints.")
