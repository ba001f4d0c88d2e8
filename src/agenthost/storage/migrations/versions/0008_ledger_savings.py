"""Savings of each ledger row against list price on the agent's primary model.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = ("saved_routing", "saved_response_cache", "saved_prompt_cache", "saved_batch")


def upgrade() -> None:
    with op.batch_alter_table("spend_ledger") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("spend_ledger") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
