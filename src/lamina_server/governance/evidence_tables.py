"""The evidence_packs table: one row per signed pack, its document kept as signed."""

from __future__ import annotations

import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime
from lamina_server.storage.db import metadata

evidence_packs = sa.Table(
    "evidence_packs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "organization_id",
        sa.String(36),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "repository_id",
        sa.String(36),
        sa.ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False),  # the sandbox's or session's id
    sa.Column("commit_id", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("document", sa.Text(), nullable=False),  # canonical JSON, the bytes signed
    sa.Column("signature", sa.Text(), nullable=False),  # base64 of the Ed25519 signature
)

# A repository's packs newest first, an organization's since a time, a subject's pack.
sa.Index("ix_evidence_repository", evidence_packs.c.repository_id, evidence_packs.c.created_at)
sa.Index("ix_evidence_organization", evidence_packs.c.organization_id, evidence_packs.c.created_at)
sa.Index("ix_evidence_subject", evidence_packs.c.subject_id)
