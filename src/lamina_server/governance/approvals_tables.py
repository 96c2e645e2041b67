"""The approvals table: one row per session that was held for a human's decision."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("repository_id", sa.String(36), nullable=False, index=True),
    sa.Column("organization_id", sa.String(36), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),  # pending | approved | rejected | withdrawn
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),  # JSON object
    sa.Column("requested_by_type", sa.String(16), nullable=False),
    sa.Column("requested_by_id", sa.String(64), nullable=False),
    sa.Column("requested_by_name", sa.Text, nullable=False),
    sa.Column("requested_at", UtcDateTime(), nullable=False),
    sa.Column("sandbox_id", sa.String(36), nullable=True),
    sa.Column("decided_by_type", sa.String(16), nullable=True),
    sa.Column("decided_by_id", sa.String(64), nullable=True),
    sa.Column("decided_by_name", sa.Text, nullable=True),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("commit_id", sa.String(64), nullable=True),
)
