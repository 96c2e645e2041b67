"""A real MCP client session with ``python -m lamina.mcp`` (stdio) calls every data tool against
the session's real server, as an agent."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client

from lamina import AsyncClient
from lamina.testing import LocalServer
from tests.mcp.conftest import data, text

pytestmark = pytest.mark.anyio

#: cerebral's ten tools, then Lamina's own.
CEREBRAL_TOOLS = [
    "list_repositories",
    "create_repository",
    "create_session",
    "list_objects",
    "head_object",
    "get_object",
    "put_object",
    "delete_object",
    "commit_session",
    "close_session",
]
LAMINA_TOOLS = ["run_command", "diff", "log", "explain_permission"]


def schema_of(tools: Any, name: str) -> dict[str, Any]:
    tool = next(tool for tool in tools.tools if tool.name == name)
    return dict(tool.input_schema)


async def test_lists_every_tool_with_cerebrals_parameters(mcp_client: Client) -> None:
    tools = await mcp_client.list_tools()
    assert [tool.name for tool in tools.tools] == CEREBRAL_TOOLS + LAMINA_TOOLS
    expected = {
        "list_repositories": (["organization"], []),
        "create_repository": (["organization", "name"], ["description", "visibility"]),
        "create_session": (["repository"], []),
        "list_objects": (["repository", "session_id"], ["prefix", "delimiter", "amount"]),
        "head_object": (["repository", "session_id", "path"], []),
        "get_object": (["repository", "session_id", "path"], []),
        "put_object": (["repository", "session_id", "path", "content"], ["encoding"]),
        "delete_object": (["repository", "session_id", "path"], []),
        "commit_session": (["repository", "session_id", "message"], ["metadata"]),
        "close_session": (["repository", "session_id"], []),
        "run_command": (
            ["repository", "command"],
            ["image", "env", "cwd", "timeout", "commit", "max_output_bytes"],
        ),
        "diff": (["repository"], ["left", "right", "session_id", "prefix", "amount"]),
        "log": (["repository"], ["ref", "amount"]),
        "explain_permission": (["repository", "action"], ["path"]),
    }
    for name, (required, optional) in expected.items():
        schema = schema_of(tools, name)
        assert schema["required"] == required, name
        assert list(schema["properties"]) == required + optional, name
        assert "ctx" not in schema["properties"]
    defaults = schema_of(tools, "list_objects")["properties"]
    assert (defaults["prefix"]["default"], defaults["delimiter"]["default"]) == ("", "/")
    assert defaults["amount"]["default"] == 100
    assert schema_of(tools, "create_repository")["properties"]["visibility"]["default"] == (
        "private"
    )
    assert schema_of(tools, "put_object")["properties"]["encoding"]["default"] == "utf-8"


async def test_repositories(
    mcp_client: Client, local_server: LocalServer, unique_name: Callable[..., str]
) -> None:
    name = unique_name("mcp")
    created = data(
        await mcp_client.call_tool(
            "create_repository",
            {"organization": local_server.org, "name": name, "description": "by an agent"},
        )
    )
    assert set(created) == {"id", "name", "description", "visibility", "created_at"}
    assert (created["name"], created["description"], created["visibility"]) == (
        name,
        "by an agent",
        "private",
    )
    assert created["created_at"]
    listed = data(
        await mcp_client.call_tool("list_repositories", {"organization": local_server.org})
    )
    assert created in listed
    refused = await mcp_client.call_tool(
        "create_repository",
        {"organization": local_server.org, "name": unique_name("mcp"), "visibility": "secret"},
    )
    assert refused.is_error
    assert "visibility must be 'private' or 'public'" in text(refused)


async def test_session_objects_commit_log_and_diff(
    mcp_client: Client, repository: str, admin: AsyncClient
) -> None:
    async def call(name: str, **arguments: Any) -> Any:
        return data(await mcp_client.call_tool(name, {"repository": repository, **arguments}))

    session = await call("create_session")
    assert session["repository"] == repository
    sid = session["session_id"]
    put = await call("put_object", session_id=sid, path="docs/readme.md", content="héllo\n")
    assert put["path"] == "docs/readme.md"
    assert put["etag"]
    blob = bytes(range(256))
    await call(
        "put_object",
        session_id=sid,
        path="bin/blob",
        content=base64.b64encode(blob).decode(),
        encoding="base64",
    )
    await call("put_object", session_id=sid, path="gone.txt", content="x")
    bad = await mcp_client.call_tool(
        "put_object",
        {
            "repository": repository,
            "session_id": sid,
            "path": "x",
            "content": "***",
            "encoding": "base64",
        },
    )
    assert bad.is_error
    assert "not valid base64" in text(bad)

    top = await call("list_objects", session_id=sid)
    assert [(entry["path"], entry["type"]) for entry in top] == [
        ("bin/", "prefix"),
        ("docs/", "prefix"),
        ("gone.txt", "object"),
    ]
    assert top[0] == {"path": "bin/", "type": "prefix"}
    gone = top[2]
    assert set(gone) == {
        "path",
        "type",
        "size",
        "last_modified",
        "content_type",
        "metadata",
        "source_metadata",
    }
    assert (gone["size"], gone["metadata"], gone["source_metadata"]) == (1, {}, None)
    flat = await call("list_objects", session_id=sid, delimiter="", amount=2)
    assert [entry["path"] for entry in flat] == ["bin/blob", "docs/readme.md"]
    under = await call("list_objects", session_id=sid, prefix="docs/")
    assert [entry["path"] for entry in under] == ["docs/readme.md"]

    head = await call("head_object", session_id=sid, path="docs/readme.md")
    assert head["path"] == "docs/readme.md"
    assert head["size"] == len("héllo\n".encode())
    read = await call("get_object", session_id=sid, path="docs/readme.md")
    assert (read["encoding"], read["content"]) == ("utf-8", "héllo\n")
    assert read["content_type"]
    binary = await call("get_object", session_id=sid, path="bin/blob")
    assert binary["encoding"] == "base64"
    assert base64.b64decode(binary["content"]) == blob
    assert await call("delete_object", session_id=sid, path="gone.txt") == {
        "status": "deleted",
        "path": "gone.txt",
    }

    staged = await call("diff", session_id=sid)
    assert staged["session_id"] == sid
    assert sorted((c["path"], c["status"]) for c in staged["changes"]) == [
        ("bin/blob", "added"),
        ("docs/readme.md", "added"),
    ]
    committed = await call(
        "commit_session", session_id=sid, message="add docs", metadata={"by": "mcp"}
    )
    assert committed["status"] == "committed"
    assert committed["commit_id"]
    assert committed["web_url"] is None

    # what landed, through the SDK as the admin
    async with admin.repository(repository).objects.get("docs/readme.md") as reader:
        assert await reader.read() == "héllo\n".encode()

    second = (await call("create_session"))["session_id"]
    await call("put_object", session_id=second, path="docs/readme.md", content="v2\n")
    await call("delete_object", session_id=second, path="bin/blob")
    latest = (await call("commit_session", session_id=second, message="v2"))["commit_id"]

    history = await call("log")
    assert [c["message"] for c in history["commits"]] == ["v2", "add docs", "Repository created"]
    assert history["has_more"] is False
    first = history["commits"][1]
    assert first["id"] == committed["commit_id"]
    assert first["metadata"] == {"by": "mcp"}
    assert first["committer_type"] == "agent"
    assert history["commits"][0]["parents"] == [first["id"]]
    bounded = await call("log", amount=1)
    assert ([c["id"] for c in bounded["commits"]], bounded["has_more"]) == ([latest], True)
    older = await call("log", ref=first["id"])
    assert [c["message"] for c in older["commits"]] == ["add docs", "Repository created"]

    last = await call("diff")
    assert (last["left"], last["right"]) == (first["id"], latest)
    assert sorted((c["path"], c["status"]) for c in last["changes"]) == [
        ("bin/blob", "removed"),
        ("docs/readme.md", "modified"),
    ]
    root = history["commits"][2]["id"]
    whole = await call("diff", left=root, right="HEAD", amount=1)
    assert [c["path"] for c in whole["changes"]] == ["docs/readme.md"]
    assert whole["has_more"] is False
    both = await mcp_client.call_tool(
        "diff", {"repository": repository, "session_id": second, "left": root}
    )
    assert both.is_error
    assert "either session_id or left/right" in text(both)


async def test_close_session(mcp_client: Client, repository: str, admin: AsyncClient) -> None:
    async def call(name: str, **arguments: Any) -> Any:
        return data(await mcp_client.call_tool(name, {"repository": repository, **arguments}))

    sid = (await call("create_session"))["session_id"]
    await call("put_object", session_id=sid, path="discarded.txt", content="x")
    assert await call("close_session", session_id=sid) == {
        "status": "rolled_back",
        "session_id": sid,
    }
    assert await call("close_session", session_id=sid) == {
        "status": "already_closed",
        "session_id": sid,
    }
    assert [e.path async for e in admin.repository(repository).objects.list()] == []
    committed = (await call("create_session"))["session_id"]
    await call("commit_session", session_id=committed, message="empty")
    assert (await call("close_session", session_id=committed))["status"] == "already_closed"


async def test_get_object_refuses_what_is_too_large(
    mcp_client: Client, repository: str, admin: AsyncClient
) -> None:
    from lamina.mcp.objects import MAX_OBJECT_BYTES

    async with admin.repository(repository).session() as session:
        await session.objects.put("big.bin", b"a" * (MAX_OBJECT_BYTES + 1))
        await session.commit("big")
    sid = data(await mcp_client.call_tool("create_session", {"repository": repository}))[
        "session_id"
    ]
    result = await mcp_client.call_tool(
        "get_object", {"repository": repository, "session_id": sid, "path": "big.bin"}
    )
    assert result.is_error
    assert f"too large to return ({MAX_OBJECT_BYTES + 1} bytes" in text(result)
