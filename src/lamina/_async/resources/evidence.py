"""Evidence packs: a repository's (``repo.evidence``) and an organization's exports
(``org.evidence``). Bundles are verified offline with :func:`lamina.evidence.verify`."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import segment
from lamina._converter import structure
from lamina.models.evidence import EvidenceExport, EvidencePack, EvidencePackSummary

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


async def _download(
    client: AsyncClient, export: EvidenceExport, path: str | os.PathLike[str]
) -> Path:
    """Streams an export's bundle to ``path`` (through a temporary file beside it, so a failed
    download leaves no partial bundle)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        async with client.stream("GET", export.download_url, authenticated=False) as response:
            with partial.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


class AsyncEvidencePacks:
    """The evidence packs of a repository: one per sandbox run and per approved commit."""

    def __init__(self, client: AsyncClient, repository_path: str) -> None:
        self._client = client
        self._path = f"{repository_path}/evidence"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    def list(
        self,
        *,
        subject_id: str | None = None,
        amount: int | None = None,
        page_size: int = 100,
        after: str | None = None,
    ) -> AsyncPager[EvidencePackSummary]:
        """The packs, newest first (only those of the sandbox or session ``subject_id``)."""
        return self._client.paginate(
            self._path,
            EvidencePackSummary,
            params={"subject_id": subject_id},
            amount=amount,
            page_size=page_size,
            after=after,
        )

    async def get(self, pack_id: str) -> EvidencePack:
        """The pack ``pack_id``, with its signed document."""
        data = await self._client.request_json("GET", f"{self._path}/{segment(pack_id)}")
        return structure(self._client.converter, data, EvidencePack)

    async def export(self, pack_id: str) -> EvidenceExport:
        """An expiring signed URL of the pack's bundle (zip)."""
        data = await self._client.request_json("POST", f"{self._path}/{segment(pack_id)}/export")
        return structure(self._client.converter, data, EvidenceExport)

    async def download(self, pack_id: str, path: str | os.PathLike[str]) -> Path:
        """Export the pack and download its bundle to ``path``; returns the path."""
        return await _download(self._client, await self.export(pack_id), path)


class AsyncOrganizationEvidence:
    """Exports of an organization's evidence packs."""

    def __init__(self, client: AsyncClient, organization_path: str) -> None:
        self._client = client
        self._path = f"{organization_path}/evidence/export"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    async def export(
        self, *, since: datetime | str | None = None, repository: str | None = None
    ) -> EvidenceExport:
        """An expiring signed URL of one bundle of the packs created since ``since`` (all,
        without it) in the organization, or in its ``repository``."""
        params: dict[str, Any] = {
            "since": since.isoformat() if isinstance(since, datetime) else since,
            "repository": repository,
        }
        data = await self._client.request_json("POST", self._path, params=params)
        return structure(self._client.converter, data, EvidenceExport)

    async def download(
        self,
        path: str | os.PathLike[str],
        *,
        since: datetime | str | None = None,
        repository: str | None = None,
    ) -> Path:
        """Export (as :meth:`export`) and download the bundle to ``path``; returns the path."""
        export = await self.export(since=since, repository=repository)
        return await _download(self._client, export, path)
