"""Who the MCP server acts as (agent keys only, read on every call), its errors (with the
server's request id), commits held for approval, and explain_permission."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from lamina import AsyncClient, AsyncOrganization
from lamina.testing import LocalServer
from tests.mcp.conftest import AGENT_POLICY, data, server_env, stdio_session, text

pytestmark = pytest.mark.anyio

REQUEST_ID = re.compile(r"request id [0-9a-f]{16,}")


async def test_a_user_key_is_refused(
    local_server: LocalServer, repository: str, tmp_path: Path
) -> None:
    async with stdio_session(server_env(local_server, local_server.api_key, tmp_path)) as client:
        result = await client.call_tool("create_session", {"repository": repository})
    assert result.is_error
    assert "must be an agent key (prefix 'tak-'); this key is a user key" in text(result)


async def test_a_missing_key_names_the_variable(
    local_server: LocalServer, repository: str, tmp_path: Path
) -> None:
    env = server_env(local_server, "", tmp_path)
    env["CEREBRAL_API_KEY"] = "cak-not-read"
    async with stdio_session(env) as client:
        result = await client.call_tool("log", {"repository": repository})
    assert result.is_error
    assert "LAMINA_API_KEY is not set" in text(result)
    assert "CEREBRAL_API_KEY is not read" in text(result)


async def test_the_key_is_read_on_every_call(
    local_server: LocalServer, repository: str, agent_key: str, tmp_path: Path
) -> None:
    """Without LAMINA_API_KEY the key comes from the SDK's config file, read at each call: a
    change to it applies to the next call of the running server."""
    config = tmp_path / ".lamina" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'api_key = "{agent_key}"\n')
    env = server_env(local_server, "", tmp_path)
    async with stdio_session(env) as client:
        ok = await client.call_tool("log", {"repository": repository})
        assert not ok.is_error, text(ok)
        config.write_text(f'api_key = "{local_server.api_key}"\n')
        refused = await client.call_tool("log", {"repository": repository})
        assert refused.is_error
        assert "this key is a user key" in text(refused)
        config.write_text(f'api_key = "{agent_key}"\n')
        again = await client.call_tool("log", {"repository": repository})
        assert not again.is_error, text(again)


async def test_errors_carry_the_message_and_request_id(
    mcp_client: Client, repository: str, local_server: LocalServer
) -> None:
    missing = await mcp_client.call_tool(
        "create_session", {"repository": f"{local_server.org}/no-such-repo"}
    )
    assert missing.is_error
    message = text(missing)
    assert "Not found:" in message
    assert "no-such-repo" in message
    assert "HTTP 404" in message
    assert REQUEST_ID.search(message), message
    bad_path = await mcp_client.call_tool("create_session", {"repository": "not-a-repository-path"})
    assert bad_path.is_error
    assert "org/repo" in text(bad_path)
    sid = data(await mcp_client.call_tool("create_session", {"repository": repository}))[
        "session_id"
    ]
    denied = await mcp_client.call_tool(
        "get_object", {"repository": repository, "session_id": sid, "path": "secret/key"}
    )
    assert denied.is_error
    assert "Permission denied: GetObject on" in text(denied)
    assert 'Deny GetObject(path="secret/*")' in text(denied)
    assert REQUEST_ID.search(text(denied))


async def test_a_revoked_key_fails_authentication(
    local_server: LocalServer,
    org: AsyncOrganization,
    repository: str,
    unique_name: Callable[..., str],
    tmp_path: Path,
) -> None:
    agent = await org.agents.create(unique_name("revoked"), inline_policy=AGENT_POLICY)
    key = await agent.api_keys.create("mcp")
    assert key.token is not None
    await agent.api_keys.revoke(key.id)
    async with stdio_session(server_env(local_server, key.token, tmp_path)) as client:
        result = await client.call_tool("log", {"repository": repository})
    assert result.is_error
    assert "Authentication failed" in text(result)
    assert "HTTP 401" in text(result)


async def test_a_commit_held_for_approval_answers_with_its_url(
    mcp_client: Client, admin: AsyncClient, repository: str
) -> None:
    repo = admin.repository(repository)
    await repo.update(approval_required_for="agents")

    async def call(name: str, **arguments: Any) -> Any:
        return data(await mcp_client.call_tool(name, {"repository": repository, **arguments}))

    sid = (await call("create_session"))["session_id"]
    await call("put_object", session_id=sid, path="held.txt", content="wait for me")
    held = await call("commit_session", session_id=sid, message="needs a human")
    assert held["status"] == "approval_required"
    assert held["commit_id"] is None
    assert held["session_id"] == sid
    assert held["web_url"].startswith("http")
    assert sid in held["web_url"]
    assert held["api_url"]
    assert [e.path async for e in repo.objects.list()] == []  # nothing landed yet
    approval = await repo.approvals.get(sid)
    assert approval.state == "pending"
    commit_id = await repo.approvals.approve(sid)
    log = await call("log", amount=1)
    assert log["commits"][0]["id"] == commit_id
    assert log["commits"][0]["message"] == "needs a human"


async def test_explain_permission(
    mcp_client: Client,
    make_agent_key: Callable[..., Any],
    local_server: LocalServer,
    repository: str,
    tmp_path: Path,
) -> None:
    async def explain(client: Client, action: str, path: str = "") -> Any:
        arguments = {"repository": repository, "action": action, "path": path}
        return data(await client.call_tool("explain_permission", arguments))

    # an agent that may not read its policies: the server's authorizer answers
    denied = await explain(mcp_client, "GetObject", "secret/key")
    assert (denied["allowed"], denied["basis"]) == (False, "server")
    assert denied["resource"] == f"{repository}/secret/key"
    assert 'Deny GetObject(path="secret/*")' in denied["reason"]
    allowed = await explain(mcp_client, "GetObject", "public/a.csv")
    assert (allowed["allowed"], allowed["basis"]) == (True, "server")
    write = await explain(mcp_client, "PutObject", "a.txt")  # a write, nothing tried
    assert (write["allowed"], write["basis"]) == (True, "server")
    nothing = await explain(mcp_client, "DeleteRepository")
    assert (nothing["allowed"], nothing["basis"]) == (False, "server")
    assert "no policy allows DeleteRepository" in nothing["reason"]

    # an agent that may read its policies, attached to it: the deciding line is named
    policy = AGENT_POLICY + "ManagePolicies()\n"
    reader_key = await make_agent_key(policy, attached=True)
    env = server_env(local_server, reader_key, tmp_path)
    async with stdio_session(env) as reader:
        write = await explain(reader, "PutObject", "a.txt")
        assert (write["allowed"], write["basis"]) == (True, "effective_policies")
        assert write["rule"] == "PutObject()"
        assert write["policy_name"].startswith("mcp-agent-")
        secret = await explain(reader, "GetObject", "secret/key")
        assert (secret["allowed"], secret["basis"]) == (False, "effective_policies")
        assert secret["rule"] == 'Deny GetObject(path="secret/*")'
        assert secret["line"] == policy.splitlines().index(secret["rule"]) + 1
        nothing = await explain(reader, "DeleteRepository")
        assert (nothing["allowed"], nothing["rule"]) == (False, None)

    # an agent with an inline policy and ManagePolicies: the inline policy decides, by line
    inline_key = await make_agent_key(policy)
    async with stdio_session(server_env(local_server, inline_key, tmp_path)) as inline:
        tried = await explain(inline, "GetObject", "secret/key")
        assert (tried["allowed"], tried["basis"]) == (False, "effective_policies")
        assert tried["policy_name"].endswith("(inline)")
        assert tried["rule"] == 'Deny GetObject(path="secret/*")'
