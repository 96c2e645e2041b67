"""Evidence packs, their exports and the server's public key (verify bundles with
:func:`lamina.evidence.verify`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import field, frozen


@frozen
class EvidencePackSummary:
    """A pack as listed (``GET .../evidence``): what it is about and its chain's hash."""

    id: str
    kind: str  # "sandbox_run" | "approved_commit"
    subject_id: str  # the sandbox's or session's id
    chain_hash: str
    key_id: str
    created_at: datetime | None = None
    commit_id: str | None = None


@frozen
class EvidencePack:
    """A pack (``GET .../evidence/{id}``): its signed ``document`` (``lamina.evidence/1``)
    and ``signature`` (base64 Ed25519 over the document's canonical JSON)."""

    id: str
    kind: str
    subject_id: str
    chain_hash: str
    key_id: str
    signature: str
    document: dict[str, Any] = field(factory=dict)
    created_at: datetime | None = None
    commit_id: str | None = None


@frozen
class EvidenceExport:
    """An export: ``download_url`` fetches the bundle (zip) without credentials until
    ``expires_at``."""

    export_id: str
    download_url: str
    expires_at: datetime | None = None
    artifact_kind: str = "evidence_pack"
    format: str = "zip"
    s3_key: str = ""
    delivery: str = "presigned"


@frozen
class EvidencePublicKey:
    """The key the server signs evidence with (``GET /evidence/public-key``)."""

    algorithm: str
    key_id: str
    public_key_pem: str
