"""Roles: principals for services, holding ``trk-`` API keys and the policies attached."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import organization_path, segment
from lamina._async.resources.api_keys import AsyncAPIKeys
from lamina._converter import structure
from lamina.models.roles import RoleData

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncRole:
    """A role of an organization (roles have no update; delete and create again)."""

    def __init__(self, client: AsyncClient, org: str, data: RoleData) -> None:
        self._client = client
        self._org = org
        self._data = data
        self._path = f"{organization_path(org)}/roles/{segment(data.name)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data.name!r})"

    @property
    def data(self) -> RoleData:
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
    def created_at(self) -> datetime | None:
        return self._data.created_at

    @property
    def last_used_at(self) -> datetime | None:
        return self._data.last_used_at

    @property
    def api_keys(self) -> AsyncAPIKeys:
        """The role's API keys (``trk-``)."""
        return AsyncAPIKeys(self._client, f"{self._path}/auth/keys")

    async def delete(self) -> None:
        """Delete the role (its keys stop working)."""
        await self._client.request("DELETE", self._path)


class AsyncRoles:
    """The roles of an organization."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org
        self._path = f"{organization_path(org)}/roles"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncRole]:
        """The organization's roles (``amount`` caps the total)."""
        return self._client.paginate(
            self._path, RoleData, amount=amount, page_size=page_size, after=after
        ).map(lambda data: AsyncRole(self._client, self._org, data))

    async def get(self, name: str) -> AsyncRole:
        """The role ``name``."""
        data = await self._client.request_json("GET", f"{self._path}/{segment(name)}")
        return AsyncRole(self._client, self._org, structure(self._client.converter, data, RoleData))

    async def create(self, name: str, *, description: str = "") -> AsyncRole:
        """Create a role; ``name`` is a slug."""
        data = await self._client.request_json(
            "POST", self._path, json={"name": name, "description": description}
        )
        return AsyncRole(self._client, self._org, structure(self._client.converter, data, RoleData))

    async def delete(self, name: str) -> None:
        """Delete the role ``name``."""
        await self._client.request("DELETE", f"{self._path}/{segment(name)}")
