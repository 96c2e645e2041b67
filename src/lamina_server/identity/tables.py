"""Tables of the identity domain: users, organizations, memberships, agents, roles, API keys
and invitations."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("full_name", sa.String(256), nullable=False, default=""),
    sa.Column("email", sa.String(320), nullable=False, default=""),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("display_name", sa.String(256), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # A deleted organization keeps its row (and its repositories' data) and frees its name.
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
)

sa.Index(
    "ix_organizations_live_name",
    organizations.c.name,
    unique=True,
    sqlite_where=organizations.c.deleted_at.is_(None),
    postgresql_where=organizations.c.deleted_at.is_(None),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("joined_at", UtcDateTime(), nullable=False),
    # "admin" or "member"; an organization always keeps at least one admin.
    sa.Column("role", sa.String(16), nullable=False, default="member"),
)


def _organization_id() -> sa.Column[str]:
    return sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    )


def _creator_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_by_type", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_by_name", sa.String(256), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
    ]


# Non-human principals of one organization, named by a slug unique within it.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    _organization_id(),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, default=""),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("inline_policy", sa.Text(), nullable=False, default=""),
    sa.Column("inline_policy_updated_at", UtcDateTime(), nullable=True),
    *_creator_columns(),
    sa.UniqueConstraint("organization_id", "name"),
)

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    _organization_id(),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, default=""),
    *_creator_columns(),
    sa.UniqueConstraint("organization_id", "name"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_id", sa.String(36), nullable=False, index=True),
    # The organization an agent's or role's key acts in; NULL for a user's key.
    sa.Column("organization_id", sa.String(36), nullable=True),
    # sha256 hex of the key; the key itself is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_hint", sa.String(4), nullable=False),
    sa.Column("name", sa.String(256), nullable=False, default=""),
    sa.Column("description", sa.String(256), nullable=False, default=""),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # Written at most once a minute per key (see Identity.authenticate).
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    _organization_id(),
    sa.Column("email", sa.String(320), nullable=False, index=True),
    # Set when the invitation names an existing user (by username, or an email that is theirs).
    sa.Column("user_id", sa.String(36), nullable=True, index=True),
    sa.Column("role", sa.String(16), nullable=False, default="member"),
    sa.Column("invited_by", sa.String(36), nullable=False),
    sa.Column("invited_by_name", sa.String(256), nullable=False),
    # pending | accepted | declined | revoked (expired is derived from expires_at)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)

# A browser's sign-in (:mod:`lamina_server.identity.web_sessions`): only digests are stored.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    # The digest of the API key that signed in: the session lasts no longer than the key.
    sa.Column("key_hash", sa.String(64), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)
