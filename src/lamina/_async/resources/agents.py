"""Agents: automated principals with ``tak-`` API keys, metadata, secrets and an inline policy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import organization_path, segment
from lamina._async.resources.api_keys import AsyncAPIKeys
from lamina._async.resources.secrets import AsyncSecrets
from lamina._converter import structure
from lamina.models.agents import AgentData

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncAgent:
    """An agent of an organization."""

    def __init__(self, client: AsyncClient, org: str, data: AgentData) -> None:
        self._client = client
        self._org = org
        self._data = data
        self._path = f"{organization_path(org)}/agents/{segment(data.name)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data.name!r})"

    @property
    def data(self) -> AgentData:
        """The record as last loaded or updated."""
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
    def metadata(self) -> dict[str, str]:
        return dict(self._data.metadata)

    @property
    def inline_policy(self) -> str:
        """The agent's own policy text (``""``: none)."""
        return self._data.inline_policy

    @property
    def created_at(self) -> datetime | None:
        return self._data.created_at

    @property
    def last_used_at(self) -> datetime | None:
        return self._data.last_used_at

    @property
    def api_keys(self) -> AsyncAPIKeys:
        """The agent's API keys (``tak-``)."""
        return AsyncAPIKeys(self._client, f"{self._path}/auth/keys")

    @property
    def secrets(self) -> AsyncSecrets:
        """The agent's secrets."""
        return AsyncSecrets(self._client, f"{self._path}/secrets")

    async def refresh(self) -> AsyncAgent:
        """Load the record again; returns the agent."""
        data = await self._client.request_json("GET", self._path)
        self._data = structure(self._client.converter, data, AgentData)
        return self

    async def update(
        self,
        *,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        inline_policy: str | None = None,
    ) -> AsyncAgent:
        """Change the given fields (the others stay); ``inline_policy=""`` removes the inline
        policy. Returns the agent, updated."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if inline_policy is not None:
            body["inline_policy"] = inline_policy
        data = await self._client.request_json("PUT", self._path, json=body)
        self._data = structure(self._client.converter, data, AgentData)
        return self

    async def delete(self) -> None:
        """Delete the agent and revoke all its keys."""
        await self._client.request("DELETE", self._path)


class AsyncAgents:
    """The agents of an organization."""

    def __init__(self, client: AsyncClient, org: str) -> None:
        self._client = client
        self._org = org
        self._path = f"{organization_path(org)}/agents"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(org={self._org!r})"

    def list(
        self, *, after: str | None = None, amount: int | None = None, page_size: int = 100
    ) -> AsyncPager[AsyncAgent]:
        """The organization's agents (``amount`` caps the total)."""
        return self._client.paginate(
            self._path, AgentData, amount=amount, page_size=page_size, after=after
        ).map(lambda data: AsyncAgent(self._client, self._org, data))

    async def get(self, name: str) -> AsyncAgent:
        """The agent ``name``."""
        data = await self._client.request_json("GET", f"{self._path}/{segment(name)}")
        return AsyncAgent(
            self._client, self._org, structure(self._client.converter, data, AgentData)
        )

    async def create(
        self,
        name: str,
        *,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
        inline_policy: str | None = None,
    ) -> AsyncAgent:
        """Create an agent; ``inline_policy`` is policy text the server validates."""
        body: dict[str, Any] = {"name": name, "description": description}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if inline_policy is not None:
            body["inline_policy"] = inline_policy
        data = await self._client.request_json("POST", self._path, json=body)
        return AsyncAgent(
            self._client, self._org, structure(self._client.converter, data, AgentData)
        )

    async def delete(self, name: str) -> None:
        """Delete the agent ``name`` and revoke all its keys."""
        await self._client.request("DELETE", f"{self._path}/{segment(name)}")
