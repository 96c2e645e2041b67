"""Where each server replica is reached (its sandboxes' requests are forwarded there).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("server_replicas") as batch:
        batch.add_column(sa.Column("url", sa.String(2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_replicas") as batch:
        batch.drop_column("url")
