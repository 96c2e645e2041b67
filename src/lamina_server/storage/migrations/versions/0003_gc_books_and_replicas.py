"""The garbage collector's books and lease, and server replicas (which one runs a sandbox).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gc_head_nodes",
        sa.Column("repository_id", sa.String(36), primary_key=True),
        sa.Column("node_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_gc_head_nodes_node", "gc_head_nodes", ["node_id"])
    op.create_table(
        "gc_head_blobs",
        sa.Column("repository_id", sa.String(36), primary_key=True),
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("refs", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_gc_head_blobs_address", "gc_head_blobs", ["address"])
    op.create_table(
        "gc_candidates",
        sa.Column("kind", sa.String(1), primary_key=True),
        sa.Column("item", sa.Text(), primary_key=True),
        sa.Column("repository_id", sa.String(36), primary_key=True),
        sa.Column("released_at", sa.BigInteger(), nullable=False),
        sa.Column("retained", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_gc_candidates_released", "gc_candidates", ["released_at"])
    op.create_index(
        "ix_gc_candidates_repository", "gc_candidates", ["repository_id", "released_at"]
    )
    op.create_table("gc_indexed", sa.Column("repository_id", sa.String(36), primary_key=True))
    op.create_table(
        "gc_condemned",
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "gc_lease",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "server_replicas",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("process", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("sandboxes") as batch:
        batch.add_column(sa.Column("replica_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sandboxes") as batch:
        batch.drop_column("replica_id")
    for table in (
        "server_replicas",
        "gc_lease",
        "gc_condemned",
        "gc_indexed",
        "gc_candidates",
        "gc_head_blobs",
        "gc_head_nodes",
    ):
        op.drop_table(table)
