"""Organizations: their members, repositories, groups, policies, roles and agents."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import organization_path, segment
from lamina._async.resources.abps import AsyncAbps
from lamina._async.resources.agents import AsyncAgents
from lamina._async.resources.audit_log import AsyncAuditLog
from lamina._async.resources.connectors import AsyncConnectors
from lamina._async.resources.evidence import AsyncOrganizationEvidence
from lamina._async.resources.groups import AsyncGroups
from lamina._async.resources.policies import AsyncPolicies
from lamina._async.resources.repositories import AsyncRepositories
from lamina._async.resources.roles import AsyncRoles
from lamina._async.resources.runs import AsyncRuns
from lamina._async.resources.usage import AsyncUsage
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina._errors import NotFoundError
from lamina._types import Page
from lamina.models.organizations import Membership, OrganizationData, ResultList

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncOrganization(AsyncDeferred):
    """An organization. A handle made from a name loads its details on first use.

    ``members``, ``repositories``, ``groups``, ``policies``, ``roles`` and ``agents`` are its
    collections, ``audit_log`` its audit log, ``abps`` and ``runs`` its governed runs,
    ``usage`` its usage (no request until used).
    """

    def __init__(
        self, client: AsyncClient, name: str, data: OrganizationData | None = None
    ) -> None:
        self._client = client
        self._name = name
        self._data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    def _is_ready(self) -> bool:
        return self._data is not None

    async def _prepare(self) -> None:
        if self._data is None:
            await self.refresh()

    async def refresh(self) -> AsyncOrganization:
        """Load the organization's details again (``GET /organizations/{name}``)."""
        data = await self._client.request_json("GET", organization_path(self._name))
        self._data = structure(self._client.converter, data, OrganizationData)
        return self

    @property
    def data(self) -> OrganizationData:
        """All loaded fields at once."""
        self._require()
        assert self._data is not None
        return self._data

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def display_name(self) -> str:
        return self.data.display_name

    @property
    def created_at(self) -> datetime | None:
        return self.data.created_at

    @property
    def members(self) -> AsyncMembers:
        return AsyncMembers(self._client, self._name)

    @property
    def repositories(self) -> AsyncRepositories:
        return AsyncRepositories(self._client, self._name)

    @property
    def groups(self) -> AsyncGroups:
        return AsyncGroups(self._client, self._name)

    @property
    def policies(self) -> AsyncPolicies:
        return AsyncPolicies(self._client, self._name)

    @property
    def roles(self) -> AsyncRoles:
        return AsyncRoles(self._client, self._name)

    @property
    def connectors(self) -> AsyncConnectors:
        """The organization's connectors (external sources to import from)."""
        return AsyncConnectors(self._client, organization_path(self._name))

    @property
    def evidence(self) -> AsyncOrganizationEvidence:
        """Exports of the organization's evidence packs."""
        return AsyncOrganizationEvidence(self._client, organization_path(self._name))

    @property
    def agents(self) -> AsyncAgents:
        return AsyncAgents(self._client, self._name)

    @property
    def audit_log(self) -> AsyncAuditLog:
        """The organization's audit log: ``list()`` with filters."""
        return AsyncAuditLog(self._client, organization_path(self._name))

    @property
    def abps(self) -> AsyncAbps:
        """Its ABPs: run definitions invoked as governed runs."""
        return AsyncAbps(self._client, self._name)

    @property
    def runs(self) -> AsyncRuns:
        """Its governed runs (the invocations of its ABPs) and their evidence."""
        return AsyncRuns(self._client, self._name)

    @property
    def usage(self) -> AsyncUsage:
        """Its usage: ``summary()`` and ``evidence_packs()``."""
        return AsyncUsage(self._client, organization_path(self._name))

    async def delete(self) -> None:
        """Delete the organization."""
        await self._client.request("DELETE", organization_path(self._name))


class AsyncOrganizations:
    """The organizations the caller belongs to."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def list(self, *, amount: int | None = None) -> AsyncPager[AsyncOrganization]:
        """Every organization of the caller (one request; ``amount`` caps the total)."""

        async def fetch_page(after: str | None, page_size: int) -> Page[AsyncOrganization]:
            data = await self._client.request_json("GET", "/organizations")
            found = structure(self._client.converter, data, ResultList[OrganizationData])
            return Page(
                items=[AsyncOrganization(self._client, item.name, item) for item in found.results],
                has_more=False,
            )

        return AsyncPager(fetch_page, amount=amount)

    async def get(self, name: str) -> AsyncOrganization:
        """The organization called ``name`` (loaded; ``NotFoundError`` if there is none)."""
        return await AsyncOrganization(self._client, name).refresh()

    async def create(self, name: str, display_name: str | None = None) -> AsyncOrganization:
        """Create an organization; ``name`` is its slug (``^[a-z0-9][a-z0-9-]{1,62}$``)."""
        data = await self._client.request_json(
            "POST",
            "/organizations",
            json={"name": name, "display_name": display_name if display_name is not None else name},
        )
        created = structure(self._client.converter, data, OrganizationData)
        return AsyncOrganization(self._client, created.name, created)

    async def delete(self, name: str) -> None:
        """Delete the organization ``name``."""
        await AsyncOrganization(self._client, name).delete()


class AsyncMembers:
    """The members of an organization."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def list(self, *, amount: int | None = None) -> AsyncPager[Membership]:
        """Every member (one request; ``amount`` caps the total)."""

        async def fetch_page(after: str | None, page_size: int) -> Page[Membership]:
            data = await self._client.request_json("GET", f"{organization_path(self._org)}/members")
            found = structure(self._client.converter, data, ResultList[Membership])
            return Page(items=found.results, has_more=False)

        return AsyncPager(fetch_page, amount=amount)

    async def get(self, user_id: str) -> Membership:
        """The member whose user id or username is ``user_id`` (the API has no per-member
        route: this reads the list); :class:`~lamina.NotFoundError` if there is none."""
        async for member in self.list():
            if user_id in (member.user_id, member.username):
                return member
        raise NotFoundError(
            404,
            message=f"{user_id!r} is not a member of organization {self._org!r}",
            code="member_not_found",
        )

    async def create(self, username: str) -> Membership:
        """Add the user ``username`` to the organization; returns the membership."""
        await self._client.request(
            "POST", f"{organization_path(self._org)}/members", json={"username": username}
        )
        return await self.get(username)

    async def delete(self, user_id: str) -> None:
        """Remove the member ``user_id`` from the organization."""
        await self._client.request(
            "DELETE", f"{organization_path(self._org)}/members/{segment(user_id)}"
        )
