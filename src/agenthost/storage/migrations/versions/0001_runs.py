"""Runs and run events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agenthost.storage.tables import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("thread_id", sa.String(128)),
        sa.Column("input", JSONType, nullable=False),
        sa.Column("output", JSONType),
        sa.Column("error", JSONType),
        sa.Column("model", sa.String(256)),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_nanousd", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_status", sa.String(32), nullable=False, server_default="none"),
        sa.Column("steps", sa.Integer, nullable=False, server_default="0"),
        sa.Column("idempotency_key", sa.String(256)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("metadata", JSONType),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("completed_at", UTCDateTime),
    )
    op.create_index("ix_runs_created", "runs", ["created_at", "id"])
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at"])
    op.create_index("ix_runs_agent_created", "runs", ["agent", "created_at"])
    op.create_index("ix_runs_user_created", "runs", ["user_id", "created_at"])
    op.create_table(
        "run_events",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_events")
    op.drop_table("runs")
