"""Audit log (hash-chained, with its head row and digest secret); who each cached answer was for;
when a run was scrubbed (erasure, retention).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agenthost.storage.tables import JSONType, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("actor_user", sa.String(256), nullable=True),
        sa.Column("actor_user_digest", sa.String(64), nullable=True),
        sa.Column("subject_user", sa.String(256), nullable=True),
        sa.Column("subject_user_digest", sa.String(64), nullable=True),
        sa.Column("target", sa.String(256), nullable=True),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("details_digest", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("prompt_version", sa.String(128), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("dedupe_key", sa.String(255), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("dedupe_key", name="uq_audit_log_dedupe_key"),
    )
    op.create_index("ix_audit_log_created", "audit_log", ["created_at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
    op.create_index("ix_audit_log_actor_user", "audit_log", ["actor_user_digest"])
    op.create_index("ix_audit_log_subject_user", "audit_log", ["subject_user_digest"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger, nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=True),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS, "anchor_seq": 0, "anchor_hash": _GENESIS}])
    op.create_table(
        "audit_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    for table in ("response_cache", "semantic_cache"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tenant", sa.String(256), nullable=True))
        op.create_index(f"ix_{table}_tenant", table, ["tenant"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("scrubbed_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("scrubbed_at")
    for table in ("semantic_cache", "response_cache"):
        op.drop_index(f"ix_{table}_tenant", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant")
    op.drop_table("audit_meta")
    op.drop_table("audit_head")
    op.drop_table("audit_log")
