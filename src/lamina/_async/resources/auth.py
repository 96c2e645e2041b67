"""The caller's own account: who it is (``me()``), its API keys (``keys``) and its S3
credentials (``s3_credentials``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamina._async.resources.api_keys import AsyncAPIKeys
from lamina._async.resources.s3_credentials import AsyncS3Credentials
from lamina._converter import structure
from lamina.models.policies import Explanation
from lamina.models.users import CurrentUser

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncAuth:
    """``client.auth``: the calling user's account."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def keys(self) -> AsyncAPIKeys:
        """The calling user's API keys (``tuk-``)."""
        return AsyncAPIKeys(self._client, "/auth/keys")

    @property
    def s3_credentials(self) -> AsyncS3Credentials:
        """The caller's S3 credentials, for the server's S3-compatible gateway."""
        return AsyncS3Credentials(self._client)

    async def me(self) -> CurrentUser:
        """The calling user and the organizations they belong to (``GET /auth/me``)."""
        data = await self._client.request_json("GET", "/auth/me")
        return structure(self._client.converter, data, CurrentUser)

    async def permission(self, action: str, resource: str) -> Explanation:
        """Whether the caller may perform ``action`` (``"PutObject"``) on ``resource``
        (``"org"``, ``"org/repo"`` or ``"org/repo/path"``), answered by the server's own
        authorizer without trying it (``GET /auth/permission``, a Lamina extension). Every
        policy counts, Rego ones included, and no right to read policies is needed; the
        answer names no policy line (``reason`` says what decided):
        :meth:`~lamina.AsyncClient.explain` does."""
        data = await self._client.request_json(
            "GET", "/auth/permission", params={"action": action, "resource": resource}
        )
        return structure(self._client.converter, data, Explanation)
