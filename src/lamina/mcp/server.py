"""The MCP server: its tools, registered on the official SDK's ``MCPServer``.

Ten tools have the names, parameters and result shapes of cerebral's MCP server
(``list_repositories`` ... ``close_session``); ``run_command``, ``diff``, ``log`` and
``explain_permission`` are Lamina's. Every tool reads the agent key again when it is called
(:mod:`lamina.mcp.credentials`) and turns SDK errors into tool errors (:mod:`lamina.mcp.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from lamina._version import __version__
from lamina.mcp.commands import run_command
from lamina.mcp.credentials import Clients
from lamina.mcp.history import diff, log
from lamina.mcp.objects import delete_object, get_object, head_object, list_objects, put_object
from lamina.mcp.permissions import explain_permission
from lamina.mcp.repositories import create_repository, list_repositories
from lamina.mcp.sessions import close_session, commit_session, create_session

NAME = "Lamina"

INSTRUCTIONS = """\
Lamina is versioned object storage with transactional sessions and sandboxed compute.
Repositories are named 'org/repo'. To change objects: create_session, then put_object /
delete_object, then commit_session (or close_session to discard). A commit may need a human's
approval: commit_session then answers status 'approval_required' with the web_url to share.
run_command runs a shell command with the repository at /sandbox and commits what it writes
there when it exits 0. log and diff read the history; explain_permission says whether this
agent may perform an action."""

#: Every tool, in the order they are listed.
TOOLS: tuple[Callable[..., Awaitable[Any]], ...] = (
    list_repositories,
    create_repository,
    create_session,
    list_objects,
    head_object,
    get_object,
    put_object,
    delete_object,
    commit_session,
    close_session,
    run_command,
    diff,
    log,
    explain_permission,
)


@asynccontextmanager
async def lifespan(server: MCPServer[Clients]) -> AsyncIterator[Clients]:
    """One :class:`Clients` for the server's life; its connection pool is closed at the end."""
    clients = Clients()
    try:
        yield clients
    finally:
        await clients.aclose()


def build_server() -> MCPServer[Clients]:
    """A new MCP server with every tool registered."""
    server: MCPServer[Clients] = MCPServer(
        NAME, instructions=INSTRUCTIONS, version=__version__, lifespan=lifespan
    )
    for tool in TOOLS:
        server.add_tool(tool)
    return server
