"""Bundles: the self-contained zip an export downloads (format: :mod:`.evidence_format`).

A bundle holds one or more packs, each with the bytes of the objects its commit added or
modified, up to a total cap; objects past the cap are listed in the manifest as omitted, and a
verifier says it did not check them. The manifest is signed when the bundle is written, so an
object removed from a bundle is told from one that was never in it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import anyio

from lamina_server.governance import evidence_format as fmt
from lamina_server.governance.signing_key import SigningKey
from lamina_server.storage.blobs import BlobStore
from lamina_server.versioning import VersionStore

if TYPE_CHECKING:
    from lamina_server.governance.evidence import EvidencePack

DEFAULT_OBJECT_CAP = 64 * 1024 * 1024
_STORED_OBJECTS = ("added", "modified")


def _changed_objects(document: dict[str, Any]) -> list[dict[str, Any]]:
    for part in document["parts"]:
        if part["name"] == "outputs":
            diff = part["body"].get("diff")
            if diff is None:
                return []
            return [e for e in diff["entries"] if e.get("status") in _STORED_OBJECTS]
    return []


class BundleWriter:
    """Writes bundles of packs, with the objects' bytes from the store."""

    def __init__(
        self,
        *,
        versions: VersionStore,
        blobs: BlobStore,
        key: SigningKey,
        object_cap: int = DEFAULT_OBJECT_CAP,
    ) -> None:
        self._versions = versions
        self._blobs = blobs
        self._key = key
        self.object_cap = object_cap

    async def write(self, out: IO[bytes], packs: Sequence[EvidencePack], *, at: datetime) -> None:
        """The bundle of ``packs`` into ``out`` (a seekable binary file)."""
        budget = self.object_cap
        listed: list[dict[str, Any]] = []
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(fmt.PUBLIC_KEY, self._key.public_key_pem)
            for pack in packs:
                folder = fmt.pack_folder(pack.id)
                archive.writestr(f"{folder}evidence.json", pack.document)
                archive.writestr(f"{folder}evidence.sig", pack.signature)
                included: list[str] = []
                omitted: list[str] = []
                for item in _changed_objects(json.loads(pack.document)):
                    if item["size"] > budget or pack.commit_id is None:
                        omitted.append(item["path"])
                        continue
                    budget -= item["size"]
                    await self._copy(archive, pack, item["path"], f"{folder}objects/{item['path']}")
                    included.append(item["path"])
                listed.append(
                    {
                        "id": pack.id,
                        "kind": pack.kind,
                        "repository_id": pack.repository_id,
                        "chain_hash": pack.chain_hash,
                        "objects": {"included": included, "omitted": omitted},
                    }
                )
            manifest = {
                "format": fmt.BUNDLE_FORMAT,
                "created_at": at.isoformat(),
                "key_id": self._key.key_id,
                "object_cap": self.object_cap,
                "packs": listed,
            }
            text = fmt.canonical(manifest)
            archive.writestr(fmt.MANIFEST, text)
            archive.writestr(fmt.MANIFEST_SIG, fmt.encode_signature(self._key.sign(text)))

    async def _copy(
        self, archive: zipfile.ZipFile, pack: EvidencePack, path: str, name: str
    ) -> None:
        assert pack.commit_id is not None
        entry = await self._versions.get_entry(pack.repository_id, path, ref=pack.commit_id)
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        with archive.open(info, "w", force_zip64=True) as target:
            async for chunk in self._blobs.read(entry.address, 0, entry.size):
                await anyio.to_thread.run_sync(target.write, chunk)
