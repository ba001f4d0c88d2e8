"""Approvals, thread messages, fork lineage of runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agenthost.storage.tables import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("tool_call_id", sa.String(256), nullable=False),
        sa.Column("tool_name", sa.String(256), nullable=False),
        sa.Column("args", JSONType),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("decided_by", sa.String(256)),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_approvals_status_requested", "approvals", ["status", "requested_at"])
    op.create_index("ix_approvals_run", "approvals", ["run_id"])
    op.create_table(
        "thread_messages",
        sa.Column("thread_id", sa.String(128), primary_key=True),
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("messages", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_thread_messages_position", "thread_messages", ["thread_id", "position"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("forked_from", sa.String(64)))
        batch.add_column(sa.Column("fork_step", sa.Integer))
    op.create_index("ix_runs_thread", "runs", ["thread_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_runs_thread", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("fork_step")
        batch.drop_column("forked_from")
    op.drop_table("thread_messages")
    op.drop_table("approvals")
