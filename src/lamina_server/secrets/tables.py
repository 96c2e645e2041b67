"""The secrets table: one encrypted value per (scope, key)."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("scope_type", sa.String(16), primary_key=True),  # "repository" | "agent"
    sa.Column("scope_id", sa.String(36), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("nonce", sa.LargeBinary(), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary(), nullable=False),  # AES-GCM, tag appended
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
