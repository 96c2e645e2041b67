"""The S3 credentials table: one access key pair per row, its secret sealed at rest."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

s3_credentials = sa.Table(
    "s3_credentials",
    metadata,
    sa.Column("access_key_id", sa.String(32), primary_key=True),
    # The principal the credential acts as (user, agent or role), and an agent's or role's
    # organization (NULL for a user).
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_id", sa.String(36), nullable=False, index=True),
    sa.Column("organization_id", sa.String(36), nullable=True),
    # The secret access key, AES-GCM sealed under the server's secrets key (SigV4 needs it).
    sa.Column("nonce", sa.LargeBinary(), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)
