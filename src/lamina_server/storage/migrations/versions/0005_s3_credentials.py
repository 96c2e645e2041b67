"""S3 credentials of the S3-compatible gateway: an access key id, its sealed secret, and the
principal it acts as.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "s3_credentials",
        sa.Column("access_key_id", sa.String(length=32), nullable=False),
        sa.Column("principal_type", sa.String(length=16), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("access_key_id"),
    )
    op.create_index(
        "ix_s3_credentials_principal_id", "s3_credentials", ["principal_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_s3_credentials_principal_id", table_name="s3_credentials")
    op.drop_table("s3_credentials")
