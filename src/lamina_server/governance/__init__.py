"""Governance: evidence packs (:mod:`.evidence`) signed with the server's key
(:mod:`.signing_key`)."""

from lamina_server.governance.evidence import (
    AuditSource,
    EvidencePack,
    EvidenceService,
    NoAuditSource,
    SandboxSource,
)
from lamina_server.governance.signing_key import SigningKey, load_signing_key

__all__ = [
    "AuditSource",
    "EvidencePack",
    "EvidenceService",
    "NoAuditSource",
    "SandboxSource",
    "SigningKey",
    "load_signing_key",
]
