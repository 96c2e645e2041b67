"""Tools on an organization's repositories: ``list_repositories``, ``create_repository``."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import tool_errors
from lamina.mcp.params import Organization
from lamina.mcp.shapes import repository_json

VISIBILITIES = ("private", "public")


@tool_errors
async def list_repositories(
    organization: Organization, ctx: Context[Clients, Any]
) -> list[dict[str, Any]]:
    """List the repositories of an organization (every page). Each entry has ``id``,
    ``name``, ``description``, ``visibility`` and ``created_at`` (ISO 8601 or null)."""
    client = await lamina_client(ctx)
    org = client.organization(organization)
    return [repository_json(repo) async for repo in org.repositories.list()]


@tool_errors
async def create_repository(
    organization: Organization,
    name: str,
    ctx: Context[Clients, Any],
    description: str = "",
    visibility: str = "private",
) -> dict[str, Any]:
    """Create a repository (with its first, empty commit) in an organization.
    ``visibility`` is ``"private"`` (the default) or ``"public"``. Returns ``id``, ``name``,
    ``description``, ``visibility`` and ``created_at``."""
    if visibility not in VISIBILITIES:
        raise ToolError("visibility must be 'private' or 'public'")
    client = await lamina_client(ctx)
    repo = await client.organization(organization).repositories.create(
        name, description=description, visibility=visibility
    )
    return repository_json(repo)
