"""The sandbox trigger tables: triggers, their runs, and the outbox of landed commits to match.

The versioning engine knows a repository only by id, and so do these tables: no foreign key to
the repository directory, like the engine's own tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

sandbox_triggers = sa.Table(
    "sandbox_triggers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("repository_id", sa.String(36), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, default=""),
    sa.Column("enabled", sa.Boolean(), nullable=False, default=True),
    sa.Column("conditions", sa.JSON(), nullable=False),
    sa.Column("sandbox_config", sa.JSON(), nullable=False),
    sa.Column("run_as", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # A name is unique in its repository (409 on a duplicate); listing pages by name.
    sa.UniqueConstraint("repository_id", "name", name="uq_sandbox_triggers_name"),
)

# The commit path's one question: does this repository have an enabled trigger?
sa.Index(
    "ix_sandbox_triggers_enabled",
    sandbox_triggers.c.repository_id,
    sandbox_triggers.c.enabled,
)

trigger_runs = sa.Table(
    "sandbox_trigger_runs",
    metadata,
    # Time-ordered UUIDs (version 7): ordering by id is ordering by creation.
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("repository_id", sa.String(36), nullable=False),
    sa.Column(
        "trigger_id",
        sa.String(36),
        sa.ForeignKey("sandbox_triggers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("commit_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | created | skipped | failed
    sa.Column("reason", sa.Text(), nullable=False, default=""),
    sa.Column("sandbox_id", sa.String(36), nullable=True),
    sa.Column("matched_paths", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # At most one run per trigger and commit, whatever crashes and restarts happen.
    sa.UniqueConstraint("trigger_id", "commit_id", name="uq_sandbox_trigger_runs_commit"),
)

sa.Index("ix_sandbox_trigger_runs_trigger", trigger_runs.c.trigger_id, trigger_runs.c.id)

# Commits that landed in a repository with an enabled trigger, written in the commit's own
# transaction and deleted once matched: what the dispatcher has left to do.
trigger_outbox = sa.Table(
    "sandbox_trigger_outbox",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("repository_id", sa.String(36), nullable=False),
    sa.Column("commit_id", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("repository_id", "commit_id", name="uq_sandbox_trigger_outbox_commit"),
)
