"""API keys of a user (``client.auth.keys``), a role (``role.api_keys``) or an agent
(``agent.api_keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import segment
from lamina._converter import structure
from lamina._types import Page
from lamina.models.api_keys import APIKeyCreated, APIKeyData, APIKeyList

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncAPIKey:
    """An API key. ``token`` is the full key only on the key ``create()`` returned (the one
    time the server shows it); everywhere else it is ``None`` and ``token_hint`` identifies
    the key."""

    def __init__(
        self, client: AsyncClient, base_path: str, data: APIKeyData, token: str | None = None
    ) -> None:
        self._client = client
        self._base_path = base_path
        self._data = data
        self.token = token

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._data.name!r}, id={self._data.id!r})"

    @property
    def data(self) -> APIKeyData:
        return self._data

    @property
    def id(self) -> str:
        return self._data.id

    @property
    def name(self) -> str:
        return self._data.name

    @property
    def description(self) -> str:
        return self._data.description

    @property
    def token_hint(self) -> str:
        return self._data.token_hint

    @property
    def created_at(self) -> datetime | None:
        return self._data.created_at

    @property
    def last_used_at(self) -> datetime | None:
        return self._data.last_used_at

    @property
    def revoked_at(self) -> datetime | None:
        return self._data.revoked_at

    async def revoke(self) -> None:
        """Revoke the key: it authenticates nothing from now on."""
        await self._client.request("DELETE", f"{self._base_path}/{segment(self.id)}")

    async def delete(self) -> None:
        """:meth:`revoke` (tilde-sdk's name for it)."""
        await self.revoke()


class AsyncAPIKeys:
    """The API keys of one principal."""

    def __init__(self, client: AsyncClient, base_path: str) -> None:
        self._client = client
        self._base_path = base_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._base_path!r})"

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncAPIKey]:
        """Every key, revoked ones included (``amount`` caps the total). A server that answers
        without ``pagination`` gives all keys in one page."""

        async def fetch_page(cursor: str | None, size: int) -> Page[AsyncAPIKey]:
            data = await self._client.request_json(
                "GET", self._base_path, params={"amount": size, "after": cursor}
            )
            found = structure(self._client.converter, data, APIKeyList)
            items = [AsyncAPIKey(self._client, self._base_path, key) for key in found.results]
            pagination = found.pagination
            if pagination is None or not pagination.has_more:
                return Page(items=items, has_more=False)
            return Page(items=items, has_more=True, next_offset=pagination.next_offset or None)

        return AsyncPager(fetch_page, amount=amount, page_size=page_size, after=after)

    async def get(self, key_id: str) -> AsyncAPIKey:
        """The key ``key_id`` (without its token)."""
        data = await self._client.request_json("GET", f"{self._base_path}/{segment(key_id)}")
        key = structure(self._client.converter, data, APIKeyData)
        return AsyncAPIKey(self._client, self._base_path, key)

    async def create(self, name: str, *, description: str | None = None) -> AsyncAPIKey:
        """Issue a key; the returned key's ``token`` is the only copy of the secret."""
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        data = await self._client.request_json("POST", self._base_path, json=body)
        created = structure(self._client.converter, data, APIKeyCreated)
        key = APIKeyData(id=created.id, name=created.name, description=created.description)
        return AsyncAPIKey(self._client, self._base_path, key, token=created.token)

    async def revoke(self, key_id: str) -> None:
        """Revoke the key ``key_id``."""
        await self._client.request("DELETE", f"{self._base_path}/{segment(key_id)}")

    async def delete(self, key_id: str) -> None:
        """:meth:`revoke` (tilde-sdk's name for it)."""
        await self.revoke(key_id)
