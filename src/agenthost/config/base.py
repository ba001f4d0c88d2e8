"""What every configuration section shares."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

__all__ = ["IMPORT_PATH", "NAME", "Section"]

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
"""`module:attribute`, the form of agent paths and factories."""
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""Names of agents, models and roles."""


class Section(BaseModel):
    """A configuration table: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")
