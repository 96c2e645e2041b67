"""The server's capabilities document, asked once per client (lazily) and kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamina._converter import structure
from lamina._errors import APIError
from lamina.models.capabilities import Capabilities

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient

#: What a server that answers no capabilities document offers: the contract only.
CONTRACT_ONLY = Capabilities()


async def capabilities(client: AsyncClient) -> Capabilities:
    """The extensions the client may use: none when it was made with
    ``upload_extensions=False``; else the server's document, asked on first use (one request
    however many ask at once), and none when the server has no such route (404, 405)."""
    if not client.upload_extensions:
        return CONTRACT_ONLY
    known = client._capabilities
    if known is not None:
        return known
    async with client._capabilities_lock:
        if client._capabilities is None:
            try:
                data = await client.request_json("GET", "/capabilities", authenticated=False)
            except APIError as exc:
                if exc.status_code not in (404, 405):
                    raise
                client._capabilities = CONTRACT_ONLY
            else:
                client._capabilities = structure(client.converter, data, Capabilities)
        return client._capabilities


def forget(client: AsyncClient) -> None:
    """The server refused an extension it advertised (it restarted without it, say): the
    client uses the contract from then on."""
    client._capabilities = CONTRACT_ONLY
