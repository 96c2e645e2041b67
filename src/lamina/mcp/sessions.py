"""Tools on sessions: ``create_session``, ``commit_session`` (through approval when the
repository asks for it) and ``close_session``."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from lamina._errors import APIError
from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import tool_errors
from lamina.mcp.params import Repository, SessionId

#: The server's error codes for a session that is no longer open (or never was).
SESSION_GONE = ("session_not_found", "session_closed")


@tool_errors
async def create_session(repository: Repository, ctx: Context[Clients, Any]) -> dict[str, str]:
    """Open a session on a repository: a transaction of object writes that ends with
    ``commit_session`` or ``close_session``. Returns ``session_id`` and ``repository``."""
    client = await lamina_client(ctx)
    session = await client.repository(repository).session()
    return {"session_id": session.session_id, "repository": repository}


@tool_errors
async def commit_session(
    repository: Repository,
    session_id: SessionId,
    message: Annotated[str, Field(description="Commit message")],
    ctx: Context[Clients, Any],
    metadata: Annotated[
        dict[str, str] | None, Field(description="Key-value metadata to attach to the commit")
    ] = None,
) -> dict[str, Any]:
    """Commit a session's changes. Returns ``status``: ``"committed"`` with the new
    ``commit_id``, or ``"approval_required"`` when the repository holds this commit for a
    human's approval: nothing has landed yet, and ``web_url`` is the page where it is approved
    (``api_url`` the approval's API route). Never waits for the approval. Conflicting changes
    (the same paths changed since the session began) fail and nothing lands."""
    client = await lamina_client(ctx)
    session = client.repository(repository).attach(session_id)
    result = await session.commit_result(message, metadata)
    return {
        "status": result.status,
        "commit_id": result.commit_id,
        "web_url": result.web_url,
        "api_url": result.api_url,
        "session_id": session_id,
    }


@tool_errors
async def close_session(
    repository: Repository, session_id: SessionId, ctx: Context[Clients, Any]
) -> dict[str, str]:
    """Roll a session back (discard its changes) and close it. Returns ``status``
    (``"rolled_back"``, or ``"already_closed"`` when the session was already committed,
    rolled back, or is unknown) and ``session_id``."""
    client = await lamina_client(ctx)
    session = client.repository(repository).attach(session_id)
    try:
        await session.rollback()
    except APIError as exc:
        if exc.status_code == 409 or exc.code in SESSION_GONE:
            return {"status": "already_closed", "session_id": session_id}
        raise
    return {"status": "rolled_back", "session_id": session_id}
