"""Who the MCP server acts as: an agent's API key, read again on every tool call.

The key and the endpoint resolve as the SDK's do (:mod:`lamina._config`): ``LAMINA_API_KEY``
and ``LAMINA_ENDPOINT_URL``, then ``~/.lamina/config.toml``, then the local default endpoint.
Only an agent key is accepted (``tak-``, the prefix the reference server issues to agents, or
``cak-``, cerebral's); a user key (``tuk-``) or a role key (``trk-``) is refused before any
request, so that an agent never acts with a human's rights. ``TILDE_API_KEY`` and
``CEREBRAL_API_KEY`` are not read: a key issued for another service is never sent to Lamina's
endpoint.

:class:`Clients` keeps one :class:`~lamina.AsyncClient` (one connection pool) while the key
and endpoint stay the same, and replaces it when either changes.
"""

from __future__ import annotations

import os
from typing import Any

from attrs import frozen
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from lamina._async._client import AsyncClient
from lamina._config import API_KEY_ENV, resolve_config
from lamina._errors import ConfigurationError

#: The prefixes of agent keys: Lamina's and Tilde's (``tak-``), and cerebral's (``cak-``).
AGENT_KEY_PREFIXES = ("tak-", "cak-")
#: What other keys are, for the refusal's message.
OTHER_KEY_KINDS = {"tuk-": "a user key", "trk-": "a role key"}
#: Variables of other services' SDKs, named in the error when they are set instead.
FOREIGN_KEY_ENVS = ("CEREBRAL_API_KEY", "TILDE_API_KEY")


@frozen
class AgentSettings:
    """The agent key and the endpoint a tool call uses."""

    api_key: str
    endpoint_url: str


def agent_settings() -> AgentSettings:
    """The current key and endpoint; :class:`ToolError` when the key is missing or is not an
    agent's."""
    try:
        config = resolve_config()
    except ConfigurationError as exc:
        raise ToolError(str(exc)) from None
    key = config.api_key
    if not key:
        foreign = [name for name in FOREIGN_KEY_ENVS if os.environ.get(name)]
        hint = (
            f" ({', '.join(foreign)} is not read: copy the key to {API_KEY_ENV})" if foreign else ""
        )
        raise ToolError(f"{API_KEY_ENV} is not set: set it to an agent's API key (tak-...){hint}")
    if not key.startswith(AGENT_KEY_PREFIXES):
        kind = next(
            (kind for prefix, kind in OTHER_KEY_KINDS.items() if key.startswith(prefix)),
            "not an agent key",
        )
        raise ToolError(
            f"{API_KEY_ENV} must be an agent key (prefix 'tak-'); this key is {kind}. "
            "Create an agent and a key for it (lamina agent / the SDK's org.agents) and use "
            "that key: the MCP server acts for agents only"
        )
    return AgentSettings(api_key=key, endpoint_url=config.endpoint_url)


class Clients:
    """The SDK client for the current settings, made again when they change."""

    def __init__(self) -> None:
        self._client: AsyncClient | None = None
        self._settings: AgentSettings | None = None

    async def current(self) -> AsyncClient:
        """The client for the key and endpoint as they are now (read at each call)."""
        settings = agent_settings()
        if self._client is None or settings != self._settings:
            previous = self._client
            self._client = AsyncClient(api_key=settings.api_key, endpoint_url=settings.endpoint_url)
            self._settings = settings
            if previous is not None:
                await previous.aclose()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._settings = None


async def lamina_client(ctx: Context[Clients, Any]) -> AsyncClient:
    """The SDK client of a tool call (the server's :class:`Clients`, from its lifespan)."""
    return await ctx.request_context.lifespan_context.current()
