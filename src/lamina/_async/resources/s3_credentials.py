"""The caller's S3 credentials (``client.auth.s3_credentials``): access key pairs that sign
requests to the server's S3-compatible gateway (``<endpoint>/s3``) as the caller, with the
caller's rights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import segment
from lamina._converter import structure
from lamina._types import Page
from lamina.models.s3_credentials import (
    S3CredentialCreated,
    S3CredentialData,
    S3CredentialList,
)

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient

_PATH = "/auth/s3-credentials"


class AsyncS3Credentials:
    """The calling principal's S3 credentials (a user's, an agent's or a role's)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    async def create(self) -> S3CredentialCreated:
        """A new credential acting as the caller; its ``secret_access_key`` is shown only
        here."""
        data = await self._client.request_json("POST", _PATH)
        return structure(self._client.converter, data, S3CredentialCreated)

    def list(self, *, amount: int | None = None) -> AsyncPager[S3CredentialData]:
        """Every credential of the caller, revoked ones included, oldest first (never a
        secret)."""

        async def fetch_page(cursor: str | None, size: int) -> Page[S3CredentialData]:
            data = await self._client.request_json("GET", _PATH)
            found = structure(self._client.converter, data, S3CredentialList)
            return Page(items=found.results, has_more=False)

        return AsyncPager(fetch_page, amount=amount)

    async def revoke(self, access_key_id: str) -> None:
        """Revoke the credential: the gateway refuses it from the next request on
        (``NotFoundError`` when the caller has none by that id)."""
        await self._client.request("DELETE", f"{_PATH}/{segment(access_key_id)}")
