"""Schema migrations (Alembic), applied at start-up and by `agenthost check --migrate`."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from agenthost.storage.engine import DatabaseURLs, create_sync_engine

__all__ = ["upgrade"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; replicas starting together take turns on the same key.
_PG_LOCK_KEY = 0x6167656E74686F73


def upgrade(urls: DatabaseURLs) -> None:
    """Bring agenthost's tables to the latest revision; safe with replicas starting at once."""
    engine = create_sync_engine(urls)
    try:
        with engine.begin() as connection:
            if not urls.is_sqlite:
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
