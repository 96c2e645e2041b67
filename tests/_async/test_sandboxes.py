"""Sandboxes against the real server: shells, execute, live output, logs, terminals, triggers.

The server's sandbox routes follow tilde-openapi; the default image is the server's own
(``host``), so POSIX tools are there and the repository is mounted at ``/sandbox``.
"""

from __future__ import annotations

import pytest

from lamina import (
    AsyncRepository,
    CommandError,
    ConflictError,
    NotFoundError,
    OutputEvent,
    SandboxError,
    SandboxTriggerCondition,
    TerminalExit,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _needs_sandbox_routes(sandbox_routes: None) -> None:
    """Skipped while the server has no sandbox routes."""


async def paths_at_head(repo: AsyncRepository) -> list[str]:
    return [entry.path async for entry in repo.objects.list()]


async def test_shell_runs_commands(repo: AsyncRepository) -> None:
    async with repo.shell() as sh:
        result = await sh.run("echo out; echo err >&2; exit 3")
        assert (result.stdout.text(), result.stderr.text(), result.exit_code) == (
            "out\n",
            "err\n",
            3,
        )
        listed = await sh.run(["printf", "%s|", "a b", "c"])
        assert listed.stdout.text() == "a b|c|"
        env = await sh.run("echo $GREETING; pwd", env={"GREETING": "hi"}, cwd="/tmp")
        assert env.stdout.text() == "hi\n/tmp\n"
        with pytest.raises(CommandError) as caught:
            await sh.run("exit 2", check=True)
        assert caught.value.result.exit_code == 2
        assert caught.value.command == "exit 2"
    assert sh.outcome is not None and sh.outcome.has_no_changes


async def test_shell_commits_what_it_writes_under_the_mount(repo: AsyncRepository) -> None:
    async with repo.shell() as sh:
        await sh.run("mkdir -p /sandbox/out && echo hello > /sandbox/out/hello.txt", check=True)
    assert sh.outcome is not None and sh.outcome.is_committed
    assert sh.outcome.commit_id
    assert await paths_at_head(repo) == ["out/hello.txt"]
    async with repo.objects.get("out/hello.txt") as reader:
        assert await reader.read() == b"hello\n"
    commit = await repo.commits.get(sh.outcome.commit_id)
    assert commit.id == sh.outcome.commit_id


async def test_shell_rolls_back_on_an_exception(repo: AsyncRepository) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with repo.shell() as sh:
            await sh.run("echo lost > /sandbox/lost.txt", check=True)
            raise RuntimeError("boom")
    status = await sh.sandbox.wait(30)
    assert status.status == "cancelled"
    assert await paths_at_head(repo) == []


async def test_shell_start_failure_names_the_status(repo: AsyncRepository) -> None:
    with pytest.raises(SandboxError) as caught:
        async with repo.shell(image="no-such-image-xyz"):
            pass
    assert caught.value.status is not None
    assert caught.value.status.status == "failed"
    assert "failed/" in str(caught.value)


async def test_shell_stdin_round_trip(repo: AsyncRepository) -> None:
    async with repo.shell() as sh:
        result = await sh.run("tr a-z A-Z", stdin=b"hello\n")
        assert result.stdout.text() == "HELLO\n"
        empty = await sh.run("cat")  # no stdin: end of file at once
        assert (empty.stdout.read(), empty.exit_code) == (b"", 0)


async def test_live_output_arrives_before_stdin_is_written(repo: AsyncRepository) -> None:
    command = "echo ready; read line; echo got $line; echo bye >&2"
    async with repo.shell() as sh, sh.process(command) as proc:
        assert await proc.stdout.__anext__() == b"ready\n"  # printed before any stdin
        await proc.stdin.write(b"ping\n")
        await proc.stdin.close()
        events = [event async for event in proc]
        assert await proc.wait() == 0
    assert b"".join(e.data for e in events if e.stream == "stdout") == b"got ping\n"
    assert OutputEvent("stderr", b"bye\n") in events


async def test_large_output_streams_through(repo: AsyncRepository) -> None:
    async with repo.shell() as sh, sh.process("head -c 33554432 /dev/zero", stdin=None) as proc:
        total = 0
        async for chunk in proc.stdout:
            total += len(chunk)
        assert await proc.wait() == 0
    assert total == 32 * 1024 * 1024


async def test_execute(repo: AsyncRepository) -> None:
    result = await repo.execute("echo made > /sandbox/made.txt; echo done")
    assert (result.stdout.text(), result.exit_code) == ("done\n", 0)
    assert await paths_at_head(repo) == ["made.txt"]

    failed = await repo.execute(["sh", "-c", "echo nope; exit 4"], check=False)
    assert (failed.stdout.text(), failed.exit_code) == ("nope\n", 4)
    with pytest.raises(CommandError) as caught:
        await repo.execute("echo changed > /sandbox/made.txt; exit 5")
    assert caught.value.result.exit_code == 5
    async with repo.objects.get("made.txt") as reader:
        assert await reader.read() == b"made\n"  # a failed sandbox commits nothing


async def test_execute_timeout_cancels_the_sandbox(repo: AsyncRepository) -> None:
    with pytest.raises(SandboxError):
        await repo.execute("sleep 30", timeout=1)
    [sandbox] = [sandbox async for sandbox in repo.sandboxes.list()]
    status = await sandbox.wait(30)  # the cancel (or the server's own timeout) ends it
    assert status.state in ("cancelled", "failed") and status.exit_code != 0


async def test_sandbox_lifecycle_and_logs(repo: AsyncRepository) -> None:
    sandbox = await repo.sandboxes.create(command="for i in 1 2 3; do echo line $i; done")
    lines = [line async for line in sandbox.logs(follow=True)]
    assert lines == ["line 1", "line 2", "line 3"]
    status = await sandbox.wait(60)
    assert status.has_no_changes and status.exit_code == 0
    loaded = await repo.sandboxes.get(sandbox.id)
    assert loaded.data.command == ("sh", "-c", "for i in 1 2 3; do echo line $i; done")
    assert loaded.data.mode == "one-shot"
    assert sandbox.id in [item.id async for item in repo.sandboxes.list()]
    with pytest.raises(ConflictError):
        await sandbox.cancel()  # already ended


async def test_service_sandbox_finish_and_cancel(repo: AsyncRepository) -> None:
    service = await repo.sandboxes.create(mode="service", env={"A": "1"})
    assert (await service.wait(60, until="running")).is_running
    result = await service.exec("echo $A")
    assert result.stdout.text() == "1\n"
    await service.finish()
    assert (await service.wait(60)).has_no_changes

    doomed = await repo.sandboxes.create(mode="service")
    await doomed.wait(60, until="running")
    await doomed.cancel()
    assert (await doomed.wait(60)).status == "cancelled"


async def test_terminal_tty(repo: AsyncRepository) -> None:
    sandbox = await repo.sandboxes.create(mode="interactive")
    await sandbox.wait(60, until="running")
    async with sandbox.terminal(cols=100, rows=30) as term:
        await term.send(b"tty; stty size; exit 7\n")
        output = b""
        while True:
            received = await term.receive()
            if isinstance(received, TerminalExit):
                break
            output += received
    assert received == TerminalExit(7)
    assert b"/dev/pts/0" in output  # the agent opens the terminal in the sandbox
    assert b"30 100" in output


async def test_triggers_crud(repo: AsyncRepository) -> None:
    trigger = await repo.sandbox_triggers.create(
        "on-raw",
        [SandboxTriggerCondition(type="prefix", prefix="raw/")],
        {"image": "host", "command": ["true"]},
        description="first",
    )
    assert (trigger.name, trigger.description, trigger.enabled) == ("on-raw", "first", True)
    assert trigger.conditions[0].prefix == "raw/"

    updated = await trigger.update(description="second")
    assert (updated.name, updated.description) == ("on-raw", "second")
    assert updated.sandbox_config is not None and updated.sandbox_config.command == ("true",)
    assert (await trigger.toggle(False)).enabled is False
    fetched = await repo.sandbox_triggers.get(trigger.id)
    assert (fetched.enabled, fetched.description) == (False, "second")
    assert [item.id async for item in repo.sandbox_triggers.list()] == [trigger.id]
    assert [run async for run in trigger.runs.list()] == []

    await trigger.delete()
    with pytest.raises(NotFoundError):
        await repo.sandbox_triggers.get(trigger.id)
