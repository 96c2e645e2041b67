"""The evidence pack of a governed run, and its export as velerian-sdk's ``EvidenceExport``.

A run's pack is the newest pack whose subject is its sandbox (made when the sandbox ended,
held or not) or its session (made when its held changes were approved and landed).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from lamina_server.api.deps import Services
from lamina_server.governance.evidence import EvidencePack
from lamina_server.sandboxes.models import SandboxRecord

_POLL = 0.05


@dataclass(frozen=True, slots=True)
class PackRef:
    id: str
    chain_hash: str
    s3_key: str  # where its export is named, as the evidence export names it


def s3_key(organization: str, repository: str, pack: EvidencePack) -> str:
    return f"evidence/{organization}/{repository}/{pack.id}.zip"


async def newest_pack(services: Services, sandbox: SandboxRecord) -> EvidencePack | None:
    found: list[EvidencePack] = []
    for subject in (sandbox.id, sandbox.session_id):
        if subject:
            packs, _ = await services.evidence.page(
                sandbox.repository_id, after=None, amount=1, subject_id=subject
            )
            found += packs
    return max(found, key=lambda pack: (pack.created_at, pack.id), default=None)


async def pack_of(
    services: Services,
    sandbox: SandboxRecord,
    organization: str,
    repository: str,
    *,
    wait: float = 0.0,
) -> PackRef | None:
    """The run's pack; waiting up to ``wait`` seconds for the one its sandbox's end makes
    (written just after the end is)."""
    # Looked up once outside any deadline: a scope of 0 s would cancel the first lookup.
    pack = await newest_pack(services, sandbox)
    if pack is None and wait > 0:
        with anyio.move_on_after(wait):
            while pack is None:
                await anyio.sleep(_POLL)
                pack = await newest_pack(services, sandbox)
    if pack is None:
        return None
    return PackRef(pack.id, pack.chain_hash, s3_key(organization, repository, pack))
