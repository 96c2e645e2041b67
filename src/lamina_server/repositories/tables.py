"""The repositories table: names, settings and soft deletion of an organization's repositories."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, default=""),
    sa.Column("visibility", sa.String(16), nullable=False, default="private"),
    sa.Column("retention_days", sa.Integer(), nullable=False, default=14),
    sa.Column("session_max_duration_days", sa.Integer(), nullable=True),
    # Which commits wait for a human's approval: "none", "agents" (an agent's) or "all"; and,
    # when the JSON list of path prefixes is not empty, only those changing a path under one.
    sa.Column("approval_required_for", sa.String(16), nullable=False, default="none"),
    sa.Column("approval_paths", sa.Text(), nullable=False, default="[]"),
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
)

# A name is unique among the live repositories of an organization; soft-deleted ones free it.
sa.Index(
    "ix_repositories_live_name",
    repositories.c.organization_id,
    repositories.c.name,
    unique=True,
    sqlite_where=repositories.c.deleted_at.is_(None),
    postgresql_where=repositories.c.deleted_at.is_(None),
)
