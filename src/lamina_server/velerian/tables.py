"""Tables of the Velerian facade: its API keys, its ABPs (named run definitions) and the
invocations of those."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

# A key acts as the user who minted it, in one organization, narrowed by its scopes.
velerian_keys = sa.Table(
    "velerian_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.JSON(), nullable=False),
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)
sa.Index("ix_velerian_keys_user", velerian_keys.c.user_id, velerian_keys.c.created_at)

abps = sa.Table(
    "velerian_abps",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organization_id", sa.String(36), nullable=False),
    sa.Column(
        "repository_id",
        sa.String(36),
        sa.ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("repository", sa.String(128), nullable=False),  # "org/repo", as created
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, default=""),
    sa.Column("image", sa.String(255), nullable=False),
    sa.Column("command", sa.JSON(), nullable=False),
    sa.Column("env", sa.JSON(), nullable=False),
    sa.Column("path_prefix", sa.String(4096), nullable=False, default=""),
    sa.Column("timeout_seconds", sa.Integer(), nullable=False),
    sa.Column("requires_approval", sa.Boolean(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # draft | deployed | undeployed
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_by_name", sa.String(256), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
sa.Index("ix_velerian_abps_org", abps.c.organization_id, abps.c.created_at)

invocations = sa.Table(
    "velerian_invocations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("abp_id", sa.String(36), sa.ForeignKey("velerian_abps.id"), nullable=False),
    sa.Column("organization_id", sa.String(36), nullable=False),
    sa.Column("repository_id", sa.String(36), nullable=False),
    # The run's sandbox; none when the verdict refused the run before it started.
    sa.Column("sandbox_id", sa.String(36), nullable=True),
    sa.Column("verdict", sa.String(16), nullable=False),  # allowed | denied
    sa.Column("reason", sa.Text(), nullable=False, default=""),
    sa.Column("caller_type", sa.String(16), nullable=False),
    sa.Column("caller_id", sa.String(36), nullable=False),
    sa.Column("caller_name", sa.String(256), nullable=False),
    sa.Column("key_id", sa.String(36), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)
sa.Index("ix_velerian_invocations_org", invocations.c.organization_id, invocations.c.created_at)
sa.Index("ix_velerian_invocations_abp", invocations.c.abp_id, invocations.c.created_at)
