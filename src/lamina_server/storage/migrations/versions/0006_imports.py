"""Connectors, their attachment to repositories, import jobs, and where imported objects came
from.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("created_by_type", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_connectors_organization_id", "connectors", ["organization_id"])
    op.create_table(
        "repository_connectors",
        sa.Column("repository_id", sa.String(36), primary_key=True),
        sa.Column("connector_id", sa.String(36), primary_key=True),
        sa.Column("attached_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("repository_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("connector_id", sa.String(36), nullable=True),
        sa.Column("source_repository_id", sa.String(36), nullable=True),
        sa.Column("source_organization", sa.String(256), nullable=False),
        sa.Column("source_repository", sa.String(256), nullable=False),
        sa.Column("source_commit_id", sa.String(64), nullable=True),
        sa.Column("source_prefix", sa.Text(), nullable=False),
        sa.Column("destination_path", sa.Text(), nullable=False),
        sa.Column("commit_message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("objects_imported", sa.BigInteger(), nullable=False),
        sa.Column("objects_unchanged", sa.BigInteger(), nullable=False),
        sa.Column("commit_id", sa.String(64), nullable=True),
        sa.Column("session_id", sa.String(36), nullable=True),
        sa.Column("replica_id", sa.String(36), nullable=True),
        sa.Column("created_by_type", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_by_name", sa.String(256), nullable=False),
        sa.Column("principal_organization_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_import_jobs_repository_id", "import_jobs", ["repository_id"])
    op.create_table(
        "import_objects",
        sa.Column("repository_id", sa.String(36), primary_key=True),
        sa.Column("path", sa.Text(), primary_key=True),
        sa.Column("connector_id", sa.String(36), nullable=False),
        sa.Column("source_etag", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_objects")
    op.drop_index("ix_import_jobs_repository_id", table_name="import_jobs")
    op.drop_table("import_jobs")
    op.drop_table("repository_connectors")
    op.drop_index("ix_connectors_organization_id", table_name="connectors")
    op.drop_table("connectors")
