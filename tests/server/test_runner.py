"""The bubblewrap runner against real bwrap, namespaces, overlayfs and cgroups (no mocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lamina_server.sandboxes.runners.base import Image, Limits, RunnerError, SandboxSpec
from lamina_server.sandboxes.runners.bubblewrap import BubblewrapRunner, BubblewrapSandbox

RUNNER = BubblewrapRunner()
_WHY_NOT = RUNNER.check()
pytestmark = [
    pytest.mark.skipif(_WHY_NOT is not None, reason=f"bubblewrap runner unavailable: {_WHY_NOT}"),
    pytest.mark.anyio,
]

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
HOST = Image(name="host", root=Path("/"), host=True)

SpecFactory = Callable[..., SandboxSpec]


@pytest.fixture
def make_spec(tmp_path: Path) -> SpecFactory:
    def make(limits: Limits | None = None) -> SandboxSpec:
        base = tmp_path / uuid.uuid4().hex[:8]
        for name in ("lower", "upper", "work", "scratch"):
            (base / name).mkdir(parents=True)
        (base / "lower" / "readme.txt").write_text("from lower\n")
        (base / "lower" / "old.txt").write_text("delete me\n")
        return SandboxSpec(
            sandbox_id=f"test-{uuid.uuid4().hex[:12]}",
            image=HOST,
            lower=base / "lower",
            upper=base / "upper",
            work=base / "work",
            scratch=base / "scratch",
            limits=limits or Limits(),
        )

    return make


@pytest.fixture
async def sandbox(make_spec: SpecFactory) -> AsyncIterator[BubblewrapSandbox]:
    started = await RUNNER.start(make_spec())
    try:
        yield started
    finally:
        await started.stop()


async def run(
    sandbox: BubblewrapSandbox, argv: list[str], stdin: bytes = b"", env: dict[str, str] = ENV
) -> tuple[int, str, str]:
    process = await sandbox.spawn(argv, env=env)
    if stdin:
        await process.write_stdin(stdin)
    await process.close_stdin()
    out, err = await asyncio.gather(collect(process.read_stdout()), collect(process.read_stderr()))
    return await process.wait(), out.decode(), err.decode()


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_overlay_reads_lower_and_writes_land_in_upper(make_spec: SpecFactory) -> None:
    spec = make_spec()
    sandbox = await RUNNER.start(spec)
    try:
        code, out, _ = await run(
            sandbox, ["sh", "-c", "cat readme.txt && echo new > new.txt && rm old.txt"]
        )
    finally:
        await sandbox.stop()
    assert (code, out) == (0, "from lower\n")
    assert (spec.upper / "new.txt").read_text() == "new\n"
    whiteout = os.lstat(spec.upper / "old.txt")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert (spec.lower / "old.txt").exists()
    assert sorted(os.listdir(spec.upper)) == ["new.txt", "old.txt"]


async def test_host_files_outside_the_image_are_invisible(
    sandbox: BubblewrapSandbox, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    for path in (str(secret), "/etc/shadow", "/root", "/work", "/home", "/var"):
        code, out, _ = await run(sandbox, ["ls", "-d", path])
        assert code != 0, f"{path} is visible: {out}"


async def test_no_network_not_even_host_loopback(sandbox: BubblewrapSandbox) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, _, err = await run(
            sandbox,
            ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"],
        )
    assert code != 0
    assert "Connection refused" in err or "unreachable" in err


async def test_only_sandbox_processes_are_visible(sandbox: BubblewrapSandbox) -> None:
    _, out, _ = await run(sandbox, ["sh", "-c", "ls /proc | grep -E '^[0-9]+$'"])
    pids = [int(pid) for pid in out.split()]
    assert pids and max(pids) < 10


async def test_unprivileged_without_capabilities_or_user_namespaces(
    sandbox: BubblewrapSandbox,
) -> None:
    _, out, _ = await run(sandbox, ["sh", "-c", "id -u; id -un; grep CapEff /proc/self/status"])
    assert out.split() == ["1000", "sandbox", "CapEff:", "0000000000000000"]
    for attack in (["unshare", "-U", "true"], ["unshare", "-n", "true"]):
        code, _, _ = await run(sandbox, attack)
        assert code != 0, attack


async def test_environment_is_exactly_what_was_passed(sandbox: BubblewrapSandbox) -> None:
    env = {"PATH": "/usr/bin:/bin", "ONLY": "this"}
    code, out, _ = await run(sandbox, ["env"], env=env)
    assert code == 0
    assert sorted(out.splitlines()) == ["ONLY=this", "PATH=/usr/bin:/bin"]


async def test_missing_command_is_a_runner_error(sandbox: BubblewrapSandbox) -> None:
    with pytest.raises(RunnerError, match="command not found"):
        await sandbox.spawn(["no-such-command-here"], env=ENV)


async def test_memory_hog_is_killed_and_reported(make_spec: SpecFactory) -> None:
    sandbox = await RUNNER.start(make_spec(Limits(memory_bytes=64 * 1024**2)))
    try:
        code, _, _ = await run(sandbox, ["python3", "-c", "b = bytearray(192 * 1024**2)"])
        assert code == 128 + 9
        assert sandbox.limit_exceeded() == "memory"
    finally:
        await sandbox.stop()
    assert len(bytearray(16 * 1024**2)) > 0  # this process is fine


async def test_fork_bomb_is_bounded(make_spec: SpecFactory) -> None:
    sandbox = await RUNNER.start(make_spec(Limits(max_processes=32)))
    try:
        bomb = "for i in $(seq 100); do sleep 30 & done; wait"
        process = await sandbox.spawn(["sh", "-c", bomb], env=ENV)
        err = await collect(process.read_stderr())
        assert b"fork" in err.lower()
        assert sandbox.limit_exceeded() == "processes"
    finally:
        await sandbox.stop()


async def test_stop_kills_every_process(make_spec: SpecFactory) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    sandbox = await RUNNER.start(make_spec())
    await sandbox.spawn(["sh", "-c", f"sleep {marker} & sleep {marker}"], env=ENV)
    await asyncio.sleep(0.2)
    assert len(_host_processes_with(marker)) == 2
    await sandbox.stop()
    await sandbox.stop()  # idempotent
    assert _host_processes_with(marker) == []


def _host_processes_with(argument: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argument.encode() in cmdline and cmdline[0] == b"sleep":
                found.append(int(entry))
    return found


async def test_kill_ends_the_process_tree(sandbox: BubblewrapSandbox) -> None:
    process = await sandbox.spawn(["sh", "-c", "sleep 1000 & sleep 1000"], env=ENV)
    process.kill()
    assert await process.wait() == 128 + 9


async def test_stdin_round_trip(sandbox: BubblewrapSandbox) -> None:
    assert await run(sandbox, ["cat"], stdin=b"hello sandbox\n") == (0, "hello sandbox\n", "")


async def test_output_arrives_before_the_process_ends(sandbox: BubblewrapSandbox) -> None:
    script = "import sys; print('ready', flush=True); sys.stdin.read(); print('done')"
    process = await sandbox.spawn(["python3", "-c", script], env=ENV)
    stdout = process.read_stdout()
    assert await asyncio.wait_for(anext(stdout), 10) == b"ready\n"
    await process.close_stdin()
    assert await collect(stdout) == b"done\n"
    assert await process.wait() == 0


async def test_terminal_is_the_controlling_tty(sandbox: BubblewrapSandbox) -> None:
    process = await sandbox.spawn(["tty"], env=ENV, terminal=(80, 24))
    out = await collect(process.read_stdout())
    assert await process.wait() == 0
    assert out.startswith(b"/dev/")


async def test_terminal_resize_and_interrupt(sandbox: BubblewrapSandbox) -> None:
    script = "stty size; read x; stty size; exec sleep 1000"
    process = await sandbox.spawn(["sh", "-c", script], env=ENV, terminal=(80, 24))
    output = process.read_stdout()
    seen = b""
    while b"24 80" not in seen:
        seen += await asyncio.wait_for(anext(output), 10)
    process.resize(100, 40)
    await process.write_stdin(b"go\r")
    while b"40 100" not in seen:
        seen += await asyncio.wait_for(anext(output), 10)
    await asyncio.sleep(0.2)  # let sleep start
    await process.write_stdin(b"\x03")
    assert await asyncio.wait_for(process.wait(), 10) == 128 + 2


async def test_commands_start_with_no_signal_ignored_or_blocked(make_spec: SpecFactory) -> None:
    # A server started in the background ignores SIGINT and SIGQUIT (and one under nohup
    # SIGHUP); its sandboxes' commands must not inherit that, or Ctrl-C does nothing there.
    ignored = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGPIPE)
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in ignored}
    try:
        sandbox = await RUNNER.start(make_spec())
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    try:
        code, out, _ = await run(sandbox, ["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"])
    finally:
        await sandbox.stop()
    assert code == 0
    masks = dict(line.split(":\t") for line in out.splitlines())
    assert int(masks["SigIgn"], 16) == 0, out
    assert int(masks["SigBlk"], 16) == 0, out


async def test_concurrent_processes_share_one_overlay(sandbox: BubblewrapSandbox) -> None:
    writer = await sandbox.spawn(
        ["sh", "-c", "echo shared > shared.txt; echo written; cat"], env=ENV
    )
    assert await anext(writer.read_stdout()) == b"written\n"
    code, out, _ = await run(sandbox, ["cat", "shared.txt"])
    await writer.close_stdin()
    assert await writer.wait() == 0
    assert (code, out) == (0, "shared\n")


async def test_reap_cleans_up_after_a_crash(make_spec: SpecFactory) -> None:
    spec = make_spec()
    sandbox = await RUNNER.start(spec)
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    await sandbox.spawn(["sleep", marker], env=ENV)
    await asyncio.sleep(0.2)
    await BubblewrapRunner().reap([spec.scratch])
    assert _host_processes_with(marker) == []
    await sandbox.stop()


async def test_processes_of_a_sandbox_share_its_pid_namespace(sandbox: BubblewrapSandbox) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    sleeper = await sandbox.spawn(["sleep", marker], env=ENV)
    await asyncio.sleep(0.1)
    code, out, _ = await run(sandbox, ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
    assert code == 0 and f"sleep {marker}" in out
    code, out, _ = await run(sandbox, ["cat", "/proc/1/cmdline"])
    assert out.split("\0")[0] == "/.lamina/agent"
    sleeper.kill()
    assert await sleeper.wait() == 128 + 9


async def test_the_agent_reaps_orphans(sandbox: BubblewrapSandbox) -> None:
    # the background sleep dies with its command; the setsid one is re-parented to the agent
    script = "sleep 1000 & setsid sleep 0.2 & sleep 0.1; exit 3"
    assert (await run(sandbox, ["sh", "-c", script]))[0] == 3
    await asyncio.sleep(0.5)
    code, out, _ = await run(sandbox, ["sh", "-c", "cat /proc/[0-9]*/stat"])
    states = {line.rsplit(")", 1)[1].split()[0] for line in out.splitlines()}
    assert code == 0 and "(sleep)" not in out and "Z" not in states


async def test_kill_takes_the_process_group_and_session(sandbox: BubblewrapSandbox) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    own_group = f"import os; os.setpgid(0, 0); os.execvp('sleep', ['sleep', '{marker}'])"
    script = f'sleep {marker} & python3 -c "{own_group}" & sleep {marker}'
    process = await sandbox.spawn(["sh", "-c", script], env=ENV)
    await asyncio.sleep(0.3)
    assert len(_host_processes_with(marker)) == 3
    process.kill()
    assert await process.wait() == 128 + 9
    await asyncio.sleep(0.1)
    assert _host_processes_with(marker) == []
