"""Tools on objects in a session: list, head, get, put and delete.

Reads see the session's base commit plus its staged changes; writes are staged in it until
``commit_session``. ``get_object`` reads at most :data:`MAX_OBJECT_BYTES` (the whole object
goes into the tool result); larger objects are refused with their size, so that a model is
never handed megabytes it did not ask for.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from lamina.mcp.credentials import Clients, lamina_client
from lamina.mcp.errors import tool_errors
from lamina.mcp.params import Amount, ObjectPath, Prefix, Repository, SessionId
from lamina.mcp.shapes import listing_json

#: The largest object ``get_object`` returns (10 MiB).
MAX_OBJECT_BYTES = 10 * 1024 * 1024
ENCODINGS = ("utf-8", "base64")


@tool_errors
async def list_objects(
    repository: Repository,
    session_id: SessionId,
    ctx: Context[Clients, Any],
    prefix: Prefix = "",
    delimiter: Annotated[
        str, Field(description="Roll paths up into prefixes at this character ('' for none)")
    ] = "/",
    amount: Amount = 100,
) -> list[dict[str, Any]]:
    """List objects and prefixes as a session sees them, in path order, at most ``amount``.

    Each entry has ``path`` and ``type``. ``type="prefix"`` entries (directory-like
    groupings) have nothing else; ``type="object"`` entries add ``size`` (bytes),
    ``last_modified`` (ISO 8601), ``content_type``, ``metadata`` (user key-values) and
    ``source_metadata`` (where an imported object came from, or null)."""
    client = await lamina_client(ctx)
    objects = client.repository(repository).attach(session_id).objects
    pager = objects.list(prefix=prefix or None, delimiter=delimiter or None, amount=amount)
    return [listing_json(item) async for item in pager]


@tool_errors
async def head_object(
    repository: Repository, session_id: SessionId, path: ObjectPath, ctx: Context[Clients, Any]
) -> dict[str, Any]:
    """An object's ``content_type`` and ``size`` (bytes) without its content: check the size
    before ``get_object``."""
    client = await lamina_client(ctx)
    meta = await client.repository(repository).attach(session_id).objects.head(path)
    return {"path": path, "content_type": meta.content_type, "size": meta.content_length}


@tool_errors
async def get_object(
    repository: Repository, session_id: SessionId, path: ObjectPath, ctx: Context[Clients, Any]
) -> dict[str, str]:
    """Read an object's content (at most 10 MiB). Returns ``path``, ``encoding``
    (``"utf-8"`` for text, ``"base64"`` for other bytes), ``content_type`` and ``content``."""
    client = await lamina_client(ctx)
    objects = client.repository(repository).attach(session_id).objects
    async with objects.get(path) as reader:
        raw = await reader.read(MAX_OBJECT_BYTES + 1)
        content_type = reader.content_type
        size = reader.content_length
    if len(raw) > MAX_OBJECT_BYTES:
        shown = f"{size} bytes" if size is not None else "more than that"
        raise ToolError(
            f"{path} is too large to return ({shown}; get_object returns at most "
            f"{MAX_OBJECT_BYTES} bytes): read parts of it with run_command instead"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {
            "path": path,
            "encoding": "base64",
            "content_type": content_type or "application/octet-stream",
            "content": base64.b64encode(raw).decode("ascii"),
        }
    return {
        "path": path,
        "encoding": "utf-8",
        "content_type": content_type or "text/plain; charset=utf-8",
        "content": text,
    }


@tool_errors
async def put_object(
    repository: Repository,
    session_id: SessionId,
    path: ObjectPath,
    content: Annotated[str, Field(description="The content: text, or base64 (see encoding)")],
    ctx: Context[Clients, Any],
    encoding: Annotated[str, Field(description="'utf-8' (the default) or 'base64'")] = "utf-8",
) -> dict[str, str]:
    """Write an object into a session (staged until ``commit_session``). Returns ``path``
    and ``etag``."""
    if encoding not in ENCODINGS:
        raise ToolError("encoding must be 'utf-8' or 'base64'")
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise ToolError(f"content is not valid base64: {exc}") from None
    else:
        data = content.encode("utf-8")
    client = await lamina_client(ctx)
    result = await client.repository(repository).attach(session_id).objects.put(path, data)
    return {"path": result.path, "etag": result.etag}


@tool_errors
async def delete_object(
    repository: Repository, session_id: SessionId, path: ObjectPath, ctx: Context[Clients, Any]
) -> dict[str, str]:
    """Delete an object in a session (staged until ``commit_session``). Returns ``status``
    (``"deleted"``) and ``path``."""
    client = await lamina_client(ctx)
    await client.repository(repository).attach(session_id).objects.delete(path)
    return {"status": "deleted", "path": path}
