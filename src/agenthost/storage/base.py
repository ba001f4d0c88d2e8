"""What every SQL store shares: the engine, the dialect's INSERT ... ON CONFLICT, visibility as SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from agenthost.records import Visibility

__all__ = ["CHUNK", "Store", "chunks", "visible"]

CHUNK = 500
"""Rows per statement when a store works through many ids (bounded `IN (...)` lists)."""


class Store:
    """A group of queries over one engine, written once for SQLite and Postgres."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Both dialects spell upserts the same way; only the constructor differs.
        self.insert: Callable[..., Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )


def visible(table: sa.Table, visibility: Visibility | None) -> sa.ColumnElement[bool] | None:
    """`visibility` as a condition on a table with `user_id`, `key_id` and `team` columns (None:
    every row)."""
    if visibility is None or visibility.everything:
        return None
    own = (
        table.c.user_id == visibility.user_id
        if visibility.user_id is not None
        else table.c.key_id == (visibility.key_id or "")
    )
    if visibility.scope == "team" and visibility.team is not None:
        return sa.or_(own, table.c.team == visibility.team)
    return own


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """`items` in slices of `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
