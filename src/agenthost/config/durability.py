"""`[durability]`: the DBOS engine that makes runs durable."""

from __future__ import annotations

from pydantic import Field

from agenthost.config.base import Section

__all__ = ["DurabilitySettings"]


class DurabilitySettings(Section):
    """`[durability]`: the DBOS engine that makes runs durable."""

    app_name: str = Field("agenthost", pattern=r"^[a-z0-9_-]{3,}$", description="DBOS application name.")
    application_version: str = Field(
        "1",
        min_length=1,
        description="Pinned DBOS application version: processes sharing it recover each other's runs.",
    )
    executor_id: str = Field(
        "local", min_length=1, description="Unique per replica in a multi-replica deployment."
    )
    queue_concurrency: int = Field(16, ge=1, description="Background runs executing at once in this process.")
    events_flush_interval: float = Field(
        0.25, gt=0, description="Seconds between writes of buffered run events to the database."
    )
    approval_timeout_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="How long a tool call waits for approval before it is denied."
    )
    max_recovery_attempts: int = Field(
        5,
        ge=1,
        description="Restarts a run may crash in before it is marked `dead` (then resume it by hand).",
    )
