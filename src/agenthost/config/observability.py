"""`[logging]`: structured logs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agenthost.config.base import Section

__all__ = ["LoggingSettings"]


class LoggingSettings(Section):
    """`[logging]`: structured logs."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    format: Literal["json", "console"] = Field(
        "json", description="`json` for production, `console` for humans."
    )
