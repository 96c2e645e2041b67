"""``run_command`` in real bubblewrap sandboxes (skipped where they cannot run)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from lamina import AsyncClient
from tests.mcp.conftest import data

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _needs_sandboxes(sandbox_routes: None) -> None:
    """Skipped where sandboxes cannot run (they need root and bubblewrap)."""
    from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner

    cannot_run = BubblewrapRunner().check()
    if cannot_run is not None:
        pytest.skip(f"no sandboxes: {cannot_run}")


async def paths(admin: AsyncClient, repository: str) -> list[str]:
    return [entry.path async for entry in admin.repository(repository).objects.list()]


async def test_run_command_commits_what_it_writes(
    mcp_client: Client, repository: str, admin: AsyncClient
) -> None:
    async def run(command: str, **options: Any) -> Any:
        arguments = {"repository": repository, "command": command, **options}
        return data(await mcp_client.call_tool("run_command", arguments))

    done = await run(
        "echo out; echo err >&2; echo $GREETING > /sandbox/hello.txt; pwd",
        env={"GREETING": "hi"},
        cwd="/tmp",
    )
    assert done["status"] == "committed"
    assert (done["exit_code"], done["stdout"], done["stderr"]) == (0, "out\n/tmp\n", "err\n")
    assert (done["stdout_truncated"], done["stderr_truncated"]) == (False, False)
    assert done["commit_id"]
    assert done["sandbox_id"]
    assert await paths(admin, repository) == ["hello.txt"]
    async with admin.repository(repository).objects.get("hello.txt") as reader:
        assert await reader.read() == b"hi\n"

    failed = await run("echo partial > /sandbox/partial.txt; echo oops >&2; exit 3")
    assert (failed["status"], failed["exit_code"], failed["stderr"]) == ("errored", 3, "oops\n")
    assert failed["commit_id"] is None
    unchanged = await run("cat /sandbox/hello.txt")
    assert (unchanged["status"], unchanged["stdout"]) == ("no_changes", "hi\n")
    dry = await run("echo draft > /sandbox/draft.txt", commit=False)
    assert (dry["status"], dry["exit_code"]) == ("cancelled", 0)
    assert await paths(admin, repository) == ["hello.txt"]


async def test_run_command_bounds_its_output_and_time(mcp_client: Client, repository: str) -> None:
    async def run(command: str, **options: Any) -> Any:
        arguments = {"repository": repository, "command": command, **options}
        return data(await mcp_client.call_tool("run_command", arguments))

    loud = await run("seq 1 20000", max_output_bytes=100)
    assert loud["stdout_truncated"] is True
    assert loud["stdout_bytes"] == len("".join(f"{n}\n" for n in range(1, 20001)))
    assert loud["stdout"].startswith("1\n2\n3\n")
    assert loud["stdout"].endswith("19999\n20000\n")
    assert "bytes omitted" in loud["stdout"]
    unknown = await run("true", image="no-such-image-xyz")
    assert (unknown["status"], unknown["exit_code"]) == ("failed", None)
    assert "no-such-image-xyz" in unknown["error"]
    slow = await run("echo started; sleep 60", timeout=2)
    assert (slow["status"], slow["timed_out"], slow["exit_code"]) == ("cancelled", True, None)
    assert slow["stdout"] == "started\n"


async def test_run_command_held_for_approval(
    mcp_client: Client, repository: str, admin: AsyncClient
) -> None:
    await admin.repository(repository).update(approval_required_for="agents")
    arguments = {"repository": repository, "command": "echo x > /sandbox/x.txt"}
    held = data(await mcp_client.call_tool("run_command", arguments))
    assert held["status"] == "awaiting_approval"
    assert held["web_url"].startswith("http")
    assert held["commit_id"] is None
    assert await paths(admin, repository) == []


async def test_a_call_the_client_cancels_cancels_its_sandbox(
    mcp_client: Client, repository: str, admin: AsyncClient
) -> None:
    arguments = {"repository": repository, "command": "echo x > /sandbox/x.txt; sleep 120"}
    with anyio.move_on_after(5):
        await mcp_client.call_tool("run_command", arguments)
        pytest.fail("the command should still be running")
    sandboxes = [sandbox async for sandbox in admin.repository(repository).sandboxes.list()]
    assert len(sandboxes) == 1
    status = await sandboxes[0].wait(60)
    assert status.status == "cancelled"
    assert await paths(admin, repository) == []
