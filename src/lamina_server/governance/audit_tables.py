"""The audit log's tables: append-only entries, hash-chained per organization.

An organization's chain is the sequence of its entries by ``seq`` (the primary key, so two
appends can never take the same position). Entries of requests that name no organization
(creating one, a user's own keys) form the chain of the organization ``""``.
"""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.db import metadata

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("organization_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.String(36), nullable=False),  # a uuid4: unique without an index
    sa.Column("timestamp_us", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_id", sa.String(64), nullable=False),
    sa.Column("principal_name", sa.Text, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("resource_kind", sa.String(32), nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("client_address", sa.String(64), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

sa.Index("ix_audit_action", audit_entries.c.organization_id, audit_entries.c.action)
sa.Index("ix_audit_resource", audit_entries.c.organization_id, audit_entries.c.resource_id)
sa.Index("ix_audit_time", audit_entries.c.organization_id, audit_entries.c.timestamp_us)
