"""The streamable HTTP transport: ``python -m lamina.mcp --transport streamable-http``, and a
real MCP client over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from lamina.testing import LocalServer
from tests.mcp.conftest import data, server_env

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_server(local_server: LocalServer, agent_key: str, tmp_path: Path) -> Iterator[str]:
    """The MCP server over streamable HTTP on a free loopback port; yields its URL."""
    port = free_port()
    env = server_env(local_server, agent_key, tmp_path)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "lamina.mcp", "--transport", "streamable-http"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _, stderr = process.communicate(timeout=10)
                    pytest.fail(f"the MCP server did not listen: {stderr.decode()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_streamable_http(http_server: str, repository: str) -> None:
    async with Client(http_server) as client:
        tools = await client.list_tools()
        assert len(tools.tools) == 14
        sid = data(await client.call_tool("create_session", {"repository": repository}))[
            "session_id"
        ]
        await client.call_tool(
            "put_object",
            {"repository": repository, "session_id": sid, "path": "a.txt", "content": "over http"},
        )
        committed = data(
            await client.call_tool(
                "commit_session", {"repository": repository, "session_id": sid, "message": "m"}
            )
        )
        assert committed["status"] == "committed"
        log = data(await client.call_tool("log", {"repository": repository, "amount": 1}))
        assert log["commits"][0]["id"] == committed["commit_id"]
