"""Connectors: an organization's external sources (``org.connectors``), and the ones attached
to a repository (``repo.connectors``). Credentials go in, never come back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import segment
from lamina._types import Page
from lamina.models.imports import ConnectionTest, ConnectorData
from lamina.models.organizations import ResultList

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncConnector:
    """One connector: its fields (``id``, ``name``, ``type``, ``source_uri``, ``disabled``)
    and what can be done with it."""

    def __init__(self, client: AsyncClient, base_path: str, data: ConnectorData) -> None:
        self._client = client
        self._path = f"{base_path}/{segment(data.id)}"
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data.name!r}, type={self.data.type!r})"

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def type(self) -> str:
        return self.data.type

    @property
    def source_uri(self) -> str:
        return self.data.source_uri

    @property
    def disabled(self) -> bool:
        return self.data.disabled

    @property
    def public_key(self) -> str | None:
        return self.data.public_key

    @property
    def created_at(self) -> datetime | None:
        return self.data.created_at

    async def refresh(self) -> AsyncConnector:
        """Read the connector again (:class:`~lamina.GoneError` once deleted)."""
        self.data = self._client.structure(
            await self._client.request_json("GET", self._path), ConnectorData
        )
        return self

    async def test(self) -> ConnectionTest:
        """A real connection check by the server: its status ``"ok"``, or
        :class:`~lamina.ServerError` (502) naming the cause; :class:`~lamina.LockedError` when
        disabled."""
        data = await self._client.request_json("POST", f"{self._path}/test")
        return self._client.structure(data, ConnectionTest)

    async def disable(self) -> AsyncConnector:
        """Disable it: every use answers :class:`~lamina.LockedError` (423) until enabled."""
        return await self._set_disabled(True)

    async def enable(self) -> AsyncConnector:
        return await self._set_disabled(False)

    async def _set_disabled(self, disabled: bool) -> AsyncConnector:
        data = await self._client.request_json("PATCH", self._path, json={"disabled": disabled})
        self.data = self._client.structure(data, ConnectorData)
        return self

    async def delete(self) -> None:
        """Delete it (soft: later use answers :class:`~lamina.GoneError`, 410)."""
        await self._client.request("DELETE", self._path)


def _listing(
    client: AsyncClient, path: str, connectors_path: str, amount: int | None
) -> AsyncPager[AsyncConnector]:
    async def fetch_page(after: str | None, page_size: int) -> Page[AsyncConnector]:
        found = client.structure(await client.request_json("GET", path), ResultList[ConnectorData])
        items = [AsyncConnector(client, connectors_path, item) for item in found.results]
        return Page(items=items, has_more=False)

    return AsyncPager(fetch_page, amount=amount)


def _config_body(
    type: str, source_uri: str | None, config: Mapping[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type, "config": dict(config or {})}
    if source_uri is not None:
        body["source_uri"] = source_uri
    return body


class AsyncConnectors:
    """An organization's connectors."""

    def __init__(self, client: AsyncClient, org_path: str) -> None:
        self._client = client
        self._path = f"{org_path}/connectors"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    async def create(
        self,
        name: str,
        type: str,
        source_uri: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> AsyncConnector:
        """Create a connector. ``type`` ``"s3"`` (other types are a
        :class:`~lamina.BadRequestError`); ``source_uri`` ``"s3://bucket/prefix/"`` (or
        ``bucket``/``prefix`` in ``config``); ``config``: ``endpoint``, ``region``,
        ``access_key_id``, ``secret_access_key``, ``session_token``."""
        body = {"name": name, **_config_body(type, source_uri, config)}
        data = await self._client.request_json("POST", self._path, json=body)
        return AsyncConnector(self._client, self._path, self._client.structure(data, ConnectorData))

    def list(self, *, amount: int | None = None) -> AsyncPager[AsyncConnector]:
        """Every connector of the organization (one request; ``amount`` caps the total)."""
        return _listing(self._client, self._path, self._path, amount)

    async def get(self, connector_id: str) -> AsyncConnector:
        return await AsyncConnector(self._client, self._path, ConnectorData(connector_id)).refresh()

    async def delete(self, connector_id: str) -> None:
        await AsyncConnector(self._client, self._path, ConnectorData(connector_id)).delete()

    async def test(
        self,
        connector_id: str | None = None,
        *,
        type: str = "s3",
        source_uri: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ConnectionTest:
        """A real connection check: of the connector ``connector_id``, or, without one, of a
        configuration before it is created. :class:`~lamina.ServerError` (502) names the
        cause of a failure."""
        if connector_id is not None:
            return await AsyncConnector(
                self._client, self._path, ConnectorData(connector_id)
            ).test()
        data = await self._client.request_json(
            "POST", f"{self._path}:test", json=_config_body(type, source_uri, config)
        )
        return self._client.structure(data, ConnectionTest)


class AsyncRepositoryConnectors:
    """The connectors attached to a repository (what its imports may read)."""

    def __init__(self, client: AsyncClient, repo_path: str, org_path: str) -> None:
        self._client = client
        self._path = f"{repo_path}/connectors"
        self._org_connectors = f"{org_path}/connectors"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._path!r})"

    async def attach(self, connector_id: str) -> AsyncConnector:
        data = await self._client.request_json(
            "POST", self._path, json={"connector_id": connector_id}
        )
        return AsyncConnector(
            self._client, self._org_connectors, self._client.structure(data, ConnectorData)
        )

    def list(self, *, amount: int | None = None) -> AsyncPager[AsyncConnector]:
        return _listing(self._client, self._path, self._org_connectors, amount)

    async def detach(self, connector_id: str) -> None:
        await self._client.request("DELETE", f"{self._path}/{segment(connector_id)}")
