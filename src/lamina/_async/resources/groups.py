"""Groups: sets of users, groups, roles and agents that policies attach to."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import organization_path, segment
from lamina._converter import structure
from lamina._types import Page
from lamina.models.groups import EffectiveGroup, GroupData, GroupDetail, GroupMember
from lamina.models.organizations import ResultList
from lamina.models.policies import Attachment

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncGroupMembers:
    """The members of a group (read from the group itself: ``GET .../groups/{id}``)."""

    def __init__(self, client: AsyncClient, group_path: str) -> None:
        self._client = client
        self._group_path = group_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._group_path!r})"

    def list(self, *, amount: int | None = None) -> AsyncPager[GroupMember]:
        """Every member (one request; ``amount`` caps the total)."""

        async def fetch_page(after: str | None, page_size: int) -> Page[GroupMember]:
            data = await self._client.request_json("GET", self._group_path)
            detail = structure(self._client.converter, data, GroupDetail)
            return Page(items=detail.members, has_more=False)

        return AsyncPager(fetch_page, amount=amount)

    async def create(self, *, subject_type: str, subject_id: str) -> GroupMember:
        """Add a member: ``subject_type`` is ``"user"``, ``"group"``, ``"role"`` or ``"agent"``.
        Returns the member as the group lists it."""
        await self._client.request(
            "POST",
            f"{self._group_path}/members",
            json={"subject_type": subject_type, "subject_id": subject_id},
        )
        async for member in self.list():
            if member.subject_type == subject_type and member.subject_id == subject_id:
                return member
        return GroupMember(subject_type=subject_type, subject_id=subject_id)

    async def delete(self, *, subject_type: str, subject_id: str) -> None:
        """Remove a member."""
        await self._client.request(
            "DELETE",
            f"{self._group_path}/members",
            params={"subject_type": subject_type, "subject_id": subject_id},
        )


class AsyncGroup:
    """A group. One from ``get()`` carries the policies attached to it (``attachments``);
    one from ``list()`` or ``create()`` carries none until refreshed."""

    def __init__(
        self,
        client: AsyncClient,
        org: str,
        data: GroupData,
        attachments: builtins.list[Attachment] | None = None,
    ) -> None:
        self._client = client
        self._org = org
        self._data = data
        self._attachments = list(attachments or ())
        self._path = f"{organization_path(org)}/groups/{segment(data.id)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data.name!r})"

    @property
    def data(self) -> GroupData:
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
    def attachments(self) -> builtins.list[Attachment]:
        """The policies attached to the group, as last loaded."""
        return list(self._attachments)

    @property
    def members(self) -> AsyncGroupMembers:
        return AsyncGroupMembers(self._client, self._path)

    async def refresh(self) -> AsyncGroup:
        """Load the group and its attachments again; returns the group."""
        data = await self._client.request_json("GET", self._path)
        detail = structure(self._client.converter, data, GroupDetail)
        self._data, self._attachments = detail.group, detail.attachments
        return self

    async def update(
        self, *, name: str | None = None, description: str | None = None
    ) -> AsyncGroup:
        """Rename the group or change its description; returns the group, updated."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        data = await self._client.request_json("PUT", self._path, json=body)
        self._data = structure(self._client.converter, data, GroupData)
        return self

    async def delete(self) -> None:
        """Delete the group."""
        await self._client.request("DELETE", self._path)


class AsyncGroups:
    """The groups of an organization."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org
        self._path = f"{organization_path(org)}/groups"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncGroup]:
        """The organization's groups (``amount`` caps the total)."""
        return self._client.paginate(
            self._path, GroupData, amount=amount, page_size=page_size, after=after
        ).map(lambda data: AsyncGroup(self._client, self._org, data))

    async def get(self, group_id: str) -> AsyncGroup:
        """The group ``group_id``, with its attachments."""
        data = await self._client.request_json("GET", f"{self._path}/{segment(group_id)}")
        detail = structure(self._client.converter, data, GroupDetail)
        return AsyncGroup(self._client, self._org, detail.group, detail.attachments)

    async def create(self, name: str, *, description: str = "") -> AsyncGroup:
        """Create a group."""
        body: dict[str, Any] = {"name": name}
        if description:
            body["description"] = description
        data = await self._client.request_json("POST", self._path, json=body)
        return AsyncGroup(
            self._client, self._org, structure(self._client.converter, data, GroupData)
        )

    async def delete(self, group_id: str) -> None:
        """Delete the group ``group_id``."""
        await self._client.request("DELETE", f"{self._path}/{segment(group_id)}")

    async def effective(
        self, principal_type: str, principal_id: str
    ) -> builtins.list[EffectiveGroup]:
        """The groups the principal belongs to, directly or through other groups."""
        data = await self._client.request_json(
            "GET",
            f"{organization_path(self._org)}/effective-groups",
            params={"principal_type": principal_type, "principal_id": principal_id},
        )
        return structure(self._client.converter, data, ResultList[EffectiveGroup]).results
