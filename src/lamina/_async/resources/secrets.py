"""Secrets of a repository (``repo.secrets``) or an agent (``agent.secrets``).

A listing never carries values: a secret from ``list()`` loads its value with one ``GET`` the
first time it is needed (the blocking client on first access of ``value``; the async client
when the secret is awaited or refreshed).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lamina._async._pager import AsyncPager
from lamina._async.resources._paths import segment
from lamina._converter import structure
from lamina._deferred import AsyncDeferred
from lamina._types import Page
from lamina.models.organizations import ResultList
from lamina.models.secrets import SecretData, SecretValue

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient


class AsyncSecret(AsyncDeferred):
    """A secret: its ``key``, who set it and when (from a listing), and its ``value``."""

    def __init__(
        self,
        client: AsyncClient,
        base_path: str,
        key: str,
        *,
        data: SecretData | None = None,
        value: str | None = None,
    ) -> None:
        self._client = client
        self._path = f"{base_path}/{segment(key)}"
        self._key = key
        self._data = data if data is not None else SecretData(key=key)
        self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._key!r})"

    @property
    def key(self) -> str:
        return self._key

    @property
    def name(self) -> str:
        """The key (tilde-sdk's name for it)."""
        return self._key

    @property
    def data(self) -> SecretData:
        """Who set the secret and when, as listed (only ``key`` for one not from a listing)."""
        return self._data

    @property
    def created_at(self) -> datetime | None:
        return self._data.created_at

    @property
    def updated_at(self) -> datetime | None:
        return self._data.updated_at

    def _is_ready(self) -> bool:
        return self._value is not None

    async def _prepare(self) -> None:
        if self._value is None:
            await self.refresh()

    async def refresh(self) -> AsyncSecret:
        """Load the value again (``GET .../secrets/{key}``); returns the secret."""
        data = await self._client.request_json("GET", self._path)
        self._value = structure(self._client.converter, data, SecretValue).value
        return self

    @property
    def value(self) -> str:
        """The decrypted value."""
        self._require()
        assert self._value is not None
        return self._value

    async def delete(self) -> None:
        """Delete the secret."""
        await self._client.request("DELETE", self._path)


class AsyncSecrets:
    """The secrets of a repository or an agent."""

    def __init__(self, client: AsyncClient, base_path: str) -> None:
        self._client = client
        self._base_path = base_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._base_path!r})"

    def list(self, *, amount: int | None = None) -> AsyncPager[AsyncSecret]:
        """Every secret, without values (one request; ``amount`` caps the total)."""

        async def fetch_page(after: str | None, page_size: int) -> Page[AsyncSecret]:
            data = await self._client.request_json("GET", self._base_path)
            found = structure(self._client.converter, data, ResultList[SecretData])
            items = [
                AsyncSecret(self._client, self._base_path, item.key, data=item)
                for item in found.results
            ]
            return Page(items=items, has_more=False)

        return AsyncPager(fetch_page, amount=amount)

    async def get(self, key: str) -> AsyncSecret:
        """The secret ``key``, with its value (:class:`~lamina.NotFoundError` if unset)."""
        return await AsyncSecret(self._client, self._base_path, key).refresh()

    async def create(self, key: str, value: str) -> AsyncSecret:
        """Set the secret ``key`` to ``value`` (creating it or replacing its value; ``PUT``).
        Keys match ``^[A-Za-z_][A-Za-z0-9_-]{0,255}$``; the request body is at most 64 KiB."""
        secret = AsyncSecret(self._client, self._base_path, key, value=value)
        await self._client.request("PUT", secret._path, json={"value": value})
        return secret

    async def delete(self, key: str) -> None:
        """Delete the secret ``key``."""
        await AsyncSecret(self._client, self._base_path, key).delete()
