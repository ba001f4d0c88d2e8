"""What every store shares: the engine and the dialect's INSERT ... ON CONFLICT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Store"]


class Store:
    """A group of queries over one engine, written once for SQLite and Postgres."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Both dialects spell upserts the same way; only the constructor differs.
        self.insert: Callable[..., Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )
