"""A session's state holds "awaiting_approval" (17 characters): VARCHAR(16) becomes VARCHAR(32).

(SQLite never enforced the length; PostgreSQL refused to hold a session for approval.)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repo_sessions") as batch:
        batch.alter_column(
            "state", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("repo_sessions") as batch:
        batch.alter_column(
            "state", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False
        )
