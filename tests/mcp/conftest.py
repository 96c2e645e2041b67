"""Fixtures of the MCP server's tests: agents with keys on the session's real server, and a real
MCP client session with ``python -m lamina.mcp`` spawned over stdio."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from lamina import AsyncClient, AsyncOrganization
from lamina.testing import LocalServer

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: What the test agent may do: every action the tools need, except objects under secret/.
AGENT_POLICY = """\
ListRepositories()
GetRepository()
CreateRepository()
CreateSession()
GetSession()
CommitSession()
RollbackSession()
ListObjects()
GetObject()
PutObject()
DeleteObject()
ListCommits()
GetCommit()
CreateSandbox()
GetSandbox()
ListSandboxes()
ExecSandbox()
CancelSandbox()
FinishSandbox()
Deny GetObject(path="secret/*")
"""


@pytest.fixture
async def admin(local_server: LocalServer) -> AsyncIterator[AsyncClient]:
    """The SDK as the bootstrap admin (a user key)."""
    async with AsyncClient(
        api_key=local_server.api_key, endpoint_url=local_server.endpoint_url
    ) as client:
        yield client


@pytest.fixture
def org(admin: AsyncClient, local_server: LocalServer) -> AsyncOrganization:
    return admin.organization(local_server.org)


@pytest.fixture
def make_agent_key(org: AsyncOrganization, unique_name: Callable[..., str]) -> Callable[..., Any]:
    """``await make_agent_key(policy)``: a new agent with ``policy`` inline (``attached``: as a
    policy of the organization attached to it), and its key."""

    async def make(policy: str = AGENT_POLICY, *, attached: bool = False) -> str:
        name = unique_name("mcp-agent")
        if not attached:
            agent = await org.agents.create(name, inline_policy=policy)
        else:
            agent = await org.agents.create(name)
            created = await org.policies.create(name, policy)
            await created.attach(principal_type="agent", principal_id=agent.id)
        key = await agent.api_keys.create("mcp")
        assert key.token is not None
        return key.token

    return make


@pytest.fixture
async def agent_key(make_agent_key: Callable[..., Any]) -> str:
    key: str = await make_agent_key()
    return key


def server_env(local_server: LocalServer, api_key: str, home: Path) -> dict[str, str]:
    """The environment of a spawned MCP server: the key, the endpoint, a HOME without a
    config file, and this checkout's sources first on the path."""
    env = {
        "LAMINA_API_KEY": api_key,
        "LAMINA_ENDPOINT_URL": local_server.endpoint_url,
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    }
    return env


@asynccontextmanager
async def stdio_session(env: Mapping[str, str]) -> AsyncIterator[Client]:
    """A real MCP client session with ``python -m lamina.mcp`` over stdio."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "lamina.mcp"], env=dict(env))
    async with Client(params, read_timeout_seconds=120) as client:
        yield client


@pytest.fixture
async def mcp_client(
    local_server: LocalServer, agent_key: str, tmp_path: Path
) -> AsyncIterator[Client]:
    async with stdio_session(server_env(local_server, agent_key, tmp_path)) as client:
        yield client


def data(result: CallToolResult) -> Any:
    """A successful tool call's structured result (a list comes wrapped as ``result``)."""
    assert not result.is_error, text(result)
    content = result.structured_content
    assert content is not None
    if isinstance(content, dict) and set(content) == {"result"}:
        return content["result"]
    return content


def text(result: CallToolResult) -> str:
    """The text of a tool call's result (an error's message)."""
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def parsed(result: CallToolResult) -> Any:
    return json.loads(text(result))
