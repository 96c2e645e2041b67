"""The connectors and imports tables.

- ``connectors``: an organization's connectors; the source's configuration (credentials
  included) sealed like a secret (:mod:`lamina_server.secrets.sealing`); soft-deleted.
- ``repository_connectors``: which connectors are attached to which repositories.
- ``import_jobs``: every import job, its state, and the replica that runs it.
- ``import_objects``: where each path an import landed came from (the source's ETag and size,
  and the blob it was stored as), so that importing again copies only what changed.
"""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

connectors = sa.Table(
    "connectors",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organization_id", sa.String(36), nullable=False, index=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("source_uri", sa.Text(), nullable=False),
    sa.Column("nonce", sa.LargeBinary(), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary(), nullable=False),  # the config, AES-GCM sealed
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    sa.Column("created_by_type", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

repository_connectors = sa.Table(
    "repository_connectors",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("connector_id", sa.String(36), primary_key=True),
    sa.Column("attached_at", UtcDateTime(), nullable=False),
)

import_jobs = sa.Table(
    "import_jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("repository_id", sa.String(36), nullable=False, index=True),
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
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

import_objects = sa.Table(
    "import_objects",
    metadata,
    sa.Column("repository_id", sa.String(36), primary_key=True),
    sa.Column("path", sa.Text(), primary_key=True),
    sa.Column("connector_id", sa.String(36), nullable=False),
    sa.Column("source_etag", sa.Text(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("address", sa.Text(), nullable=False),
)
