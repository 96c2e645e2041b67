"""The sandboxes table: one row per sandbox, its request and where its status machine is."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

sandboxes = sa.Table(
    "sandboxes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "repository_id",
        sa.String(36),
        sa.ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("image", sa.String(255), nullable=False),
    sa.Column("command", sa.JSON(), nullable=False),
    sa.Column("mountpoint", sa.String(4096), nullable=False),
    sa.Column("path_prefix", sa.String(4096), nullable=False),
    sa.Column("timeout_seconds", sa.Integer(), nullable=False),
    sa.Column("env_vars", sa.JSON(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("run_as", sa.JSON(), nullable=True),
    sa.Column("require_approval", sa.Boolean(), nullable=False, default=False),
    sa.Column("decisions", sa.JSON(), nullable=False, default=list),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.String(32), nullable=False),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("commit_id", sa.String(64), nullable=False, default=""),
    sa.Column("web_url", sa.Text(), nullable=False, default=""),
    sa.Column("error_message", sa.Text(), nullable=False, default=""),
    sa.Column("session_id", sa.String(36), nullable=True),
    # The server replica that runs it (lamina_server.storage.replicas); another one takes it
    # over (marks it lost) once that replica is dead.
    sa.Column("replica_id", sa.String(36), nullable=True),
    sa.Column("trigger_id", sa.String(36), nullable=True),
    sa.Column("trigger_depth", sa.Integer(), nullable=False, default=0),
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_by_name", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
)

# Listing a repository's sandboxes newest first, and finding the active ones at startup.
sa.Index("ix_sandboxes_repository", sandboxes.c.repository_id, sandboxes.c.created_at)
sa.Index("ix_sandboxes_status", sandboxes.c.status)
