"""API keys; runs remember the key and team that started them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agenthost.storage.tables import JSONType, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("team", sa.String(128), nullable=True),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("agents", JSONType, nullable=True),
        sa.Column("rate_limits", JSONType, nullable=True),
        sa.Column("budgets", JSONType, nullable=True),
        sa.Column("limits", JSONType, nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("previous_expires_at", UTCDateTime, nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=True),
        sa.Column("rotated_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_api_keys_user", "api_keys", ["user_id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("key_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("team", sa.String(128), nullable=True))
    op.create_index("ix_runs_key_created", "runs", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_key_created", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("team")
        batch.drop_column("key_id")
    op.drop_table("api_keys")
