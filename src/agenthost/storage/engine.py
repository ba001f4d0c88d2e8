"""Engine factory: SQLite (WAL) by default, Postgres in production; one URL configures both.

agenthost's tables and DBOS's system tables live side by side: on Postgres in the same database
(DBOS uses its own `dbos` schema); on SQLite in two files next to each other, so that DBOS's
checkpoint writes and agenthost's writes do not queue behind one SQLite write lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agenthost.errors import ConfigError

__all__ = ["DatabaseURLs", "create_app_engine", "create_dbos_engine", "database_urls"]

_SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True)
class DatabaseURLs:
    """The URLs derived from the one configured `database_url`."""

    sync_url: str
    """agenthost's tables, for migrations (sync driver)."""
    async_url: str
    """agenthost's tables, for the server (async driver)."""
    dbos_url: str
    """DBOS's system database."""
    sqlite_path: Path | None
    """The SQLite file of agenthost's tables, or None on Postgres."""

    @property
    def is_sqlite(self) -> bool:
        return self.sqlite_path is not None


def database_urls(url: str) -> DatabaseURLs:
    """Derive the driver-specific URLs from a user-facing database URL.

    Example:
        >>> database_urls("sqlite:///data/a.db").dbos_url
        'sqlite:///data/a.dbos.db'
    """
    if url.startswith(_SQLITE_PREFIX):
        path = Path(url.removeprefix(_SQLITE_PREFIX))
        dbos_path = path.with_name(f"{path.stem}.dbos{path.suffix or '.db'}")
        return DatabaseURLs(
            sync_url=f"sqlite:///{path}",
            async_url=f"sqlite+aiosqlite:///{path}",
            dbos_url=f"sqlite:///{dbos_path}",
            sqlite_path=path,
        )
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            rest = url.removeprefix(prefix)
            return DatabaseURLs(
                sync_url=f"postgresql+psycopg://{rest}",
                async_url=f"postgresql+psycopg://{rest}",
                dbos_url=f"postgresql://{rest}",
                sqlite_path=None,
            )
    msg = f"database_url: unsupported scheme in {url.split('://', 1)[0]!r}; use sqlite:/// or postgresql://"
    raise ConfigError(msg)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; NORMAL syncs at checkpoints, which WAL keeps
    # crash-safe for the application (a power loss may drop the last transactions, never corrupt).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def _ensure_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"database_url: cannot create directory {str(path.parent)!r}: {exc.strerror}"
        raise ConfigError(msg) from exc


def create_app_engine(urls: DatabaseURLs, *, pool_size: int = 10) -> AsyncEngine:
    """The async engine for agenthost's own tables."""
    if urls.sqlite_path is not None:
        _ensure_parent(urls.sqlite_path)
        engine = create_async_engine(urls.async_url)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        urls.async_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def create_sync_engine(urls: DatabaseURLs) -> sa.Engine:
    """A sync engine for agenthost's tables (migrations, CLI maintenance)."""
    if urls.sqlite_path is not None:
        _ensure_parent(urls.sqlite_path)
        engine = sa.create_engine(urls.sync_url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(urls.sync_url, pool_pre_ping=True)


def create_dbos_engine(urls: DatabaseURLs) -> sa.Engine | None:
    """DBOS's system-database engine when agenthost must shape it (SQLite WAL), else None."""
    if urls.sqlite_path is None:
        return None
    dbos_path = Path(urls.dbos_url.removeprefix(_SQLITE_PREFIX))
    _ensure_parent(dbos_path)
    engine = sa.create_engine(urls.dbos_url, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine
