"""Tools on a repository's history: ``log`` (commits, newest first) and ``diff`` (what
changed between two commits, or in an open session).

Commits are named by their ids; ``"HEAD"`` names the latest commit. Both tools return at most
``amount`` items and say with ``has_more`` whether more remain.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from lamina._async.resources.repositories import AsyncRepository
from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import tool_errors
from lamina.mcp.params import Amount, Prefix, Repository
from lamina.mcp.shapes import commit_json, listing_json
from lamina.models.objects import ListingEntry

HEAD = "HEAD"

Ref = Annotated[str, Field(description="A commit id, or 'HEAD' for the latest commit")]


async def resolve(repo: AsyncRepository, ref: str) -> str:
    """The commit id ``ref`` names (``HEAD``: the latest commit's)."""
    if ref != HEAD:
        return ref
    async for commit in repo.commits.list(amount=1):
        return commit.id
    raise ToolError(f"{repo.path} has no commits")


@tool_errors
async def log(
    repository: Repository,
    ctx: Context[Clients, Any],
    ref: Ref = HEAD,
    amount: Annotated[int, Field(description="Most commits to return", gt=0, le=1000)] = 20,
) -> dict[str, Any]:
    """The commit log from ``ref`` (default: HEAD), newest first, at most ``amount`` commits.
    Returns ``commits`` (each with ``id``, ``message``, ``committer``, ``committer_type``,
    ``creation_date``, ``parents`` and ``metadata``) and ``has_more``."""
    client = await lamina_client(ctx)
    repo = client.repository(repository)
    pager = repo.commits.list(ref=None if ref == HEAD else ref, amount=amount + 1)
    commits = [commit_json(commit) async for commit in pager]
    return {
        "repository": repository,
        "ref": ref,
        "commits": commits[:amount],
        "has_more": len(commits) > amount,
    }


@tool_errors
async def diff(
    repository: Repository,
    ctx: Context[Clients, Any],
    left: Annotated[
        str, Field(description="Commit id or 'HEAD' ('' : the first parent of right)")
    ] = "",
    right: Annotated[str, Field(description="Commit id or 'HEAD' (the default)")] = "",
    session_id: Annotated[
        str, Field(description="Instead of two commits: an open session's changes")
    ] = "",
    prefix: Prefix = "",
    amount: Amount = 100,
) -> dict[str, Any]:
    """What changed: between two commits (``left`` to ``right``; by default, what the latest
    commit changed), or, with ``session_id``, the changes staged in an open session against
    its base. Returns ``changes`` (each with ``path``, ``type``, ``status``: ``added``,
    ``modified`` or ``removed``, and for objects still present ``size``, ``content_type``...)
    and ``has_more``."""
    if session_id and (left or right):
        raise ToolError("give either session_id or left/right, not both")
    client = await lamina_client(ctx)
    repo = client.repository(repository)
    params: dict[str, Any] = {"prefix": prefix or None}
    described: dict[str, Any] = {"repository": repository}
    if session_id:
        params["session_id"] = session_id
        described["session_id"] = session_id
    else:
        right_id = await resolve(repo, right or HEAD)
        if left:
            left_id: str | None = await resolve(repo, left)
        else:
            parents = (await repo.commits.get(right_id)).parents
            left_id = parents[0] if parents else None
        params.update(left=left_id, right=right_id)
        described.update(left=left_id, right=right_id)
    pager = client.paginate(f"{repo.api_path}/diff", ListingEntry, params=params, amount=amount + 1)
    changes = [listing_json(item) async for item in pager]
    return {**described, "changes": changes[:amount], "has_more": len(changes) > amount}
